//! What cgroup hierarchies the host has, and where this process sits in them.
//!
//! Parsed from `/proc/self/mountinfo` and `/proc/self/cgroup`; tests feed literal text.

use std::path::{Path, PathBuf};

use crate::CgroupError;

/// Which cgroup API a manager drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum CgroupVersion {
    /// One hierarchy per controller (or group of co-mounted controllers).
    V1,
    /// The single unified hierarchy.
    V2,
}

/// One mounted v1 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Mount {
    /// Controllers of the hierarchy as named in `/proc/self/cgroup` (`cpu`, `name=systemd`).
    pub controllers: Vec<String>,
    /// Where the hierarchy is mounted.
    pub mount_point: PathBuf,
    /// The hierarchy path that the mount exposes (`/` unless bind-mounted from a subtree).
    pub mount_root: String,
    /// This process's cgroup in the hierarchy (from `/proc/self/cgroup`).
    pub own_cgroup: String,
}

/// The mounted cgroup2 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnifiedMount {
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// The hierarchy path that the mount exposes.
    pub mount_root: String,
    /// This process's cgroup (the `0::` line of `/proc/self/cgroup`).
    pub own_cgroup: String,
}

/// The host's cgroup layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    v1: Vec<V1Mount>,
    unified: Option<UnifiedMount>,
}

/// One mountinfo line of type cgroup/cgroup2.
struct CgroupMount {
    v2: bool,
    root: String,
    mount_point: PathBuf,
    super_opts: Vec<String>,
}

impl Hierarchy {
    /// Reads the real host's layout from `/proc/self`.
    pub fn probe() -> Result<Hierarchy, CgroupError> {
        let read = |p: &str| std::fs::read_to_string(p).map_err(|e| CgroupError::io("read", p, e));
        Hierarchy::from_parts(&read("/proc/self/mountinfo")?, &read("/proc/self/cgroup")?)
    }

    /// Builds the layout from the text of `/proc/self/mountinfo` and `/proc/self/cgroup`.
    pub fn from_parts(mountinfo: &str, proc_self_cgroup: &str) -> Result<Hierarchy, CgroupError> {
        let mounts = parse_mountinfo(mountinfo)?;
        let mut v1 = Vec::new();
        let mut unified = None;
        for line in proc_self_cgroup.lines().filter(|l| !l.trim().is_empty()) {
            let mut parts = line.splitn(3, ':');
            let (Some(id), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(CgroupError::Probe(format!(
                    "bad /proc/self/cgroup line {line:?}"
                )));
            };
            if id == "0" && ctrls.is_empty() {
                unified = mounts
                    .iter()
                    .filter(|m| m.v2)
                    .min_by_key(|m| m.root.len())
                    .map(|m| UnifiedMount {
                        mount_point: m.mount_point.clone(),
                        mount_root: m.root.clone(),
                        own_cgroup: path.to_string(),
                    });
                continue;
            }
            let controllers: Vec<String> = ctrls.split(',').map(str::to_string).collect();
            // Bind mounts of the same hierarchy may exist; prefer the widest view.
            let mount = mounts
                .iter()
                .filter(|m| !m.v2 && controllers.iter().all(|c| m.super_opts.contains(c)))
                .min_by_key(|m| m.root.len());
            if let Some(m) = mount {
                v1.push(V1Mount {
                    controllers,
                    mount_point: m.mount_point.clone(),
                    mount_root: m.root.clone(),
                    own_cgroup: path.to_string(),
                });
            }
        }
        if v1.is_empty() && unified.is_none() {
            return Err(CgroupError::Probe("no cgroup hierarchy is mounted".into()));
        }
        Ok(Hierarchy { v1, unified })
    }

    /// Builds a layout from explicit mounts, e.g. a fake cgroupfs tree in a test.
    pub fn from_mounts(v1: Vec<V1Mount>, unified: Option<UnifiedMount>) -> Hierarchy {
        Hierarchy { v1, unified }
    }

    /// V2 only on a pure cgroup2 host; hybrid hosts keep their controllers on v1.
    pub fn version(&self) -> CgroupVersion {
        if self
            .v1
            .iter()
            .any(|m| m.controllers.iter().any(|c| !c.starts_with("name=")))
        {
            CgroupVersion::V1
        } else if self.unified.is_some() {
            CgroupVersion::V2
        } else {
            CgroupVersion::V1
        }
    }

    /// The mounted v1 hierarchies.
    pub fn v1_mounts(&self) -> &[V1Mount] {
        &self.v1
    }

    /// The mounted cgroup2 hierarchy, if any.
    pub fn unified(&self) -> Option<&UnifiedMount> {
        self.unified.as_ref()
    }

    /// The names of all controllers the host has, for `features`.
    pub fn controllers(&self) -> Vec<String> {
        match self.version() {
            CgroupVersion::V1 => self.v1.iter().flat_map(|m| m.controllers.clone()).collect(),
            CgroupVersion::V2 => self
                .unified
                .as_ref()
                .and_then(|u| {
                    let root = own_dir(&u.mount_point, &u.mount_root, "/");
                    std::fs::read_to_string(root.join("cgroup.controllers")).ok()
                })
                .map(|s| s.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default(),
        }
    }
}

/// The directory for hierarchy path `cgroup` (absolute within the hierarchy) under a mount that
/// exposes `mount_root`.
pub(crate) fn own_dir(mount_point: &Path, mount_root: &str, cgroup: &str) -> PathBuf {
    let rel = match cgroup.strip_prefix(mount_root) {
        // Inside a cgroup namespace the own path may not start with the mount root.
        Some(rest) if mount_root != "/" => rest,
        _ => cgroup,
    };
    let rel = rel.trim_start_matches('/');
    if rel.is_empty() {
        mount_point.to_path_buf()
    } else {
        mount_point.join(rel)
    }
}

fn parse_mountinfo(text: &str) -> Result<Vec<CgroupMount>, CgroupError> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let bad = || CgroupError::Probe(format!("bad mountinfo line {line:?}"));
        let (pre, post) = line.split_once(" - ").ok_or_else(bad)?;
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 6 || post.len() < 3 {
            return Err(bad());
        }
        let v2 = match post[0] {
            "cgroup" => false,
            "cgroup2" => true,
            _ => continue,
        };
        out.push(CgroupMount {
            v2,
            root: unescape(pre[3]),
            mount_point: PathBuf::from(unescape(pre[4])),
            super_opts: post[2].split(',').map(str::to_string).collect(),
        });
    }
    Ok(out)
}

/// Undoes mountinfo's octal escapes (`\040` for space).
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let oct = bytes
            .get(i + 1..i + 4)
            .filter(|o| o.iter().all(|b| (b'0'..=b'7').contains(b)));
        if let (b'\\', Some(oct)) = (bytes[i], oct) {
            let v = oct
                .iter()
                .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            // Values above 0o377 are not escapes mountinfo produces; keep them verbatim.
            if let Ok(v) = u8::try_from(v) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
50 23 0:50 / /mnt/with\\040space rw - ext4 /dev/sda1 rw
";
    const HYBRID_CGROUP: &str = "\
9:name=systemd:/user.slice
4:memory:/process_api/abc
2:cpu,cpuacct:/
1:blkio:/
0::/user.slice
";

    #[test]
    fn hybrid_host_is_v1_with_comounted_controllers() {
        let h = Hierarchy::from_parts(HYBRID_MOUNTINFO, HYBRID_CGROUP).expect("parse");
        assert_eq!(h.version(), CgroupVersion::V1);
        let ctrls: Vec<_> = h
            .v1_mounts()
            .iter()
            .map(|m| m.controllers.join(","))
            .collect();
        // blkio is listed in /proc/self/cgroup but not mounted: left out.
        assert_eq!(ctrls, ["name=systemd", "memory", "cpu,cpuacct"]);
        let mem = &h.v1_mounts()[1];
        assert_eq!(mem.mount_point, Path::new("/sys/fs/cgroup/memory"));
        assert_eq!(mem.own_cgroup, "/process_api/abc");
        let u = h.unified().expect("unified");
        assert_eq!(u.mount_point, Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(u.own_cgroup, "/user.slice");
    }

    #[test]
    fn pure_v2_host() {
        let mi = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        let h = Hierarchy::from_parts(mi, "0::/init.scope\n").expect("parse");
        assert_eq!(h.version(), CgroupVersion::V2);
        assert!(h.v1_mounts().is_empty());
    }

    #[test]
    fn systemd_only_v1_mount_does_not_make_a_v1_host() {
        let mi = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n\
                  31 23 0:27 / /run/sd rw - cgroup cgroup rw,name=systemd\n";
        let h = Hierarchy::from_parts(mi, "1:name=systemd:/\n0::/\n").expect("parse");
        assert_eq!(h.version(), CgroupVersion::V2);
    }

    #[test]
    fn no_cgroups_and_garbage_are_errors() {
        let mi = "50 23 0:50 / /mnt rw - ext4 /dev/sda1 rw\n";
        assert!(Hierarchy::from_parts(mi, "0::/\n").is_err());
        assert!(Hierarchy::from_parts("garbage\n", "0::/\n").is_err());
        assert!(Hierarchy::from_parts(HYBRID_MOUNTINFO, "nonsense\n").is_err());
    }

    #[test]
    fn unescapes_mount_points() {
        assert_eq!(unescape("/mnt/with\\040space"), "/mnt/with space");
        assert_eq!(unescape("/plain\\"), "/plain\\");
    }

    #[test]
    fn own_dir_strips_the_mount_root() {
        let mp = Path::new("/sys/fs/cgroup/memory");
        assert_eq!(own_dir(mp, "/", "/a/b"), mp.join("a/b"));
        assert_eq!(own_dir(mp, "/docker/x", "/docker/x/y"), mp.join("y"));
        assert_eq!(own_dir(mp, "/docker/x", "/"), mp.to_path_buf());
    }
}
