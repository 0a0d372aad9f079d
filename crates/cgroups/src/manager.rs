//! The public manager: resolves `linux.cgroupsPath` and dispatches to the v1 or v2 driver.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;

use crate::hierarchy::own_dir;
use crate::v1::V1Manager;
use crate::v2::V2Manager;
use crate::{CgroupError, CgroupVersion, Hierarchy, Stats};

/// How long freeze waits for every task to stop before giving up and thawing again.
pub(crate) const FREEZE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a container's cgroup lives relative to a hierarchy, per runc's cgroupfs driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CgroupPath {
    /// From the hierarchy's root (`/a/b` in the spec), stored without the leading slash.
    Absolute(String),
    /// Under the caller's own cgroup (`a/b`, or the container id when the spec is empty).
    Relative(String),
}

impl CgroupPath {
    pub(crate) fn parse(cgroups_path: &str, container_id: &str) -> Result<CgroupPath, CgroupError> {
        let invalid = |path: &str, reason: &str| CgroupError::InvalidPath {
            path: path.to_string(),
            reason: reason.to_string(),
        };
        if cgroups_path.contains(':') {
            return Err(CgroupError::Unsupported(format!(
                "cgroups path {cgroups_path:?} is in systemd \"slice:prefix:name\" form; only \
                 the cgroupfs driver is implemented"
            )));
        }
        let (raw, absolute) = if cgroups_path.is_empty() {
            if container_id.is_empty() || container_id.contains('/') {
                return Err(invalid(container_id, "container id cannot name a cgroup"));
            }
            (container_id, false)
        } else {
            (cgroups_path, cgroups_path.starts_with('/'))
        };
        let mut parts = Vec::new();
        for c in raw.split('/') {
            match c {
                "" | "." => {}
                ".." => return Err(invalid(raw, "\"..\" is not allowed")),
                c => parts.push(c),
            }
        }
        if parts.is_empty() {
            return Err(invalid(raw, "refusing to manage a hierarchy's root cgroup"));
        }
        let joined = parts.join("/");
        Ok(if absolute {
            CgroupPath::Absolute(joined)
        } else {
            CgroupPath::Relative(joined)
        })
    }

    /// The directory of this cgroup in a hierarchy mounted at `mount_point`.
    pub(crate) fn dir_in(&self, mount_point: &Path, mount_root: &str, own_cgroup: &str) -> PathBuf {
        match self {
            CgroupPath::Absolute(p) => own_dir(mount_point, mount_root, &format!("/{p}")),
            CgroupPath::Relative(p) => own_dir(mount_point, mount_root, own_cgroup).join(p),
        }
    }
}

#[derive(Debug)]
enum Driver {
    V1(V1Manager),
    V2(V2Manager),
}

/// One container's cgroup, on whichever hierarchy version was chosen.
///
/// Lifecycle: [`Manager::new`] only computes paths; [`Manager::create`] makes the directories,
/// [`Manager::apply_resources`] sets limits (again on `update`), [`Manager::destroy`] removes
/// them once no task is left.
///
/// ```no_run
/// use wharf_cgroups::{Hierarchy, Manager};
///
/// # fn main() -> Result<(), wharf_cgroups::CgroupError> {
/// let resources = serde_json::from_str(r#"{"memory":{"limit":67108864}}"#).expect("json");
/// let cg = Manager::new(&Hierarchy::probe()?, "/wharf/c1", "c1")?;
/// cg.create()?;
/// cg.add_process(1234)?;
/// cg.apply_resources(&resources)?;
/// let stats = cg.stats()?;
/// cg.kill_all(libc::SIGKILL)?;
/// cg.destroy()?;
/// # let _ = stats;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Manager {
    driver: Driver,
}

impl Manager {
    /// A manager for the host's own version (see [`Hierarchy::version`]).
    pub fn new(
        h: &Hierarchy,
        cgroups_path: &str,
        container_id: &str,
    ) -> Result<Manager, CgroupError> {
        Manager::with_version(h, h.version(), cgroups_path, container_id)
    }

    /// A manager forced onto `version`, e.g. the controller-less unified hierarchy of a
    /// hybrid host (freeze, kill and device filtering work there).
    pub fn with_version(
        h: &Hierarchy,
        version: CgroupVersion,
        cgroups_path: &str,
        container_id: &str,
    ) -> Result<Manager, CgroupError> {
        let path = CgroupPath::parse(cgroups_path, container_id)?;
        let driver = match version {
            CgroupVersion::V1 => Driver::V1(V1Manager::new(h, &path)?),
            CgroupVersion::V2 => Driver::V2(V2Manager::new(h, &path)?),
        };
        Ok(Manager { driver })
    }

    /// Which version this manager drives.
    pub fn version(&self) -> CgroupVersion {
        match &self.driver {
            Driver::V1(_) => CgroupVersion::V1,
            Driver::V2(_) => CgroupVersion::V2,
        }
    }

    /// Creates the cgroup (and missing parents) in every hierarchy.
    pub fn create(&self) -> Result<(), CgroupError> {
        match &self.driver {
            Driver::V1(m) => m.create(),
            Driver::V2(m) => m.create(),
        }
    }

    /// Moves process `pid` (with all its threads) into the cgroup.
    pub fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        if pid <= 0 {
            return Err(CgroupError::InvalidResource {
                field: "pid",
                reason: format!("{pid} is not a process id"),
            });
        }
        match &self.driver {
            Driver::V1(m) => m.add_process(pid),
            Driver::V2(m) => m.add_process(pid),
        }
    }

    /// Applies the OCI resource limits. Unset values are left alone; a set value for a
    /// controller the host lacks is [`CgroupError::ControllerMissing`].
    pub fn apply_resources(&self, r: &LinuxResources) -> Result<(), CgroupError> {
        match &self.driver {
            Driver::V1(m) => m.apply(r),
            Driver::V2(m) => m.apply(r),
        }
    }

    /// Freezes every task and waits until the kernel reports the cgroup frozen.
    pub fn freeze(&self) -> Result<(), CgroupError> {
        match &self.driver {
            Driver::V1(m) => m.set_frozen(true),
            Driver::V2(m) => m.set_frozen(true),
        }
    }

    /// Lets the tasks run again.
    pub fn thaw(&self) -> Result<(), CgroupError> {
        match &self.driver {
            Driver::V1(m) => m.set_frozen(false),
            Driver::V2(m) => m.set_frozen(false),
        }
    }

    /// Whether the cgroup is completely frozen.
    pub fn is_frozen(&self) -> Result<bool, CgroupError> {
        match &self.driver {
            Driver::V1(m) => m.is_frozen(),
            Driver::V2(m) => m.is_frozen(),
        }
    }

    /// Every process in the cgroup and its descendants.
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        crate::cgfs::procs_recursive(self.procs_dir())
    }

    fn procs_dir(&self) -> &Path {
        match &self.driver {
            Driver::V1(m) => m.procs_dir(),
            Driver::V2(m) => m.dir(),
        }
    }

    fn can_freeze(&self) -> bool {
        match &self.driver {
            Driver::V1(m) => m.has_freezer(),
            Driver::V2(_) => true,
        }
    }

    /// Sends `signal` to every process. SIGKILL uses v2's `cgroup.kill` when the kernel has it;
    /// otherwise the cgroup is frozen while signalling so no task can fork past the list. After
    /// SIGKILL the cgroup is always thawed, so a paused container really dies (as runc does);
    /// other signals leave a paused container paused.
    pub fn kill_all(&self, signal: i32) -> Result<(), CgroupError> {
        let sig = Signal::try_from(signal).map_err(|_| CgroupError::InvalidResource {
            field: "signal",
            reason: format!("{signal} is not a signal"),
        })?;
        if let (Driver::V2(m), Signal::SIGKILL) = (&self.driver, sig) {
            if m.kill_via_cgroup_kill()? {
                return Ok(());
            }
        }
        let was_frozen = self.can_freeze() && self.is_frozen()?;
        if self.can_freeze() && !was_frozen {
            self.freeze()?;
        }
        let result = self.signal_each(sig);
        let thaw = self.can_freeze() && (!was_frozen || sig == Signal::SIGKILL);
        let thawed = if thaw { self.thaw() } else { Ok(()) };
        result.and(thawed)
    }

    fn signal_each(&self, sig: Signal) -> Result<(), CgroupError> {
        for pid in self.pids()? {
            match kill(Pid::from_raw(pid), sig) {
                // Exited since the list was read.
                Ok(()) | Err(nix::Error::ESRCH) => {}
                Err(source) => {
                    return Err(CgroupError::Signal {
                        pid,
                        signal: sig as i32,
                        source,
                    })
                }
            }
        }
        Ok(())
    }

    /// Current usage numbers. Knobs the host lacks read as zero; a missing cgroup is an error.
    pub fn stats(&self) -> Result<Stats, CgroupError> {
        let dir = self.procs_dir();
        if !dir.is_dir() {
            let gone = std::io::Error::from(std::io::ErrorKind::NotFound);
            return Err(CgroupError::io("stats", dir, gone));
        }
        let mut stats = match &self.driver {
            Driver::V1(m) => m.stats()?,
            Driver::V2(m) => m.stats()?,
        };
        if stats.cpu.online_cpus == 0 {
            stats.cpu.online_cpus = online_cpus();
        }
        Ok(stats)
    }

    /// Removes the cgroup everywhere; succeeds when it is already gone.
    pub fn destroy(&self) -> Result<(), CgroupError> {
        for p in self.paths() {
            crate::cgfs::remove_cgroup(&p)?;
        }
        Ok(())
    }

    /// The cgroup's directory in each hierarchy.
    pub fn paths(&self) -> Vec<PathBuf> {
        match &self.driver {
            Driver::V1(m) => m.paths(),
            Driver::V2(m) => vec![m.dir().to_path_buf()],
        }
    }
}

fn online_cpus() -> u32 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN)
        .ok()
        .flatten()
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroups_path_rules_follow_runc() {
        assert_eq!(
            CgroupPath::parse("/docker/abc", "abc").expect("abs"),
            CgroupPath::Absolute("docker/abc".into())
        );
        assert_eq!(
            CgroupPath::parse("wharf/abc/", "abc").expect("rel"),
            CgroupPath::Relative("wharf/abc".into())
        );
        assert_eq!(
            CgroupPath::parse("", "abc").expect("default"),
            CgroupPath::Relative("abc".into())
        );
        let systemd = CgroupPath::parse("system.slice:docker:abc", "abc").expect_err("systemd");
        assert!(matches!(systemd, CgroupError::Unsupported(_)));
        assert!(systemd.to_string().contains("systemd"));
        for bad in ["/a/../b", "/", "..", "./."] {
            assert!(
                matches!(
                    CgroupPath::parse(bad, "x"),
                    Err(CgroupError::InvalidPath { .. })
                ),
                "{bad}"
            );
        }
        assert!(CgroupPath::parse("", "a/b").is_err());
        assert!(CgroupPath::parse("", "").is_err());
    }

    #[test]
    fn dirs_are_resolved_per_hierarchy() {
        let mp = Path::new("/cg/memory");
        let abs = CgroupPath::Absolute("wharf/c1".into());
        assert_eq!(abs.dir_in(mp, "/", "/user/me"), mp.join("wharf/c1"));
        let rel = CgroupPath::Relative("c1".into());
        assert_eq!(rel.dir_in(mp, "/", "/user/me"), mp.join("user/me/c1"));
        assert_eq!(rel.dir_in(mp, "/", "/"), mp.join("c1"));
    }
}
