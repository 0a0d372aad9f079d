//! The container's cgroup, managed through `wharf-cgroups`, and what init bind-mounts of it.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources, Spec};
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

/// Devices every container may use whatever its spec's device rules say, as runc's
/// `AllowedDevices`: init creates their nodes, so a spec that starts with "deny all" (as
/// `runc spec` writes) must still let mknod and use of these through.
const ALWAYS_ALLOWED: &[(LinuxDeviceType, Option<i64>, Option<i64>, &str)] = &[
    (LinuxDeviceType::C, None, None, "m"),
    (LinuxDeviceType::B, None, None, "m"),
    (LinuxDeviceType::C, Some(1), Some(3), "rwm"), // null
    (LinuxDeviceType::C, Some(1), Some(5), "rwm"), // zero
    (LinuxDeviceType::C, Some(1), Some(7), "rwm"), // full
    (LinuxDeviceType::C, Some(1), Some(8), "rwm"), // random
    (LinuxDeviceType::C, Some(1), Some(9), "rwm"), // urandom
    (LinuxDeviceType::C, Some(5), Some(0), "rwm"), // tty
    (LinuxDeviceType::C, Some(5), Some(1), "rwm"), // console
    (LinuxDeviceType::C, Some(5), Some(2), "rwm"), // ptmx
    (LinuxDeviceType::C, Some(136), None, "rwm"),  // pts
    (LinuxDeviceType::C, Some(10), Some(200), "rwm"), // net/tun
];

/// The resources to apply: the spec's, with device rules that end by allowing the spec's own
/// device nodes it has no rule for and [`ALWAYS_ALLOWED`] (later rules win, as in the kernel's
/// v1 list and runc).
pub fn resources_of(spec: &Spec) -> Option<LinuxResources> {
    let linux = spec.linux().as_ref()?;
    let mut resources = linux.resources().clone()?;
    let Some(rules) = resources.devices().clone() else {
        return Some(resources);
    };
    // Only char and block devices go through the devices cgroup; a FIFO node is just made.
    // A node the spec has a rule for gets that rule's access (`--device /dev/x:r`).
    let ruled = |n: &LinuxDeviceCgroup| {
        rules
            .iter()
            .any(|r| (r.typ(), r.major(), r.minor()) == (n.typ(), n.major(), n.minor()))
    };
    let nodes: Vec<LinuxDeviceCgroup> = linux
        .devices()
        .iter()
        .flatten()
        .filter(|d| d.typ() != LinuxDeviceType::P)
        .map(LinuxDeviceCgroup::from)
        .filter(|n| !ruled(n))
        .collect();
    let defaults = ALWAYS_ALLOWED.iter().map(|(typ, major, minor, access)| {
        let mut rule = LinuxDeviceCgroup::default();
        rule.set_allow(true);
        rule.set_typ(Some(*typ));
        rule.set_major(*major);
        rule.set_minor(*minor);
        rule.set_access(Some((*access).to_string()));
        rule
    });
    resources.set_devices(Some(
        rules.into_iter().chain(nodes).chain(defaults).collect(),
    ));
    Some(resources)
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
pub fn mount_dirs(
    version: CgroupVersion,
    mount_points: &[&Path],
    paths: &[PathBuf],
) -> Vec<CgroupDir> {
    paths
        .iter()
        .filter_map(|dir| {
            let mp = mount_points
                .iter()
                .filter(|mp| dir.starts_with(mp))
                .max_by_key(|mp| mp.as_os_str().len())?;
            let name = match version {
                CgroupVersion::V2 => String::new(),
                CgroupVersion::V1 => mp.file_name()?.to_string_lossy().into_owned(),
            };
            Some(CgroupDir {
                name,
                dir: dir.clone(),
            })
        })
        .collect()
}

/// Creates a new container's cgroup; returns its manager and the directories init should bind
/// (one probe of the host's hierarchy for both).
pub fn create(cgroups_path: &str, id: &str) -> Result<(Manager, Vec<CgroupDir>)> {
    let h = Hierarchy::probe()?;
    let m = Manager::new(&h, cgroups_path, id)?;
    m.create()?;
    let dirs = dirs_for(&h, &m);
    Ok((m, dirs))
}

/// The directories init should bind for a container whose cgroup `m` manages.
fn dirs_for(h: &Hierarchy, m: &Manager) -> Vec<CgroupDir> {
    let mut mps: Vec<&Path> = h
        .v1_mounts()
        .iter()
        .map(|v| v.mount_point.as_path())
        .collect();
    mps.extend(h.unified().map(|u| u.mount_point.as_path()));
    mount_dirs(m.version(), &mps, &m.paths())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_all_specs_still_allow_the_default_devices() {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "linux": {
                "resources": {"devices": [{"allow": false, "access": "rwm"}]},
                "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229},
                            {"path": "/dev/pipe", "type": "p"}]
            }
        }))
        .expect("spec");
        let rules = resources_of(&spec)
            .and_then(|r| r.devices().clone())
            .expect("rules");
        assert!(!rules[0].allow(), "the spec's own rules come first");
        let allows = |major, minor| {
            rules
                .iter()
                .any(|r| r.allow() && r.major() == Some(major) && r.minor() == Some(minor))
        };
        assert!(allows(10, 229), "the spec's device nodes are allowed");
        assert!(
            rules.iter().all(|r| r.typ() != Some(LinuxDeviceType::P)),
            "a FIFO node is no cgroup rule: {rules:?}"
        );
        let read_only: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "linux": {
                "resources": {"devices": [{"allow": false, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "r"}]},
                "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]
            }
        }))
        .expect("spec");
        let ro_rules = resources_of(&read_only)
            .and_then(|r| r.devices().clone())
            .expect("rules");
        let fuse: Vec<_> = ro_rules
            .iter()
            .filter(|r| r.major() == Some(10) && r.minor() == Some(229))
            .map(|r| r.access().clone())
            .collect();
        assert_eq!(fuse, [Some("r".to_string())], "the spec's own rule decides");
        assert!(allows(1, 3) && allows(5, 2), "null and ptmx are allowed");
        let no_rules: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2", "root": {"path": "rootfs"}, "linux": {"resources": {}}
        }))
        .expect("spec");
        assert_eq!(
            resources_of(&no_rules).and_then(|r| r.devices().clone()),
            None
        );
    }

    #[test]
    fn names_follow_mount_points() {
        let mps = [
            Path::new("/sys/fs/cgroup/memory"),
            Path::new("/sys/fs/cgroup/cpu,cpuacct"),
        ];
        let paths = vec![
            PathBuf::from("/sys/fs/cgroup/memory/c1"),
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/x/c1"),
        ];
        let d = mount_dirs(CgroupVersion::V1, &mps, &paths);
        assert_eq!(
            d[0],
            CgroupDir {
                name: "memory".into(),
                dir: paths[0].clone()
            }
        );
        assert_eq!(d[1].name, "cpu,cpuacct");
        let v2 = mount_dirs(
            CgroupVersion::V2,
            &[Path::new("/sys/fs/cgroup")],
            &[PathBuf::from("/sys/fs/cgroup/c1")],
        );
        assert_eq!(v2[0].name, "");
    }
}
