//! What exists on the host for a daemon under test, independent of what its API says:
//! processes in its cgroups, its shims, its runtime state and mounts. Fault tests compare the
//! two.

use std::path::PathBuf;

use super::{cgroup_dirs, walk, Daemon};

/// Pids in the daemon's cgroup parent (every v1 controller and the unified tree), or only in
/// container `id`'s cgroup when given.
pub fn cgroup_procs(d: &Daemon, id: Option<&str>) -> Vec<i32> {
    let mut pids: Vec<i32> = cgroup_dirs(&d.cgroup_parent)
        .into_iter()
        .map(|p| match id {
            Some(id) => p.join(id),
            None => p,
        })
        .filter(|p| p.is_dir())
        .flat_map(|p| walk(&p))
        .flat_map(|p| {
            std::fs::read_to_string(p.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Cgroup directories left for container `id`.
pub fn cgroup_dirs_of(d: &Daemon, id: &str) -> Vec<PathBuf> {
    cgroup_dirs(&d.cgroup_parent)
        .into_iter()
        .map(|p| p.join(id))
        .filter(|p| p.is_dir())
        .collect()
}

/// Live `wharf-shim` processes serving this daemon's exec root.
pub fn shims(d: &Daemon) -> Vec<i32> {
    let root = d.exec_root.to_string_lossy().to_string();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            let mut args = cmd.split('\0');
            args.next().is_some_and(|a| a.ends_with("wharf-shim"))
                && args.next().is_some_and(|a| a.starts_with(&root))
        })
        .collect()
}

/// The shim pid recorded for container `id`.
pub fn shim_pid(d: &Daemon, id: &str) -> Option<i32> {
    let p = d.exec_root.join("containers").join(id).join("shim.pid");
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// Runtime state directories (`<exec-root>/runtime/<runtime>/<id>`).
pub fn runtime_state(d: &Daemon) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(d.exec_root.join("runtime")) else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|r| std::fs::read_dir(r.path()).ok())
        .flat_map(|c| c.flatten().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect()
}

/// Mount points below the daemon's roots (rootfs mounts, netns pins).
pub fn mounts(d: &Daemon) -> Vec<String> {
    let root = d.dir.path().to_string_lossy().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4).map(String::from))
        .filter(|p| p.starts_with(&root))
        .collect()
}

/// Whether `pid` is alive (and not a zombie).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, r)| !r.starts_with('Z')))
        .unwrap_or(false)
}

/// Asserts that nothing of any container is left: call after removing them all.
pub fn assert_nothing_left(d: &Daemon, ctx: &str) {
    let report = format!(
        "{ctx}: procs {:?} shims {:?} runtime state {:?} mounts {:?}\n--- daemon log ---\n{}",
        cgroup_procs(d, None),
        shims(d),
        runtime_state(d),
        mounts(d),
        d.log()
    );
    assert!(cgroup_procs(d, None).is_empty(), "{report}");
    assert!(shims(d).is_empty(), "{report}");
    assert!(runtime_state(d).is_empty(), "{report}");
    assert!(mounts(d).is_empty(), "{report}");
}
