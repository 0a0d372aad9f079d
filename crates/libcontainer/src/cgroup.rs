//! The container's cgroup, managed through `wharf-cgroups`, and what init bind-mounts of it.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};
use wharf_cgroups::{CgroupVersion, Hierarchy, Manager};

use crate::error::Result;

/// The `cgroupsPath` to record for a spec (empty means runc's default for the id).
pub fn path_of(spec: &Spec) -> String {
    spec.linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_ref())
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// The manager for a container's cgroup on this host.
pub fn manager(cgroups_path: &str, id: &str) -> Result<Manager> {
    Ok(Manager::new(&Hierarchy::probe()?, cgroups_path, id)?)
}

/// One directory of the container's cgroup, and where it appears under the container's
/// cgroup mount: `name` is the hierarchy's directory (`memory`), empty on a v2 host where the
/// cgroup itself is mounted at the destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupDir {
    /// Subdirectory of the cgroup mount ("" for the mount itself).
    pub name: String,
    /// Host directory of the container's cgroup.
    pub dir: PathBuf,
}

/// Names each of `paths` (the manager's directories) after the hierarchy mount holding it.
pub fn mount_dirs(version: CgroupVersion, mount_points: &[&Path], paths: &[PathBuf]) -> Vec<CgroupDir> {
    paths
        .iter()
        .filter_map(|dir| {
            let mp = mount_points.iter().filter(|mp| dir.starts_with(mp)).max_by_key(|mp| mp.as_os_str().len())?;
            let name = match version {
                CgroupVersion::V2 => String::new(),
                CgroupVersion::V1 => mp.file_name()?.to_string_lossy().into_owned(),
            };
            Some(CgroupDir { name, dir: dir.clone() })
        })
        .collect()
}

/// The directories init should bind for a container whose cgroup `m` manages.
pub fn dirs_for(m: &Manager) -> Result<Vec<CgroupDir>> {
    let h = Hierarchy::probe()?;
    let mut mps: Vec<&Path> = h.v1_mounts().iter().map(|v| v.mount_point.as_path()).collect();
    mps.extend(h.unified().map(|u| u.mount_point.as_path()));
    Ok(mount_dirs(m.version(), &mps, &m.paths()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_mount_points() {
        let mps = [Path::new("/sys/fs/cgroup/memory"), Path::new("/sys/fs/cgroup/cpu,cpuacct")];
        let paths = vec![PathBuf::from("/sys/fs/cgroup/memory/c1"), PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/x/c1")];
        let d = mount_dirs(CgroupVersion::V1, &mps, &paths);
        assert_eq!(d[0], CgroupDir { name: "memory".into(), dir: paths[0].clone() });
        assert_eq!(d[1].name, "cpu,cpuacct");
        let v2 = mount_dirs(CgroupVersion::V2, &[Path::new("/sys/fs/cgroup")], &[PathBuf::from("/sys/fs/cgroup/c1")]);
        assert_eq!(v2[0].name, "");
    }
}
