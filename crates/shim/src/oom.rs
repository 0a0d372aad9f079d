//! OOM-kill detection. The container's memory cgroup is found from `/proc/<pid>/cgroup` of its
//! init (whatever cgroupsPath or driver the runtime used) and the shim's own mountinfo; the
//! kernel's `oom_kill` counter (v1 `memory.oom_control`, v2 `memory.events`) is compared at
//! exit against its value at start.

use std::fs;
use std::path::{Path, PathBuf};

/// The OOM counters of one container's memory cgroup.
#[derive(Debug, Default)]
pub struct OomProbe {
    counters: Vec<PathBuf>,
    baseline: u64,
}

impl OomProbe {
    /// Locates the counters of process `pid`; `proc_root` is normally `/proc`. A process whose
    /// cgroup cannot be found gets a probe that never reports an OOM kill.
    pub fn locate(proc_root: &Path, pid: i32) -> OomProbe {
        let cgroups = fs::read_to_string(proc_root.join(pid.to_string()).join("cgroup"));
        let mounts = fs::read_to_string(proc_root.join("self/mountinfo"));
        let (Ok(cgroups), Ok(mounts)) = (cgroups, mounts) else {
            return OomProbe::default();
        };
        let counters = counter_files(&cgroups, &mounts);
        let mut probe = OomProbe {
            counters,
            baseline: 0,
        };
        probe.baseline = probe.total();
        probe
    }

    /// Whether an OOM kill happened in the cgroup since [`OomProbe::locate`]. Call before the
    /// runtime deletes the cgroup.
    pub fn fired(&self) -> bool {
        self.total() > self.baseline
    }

    fn total(&self) -> u64 {
        self.counters
            .iter()
            .filter_map(|p| fs::read_to_string(p).ok())
            .filter_map(|text| oom_kill_count(&text))
            .sum()
    }
}

/// `oom_kill N` from a `memory.oom_control` or `memory.events` file.
fn oom_kill_count(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
}

/// The counter files for the memory cgroup listed in `cgroups` (a `/proc/<pid>/cgroup`), located
/// through the mount table `mounts` (a mountinfo).
fn counter_files(cgroups: &str, mounts: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let (mount, file) = if controllers.is_empty() {
            (find_mount(mounts, |fs, _| fs == "cgroup2"), "memory.events")
        } else if controllers.split(',').any(|c| c == "memory") {
            let is_memory =
                |fs: &str, opts: &str| fs == "cgroup" && opts.split(',').any(|o| o == "memory");
            (find_mount(mounts, is_memory), "memory.oom_control")
        } else {
            continue;
        };
        if let Some((root, point)) = mount {
            let Ok(rel) = Path::new(path).strip_prefix(&root) else {
                continue;
            };
            out.push(point.join(rel).join(file));
        }
    }
    out
}

/// (mount root, mount point) of the first mount whose (fstype, super options) match.
fn find_mount(mounts: &str, want: impl Fn(&str, &str) -> bool) -> Option<(PathBuf, PathBuf)> {
    mounts.lines().find_map(|line| {
        let (pre, post) = line.split_once(" - ")?;
        let pre: Vec<&str> = pre.split(' ').collect();
        let mut post = post.split(' ');
        let (fstype, _source, opts) = (post.next()?, post.next()?, post.next()?);
        if !want(fstype, opts) {
            return None;
        }
        Some((PathBuf::from(pre.get(3)?), PathBuf::from(pre.get(4)?)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTS: &str = "\
30 25 0:26 / /sys/fs/cgroup/unified rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate
35 25 0:31 / /sys/fs/cgroup/cpu rw shared:14 - cgroup cgroup rw,cpu,cpuacct
36 25 0:32 / /sys/fs/cgroup/memory rw shared:15 - cgroup cgroup rw,memory
";

    #[test]
    fn finds_v1_and_v2_counters() {
        let cg = "5:cpu,cpuacct:/wharf/c1\n4:memory:/wharf/c1\n0::/wharf/c1\n";
        assert_eq!(
            counter_files(cg, MOUNTS),
            vec![
                PathBuf::from("/sys/fs/cgroup/memory/wharf/c1/memory.oom_control"),
                PathBuf::from("/sys/fs/cgroup/unified/wharf/c1/memory.events"),
            ]
        );
    }

    #[test]
    fn probe_compares_against_baseline() {
        let root = tempfile::tempdir().expect("tempdir");
        let proc_root = root.path().join("proc");
        fs::create_dir_all(proc_root.join("42")).expect("mkdir");
        fs::create_dir_all(proc_root.join("self")).expect("mkdir");
        let cg_mount = root.path().join("memory");
        fs::create_dir_all(cg_mount.join("c1")).expect("mkdir");
        fs::write(proc_root.join("42/cgroup"), "4:memory:/c1\n").expect("write");
        fs::write(
            proc_root.join("self/mountinfo"),
            format!(
                "36 25 0:32 / {} rw - cgroup cgroup rw,memory\n",
                cg_mount.display()
            ),
        )
        .expect("write");
        let counter = cg_mount.join("c1/memory.oom_control");
        fs::write(&counter, "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n").expect("write");
        let probe = OomProbe::locate(&proc_root, 42);
        assert!(!probe.fired());
        fs::write(&counter, "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n").expect("write");
        assert!(probe.fired());
        assert!(!OomProbe::locate(&proc_root, 7).fired());
    }
}
