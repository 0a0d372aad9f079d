//! Populating the container's /dev: default nodes, the spec's devices and the standard links.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use nix::sys::stat::{makedev, Mode, SFlag};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};
use rustix::fs::{AtFlags, Gid, Uid};
use rustix::io::Errno;

use crate::error::{LibcontainerError, Result};
use crate::fsroot::{fd_path, sys, RootDir};

/// A device node to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceNode {
    /// Path inside the container.
    pub path: PathBuf,
    /// Char, block or fifo.
    pub kind: SFlag,
    /// Major number.
    pub major: u64,
    /// Minor number.
    pub minor: u64,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

fn node(path: &str, major: u64, minor: u64) -> DeviceNode {
    DeviceNode {
        path: path.into(),
        kind: SFlag::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    }
}

/// The devices every container gets (the OCI spec's default list).
pub fn default_devices() -> Vec<DeviceNode> {
    vec![
        node("/dev/null", 1, 3),
        node("/dev/zero", 1, 5),
        node("/dev/full", 1, 7),
        node("/dev/random", 1, 8),
        node("/dev/urandom", 1, 9),
        node("/dev/tty", 5, 0),
    ]
}

/// Converts a spec device; `a` (all) is a cgroup rule, not a node.
pub fn from_spec(d: &LinuxDevice) -> Result<DeviceNode> {
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(LibcontainerError::InvalidSpec(format!(
                "device {} has type a",
                d.path().display()
            )))
        }
    };
    let num = |n: i64| {
        u64::try_from(n).map_err(|_| {
            LibcontainerError::InvalidSpec(format!(
                "device {} has a negative number",
                d.path().display()
            ))
        })
    };
    Ok(DeviceNode {
        path: d.path().clone(),
        kind,
        major: num(d.major())?,
        minor: num(d.minor())?,
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    })
}

/// Creates a node with mknod, or, when mknod is not allowed (user namespace), bind-mounts the
/// host's node of the same path.
pub fn create(root: &RootDir, dev: &DeviceNode, bind_from_host: bool) -> Result<()> {
    if bind_from_host {
        let target = root.touch(&dev.path)?;
        return mount(
            Some(&dev.path),
            &fd_path(&target),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(LibcontainerError::sys(format!(
            "bind device {}",
            dev.path.display()
        )));
    }
    let (parent, name) = root.parent_of(&dev.path)?;
    // Replace whatever the image shipped at this path (a regular file would shadow the node).
    let _ = rustix::fs::unlinkat(parent.as_fd(), &name, AtFlags::empty());
    let perm = Mode::from_bits_truncate(dev.mode);
    nix::sys::stat::mknodat(
        parent.as_fd(),
        &name,
        dev.kind,
        perm,
        makedev(dev.major, dev.minor),
    )
    .map_err(LibcontainerError::sys(format!(
        "mknod {}",
        dev.path.display()
    )))?;
    rustix::fs::chownat(
        parent.as_fd(),
        &name,
        Some(Uid::from_raw(dev.uid)),
        Some(Gid::from_raw(dev.gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| sys(format!("chown {}", dev.path.display()), e))
}

/// /dev/fd, /dev/std{in,out,err}, /dev/ptmx and /dev/core links, skipping ones that exist.
pub fn create_symlinks(root: &RootDir) -> Result<()> {
    for (target, link) in [
        ("/proc/self/fd", "/dev/fd"),
        ("/proc/self/fd/0", "/dev/stdin"),
        ("/proc/self/fd/1", "/dev/stdout"),
        ("/proc/self/fd/2", "/dev/stderr"),
        ("pts/ptmx", "/dev/ptmx"),
    ] {
        let (parent, name) = root.parent_of(Path::new(link))?;
        if link == "/dev/ptmx" {
            let _ = rustix::fs::unlinkat(parent.as_fd(), &name, AtFlags::empty());
        }
        match rustix::fs::symlinkat(target, parent.as_fd(), &name) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(sys(format!("symlink {link}"), e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_device_conversion() {
        let d: LinuxDevice = serde_json::from_value(serde_json::json!({
            "path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o100600, "uid": 0, "gid": 0
        }))
        .expect("dev");
        let n = from_spec(&d).expect("node");
        assert_eq!((n.major, n.minor, n.mode), (10, 229, 0o600));
        assert_eq!(n.kind, SFlag::S_IFCHR);
        let bad: LinuxDevice =
            serde_json::from_value(serde_json::json!({"path": "/dev/x", "type": "c", "major": -1}))
                .expect("dev");
        assert!(from_spec(&bad).is_err());
    }

    #[test]
    fn defaults_include_null_and_tty() {
        let d = default_devices();
        assert!(d
            .iter()
            .any(|n| n.path == Path::new("/dev/null") && (n.major, n.minor) == (1, 3)));
        assert!(d.iter().any(|n| n.path == Path::new("/dev/tty")));
    }
}
