//! The `cgroup` mount inside the container: the container's own cgroup directories, never the
//! host's whole hierarchy (like runc's cgroupfs driver without a cgroup namespace).

use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};

use crate::error::{LibcontainerError, Result};
use crate::fsroot::{fd_path, RootDir};
use crate::mount::MountOptions;

/// One cgroup hierarchy visible to the init process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// Where the host mounts it (`/sys/fs/cgroup/memory`).
    pub mount_point: PathBuf,
    /// The init process's cgroup directory on the host.
    pub own_dir: PathBuf,
}

/// Pairs the cgroup mounts of `mountinfo` with the process's entries in `proc_cgroup`.
pub fn hierarchies(mountinfo: &str, proc_cgroup: &str) -> Vec<Hierarchy> {
    let entries: Vec<(Vec<&str>, &str)> = proc_cgroup
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let _id = it.next()?;
            let ctrls = it.next()?;
            let path = it.next()?;
            Some((ctrls.split(',').filter(|c| !c.is_empty()).collect(), path))
        })
        .collect();
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else { continue };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        let (Some(root), Some(mp), Some(fstype), Some(sopts)) = (pre.get(3), pre.get(4), post.first(), post.get(2))
        else {
            continue;
        };
        let sopts: Vec<&str> = sopts.split(',').collect();
        let path = match *fstype {
            "cgroup2" => entries.iter().find(|(c, _)| c.is_empty()).map(|(_, p)| *p),
            "cgroup" => entries
                .iter()
                .find(|(c, _)| !c.is_empty() && c.iter().all(|x| sopts.contains(x)))
                .map(|(_, p)| *p),
            _ => None,
        };
        let Some(path) = path else { continue };
        let Ok(rel) = Path::new(path).strip_prefix(root) else { continue };
        out.push(Hierarchy { mount_point: PathBuf::from(mp), own_dir: Path::new(mp).join(rel) });
    }
    out
}

/// Mounts the container's cgroups at `dest`: one bind per v1 hierarchy under a tmpfs, or a
/// single bind when the host is cgroup v2 only.
pub fn mount_cgroups(root: &RootDir, dest: &Path, opts: &MountOptions) -> Result<()> {
    let read = |p: &str| std::fs::read_to_string(p).map_err(LibcontainerError::io(format!("read {p}")));
    let all = hierarchies(&read("/proc/self/mountinfo")?, &read("/proc/self/cgroup")?);
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let ro = opts.flags & MsFlags::MS_RDONLY;
    let bind = |h: &Hierarchy, at: &Path| -> Result<()> {
        let target = root.mkdir_all(at, 0o755)?;
        mount(Some(&h.own_dir), &fd_path(&target), None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .map_err(LibcontainerError::sys(format!("bind cgroup {}", h.own_dir.display())))?;
        let target = root.mkdir_all(at, 0o755)?;
        mount(None::<&str>, &fd_path(&target), None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags | ro, None::<&str>)
            .map_err(LibcontainerError::sys(format!("remount cgroup {}", at.display())))
    };
    // A v2-only host has exactly one hierarchy, mounted where the container expects it.
    if let [single] = all.as_slice() {
        return bind(single, dest);
    }
    let target = root.mkdir_all(dest, 0o755)?;
    mount(Some("tmpfs"), &fd_path(&target), Some("tmpfs"), flags, Some("mode=755"))
        .map_err(LibcontainerError::sys(format!("mount tmpfs on {}", dest.display())))?;
    for h in &all {
        let Some(name) = h.mount_point.file_name() else { continue };
        bind(h, &dest.join(name))?;
    }
    if !ro.is_empty() {
        let target = root.mkdir_all(dest, 0o755)?;
        mount(None::<&str>, &fd_path(&target), None::<&str>, MsFlags::MS_REMOUNT | flags | ro, None::<&str>)
            .map_err(LibcontainerError::sys(format!("remount {} read-only", dest.display())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
30 25 0:26 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate
35 30 0:31 / /sys/fs/cgroup/memory rw,nosuid shared:15 - cgroup cgroup rw,memory
36 30 0:32 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:16 - cgroup cgroup rw,cpu,cpuacct
37 30 0:33 / /sys/fs/cgroup/systemd rw shared:17 - cgroup cgroup rw,xattr,name=systemd
";
    const CGROUP: &str = "5:memory:/wharf/c1\n4:cpu,cpuacct:/wharf/c1\n1:name=systemd:/init\n0::/\n";

    #[test]
    fn pairs_mounts_with_own_cgroups() {
        let h = hierarchies(MOUNTINFO, CGROUP);
        assert_eq!(h.len(), 4);
        assert_eq!(h[0].own_dir, PathBuf::from("/sys/fs/cgroup/unified"));
        assert_eq!(h[1].own_dir, PathBuf::from("/sys/fs/cgroup/memory/wharf/c1"));
        assert_eq!(h[2].own_dir, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/wharf/c1"));
        assert_eq!(h[3].own_dir, PathBuf::from("/sys/fs/cgroup/systemd/init"));
    }

    #[test]
    fn pure_v2_host() {
        let mi = "30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let h = hierarchies(mi, "0::/system.slice/x\n");
        assert_eq!(h, vec![Hierarchy {
            mount_point: "/sys/fs/cgroup".into(),
            own_dir: "/sys/fs/cgroup/system.slice/x".into()
        }]);
    }
}
