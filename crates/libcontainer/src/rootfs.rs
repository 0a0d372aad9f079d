//! Building the container's filesystem view inside its new mount namespace.
//!
//! Order matters: [`prepare`] runs with the host's mounts still visible (spec mounts, /dev),
//! [`pivot`] switches root, and [`finish`] applies masks and read-only remounts that must
//! come last so no later mount can undo them.

use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use oci_spec::runtime::Spec;

use crate::cgroup::CgroupDir;
use crate::devices;
use crate::error::{LibcontainerError, Result};
use crate::fsroot::RootDir;
use crate::mount::{mount_in_root, propagation, remount_readonly};

/// Propagation of `/` while mounts are being made: explicit in the spec, otherwise rslave so
/// container mounts never leak to the host while host unmounts still reach the container.
pub fn initial_propagation(spec: &Spec) -> Result<MsFlags> {
    match spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
    {
        None | Some("") => Ok(MsFlags::MS_SLAVE | MsFlags::MS_REC),
        Some(p) => propagation(p).ok_or_else(|| {
            LibcontainerError::InvalidSpec(format!("unknown rootfsPropagation {p:?}"))
        }),
    }
}

/// Mounts everything the spec lists into `rootfs` and populates /dev.
pub fn prepare(
    spec: &Spec,
    rootfs: &Path,
    bundle: &Path,
    in_userns: bool,
    own_mounts: bool,
    cgroups: &[CgroupDir],
) -> Result<()> {
    if own_mounts {
        isolate_root(spec, rootfs)?;
    }
    let root = RootDir::open(rootfs)?;
    for m in spec.mounts().as_deref().unwrap_or_default() {
        mount_in_root(&root, m, bundle, cgroups)?;
    }
    let linux = spec.linux().as_ref();
    for d in devices::default_devices() {
        devices::create(&root, &d, in_userns)?;
    }
    for d in linux
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
    {
        devices::create(&root, &devices::from_spec(d)?, in_userns)?;
    }
    devices::create_symlinks(&root)
}

/// In the container's own mount namespace: stops propagation to the host and makes the
/// rootfs a mount point (pivot_root needs one).
fn isolate_root(spec: &Spec, rootfs: &Path) -> Result<()> {
    let prop = initial_propagation(spec)?;
    // Shared propagation on `/` would leak our mounts to the host; make it slave first.
    let first = if prop.contains(MsFlags::MS_SHARED) {
        MsFlags::MS_SLAVE | MsFlags::MS_REC
    } else {
        prop
    };
    mount(None::<&str>, "/", None::<&str>, first, None::<&str>)
        .map_err(LibcontainerError::sys("set propagation of /"))?;
    // pivot_root needs the new root to be a mount point.
    mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(LibcontainerError::sys(format!(
        "bind rootfs {}",
        rootfs.display()
    )))
}

/// How the container's root replaces the old one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootSwitch {
    /// pivot_root, then detach the old root (the default).
    PivotRoot,
    /// Move the rootfs mount over `/` and chroot (`--no-pivot`).
    MoveRoot,
    /// chroot alone: without a mount namespace of its own the caller's mounts stay as they are.
    Chroot,
}

/// Makes `rootfs` the root.
pub fn pivot(rootfs: &Path, how: RootSwitch) -> Result<()> {
    nix::unistd::chdir(rootfs).map_err(LibcontainerError::sys(format!(
        "chdir {}",
        rootfs.display()
    )))?;
    if how == RootSwitch::Chroot {
        nix::unistd::chroot(".").map_err(LibcontainerError::sys("chroot"))?;
    } else if how == RootSwitch::MoveRoot {
        mount(
            Some(rootfs),
            "/",
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        )
        .map_err(LibcontainerError::sys("move rootfs to /"))?;
        nix::unistd::chroot(".").map_err(LibcontainerError::sys("chroot"))?;
    } else {
        // Stack the old root under the new one, then detach it: no directory is needed for it.
        nix::unistd::pivot_root(".", ".").map_err(LibcontainerError::sys("pivot_root"))?;
        mount(
            None::<&str>,
            ".",
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(LibcontainerError::sys("make old root slave"))?;
        umount2(".", MntFlags::MNT_DETACH).map_err(LibcontainerError::sys("detach old root"))?;
    }
    nix::unistd::chdir("/").map_err(LibcontainerError::sys("chdir /"))
}

/// After pivot: final propagation, sysctls, masked and read-only paths, read-only root.
/// Without `own_mounts` only sysctls apply (`spec` refuses the rest there).
pub fn finish(spec: &Spec, own_mounts: bool) -> Result<()> {
    let linux = spec.linux().as_ref();
    let prop = initial_propagation(spec)?;
    if own_mounts && (prop.contains(MsFlags::MS_SHARED) || prop.contains(MsFlags::MS_PRIVATE)) {
        mount(None::<&str>, "/", None::<&str>, prop, None::<&str>)
            .map_err(LibcontainerError::sys("set rootfs propagation"))?;
    }
    for (key, value) in linux
        .and_then(|l| l.sysctl().as_ref())
        .into_iter()
        .flatten()
    {
        let path = sysctl_path(key)?;
        std::fs::write(&path, value).map_err(LibcontainerError::io(format!("sysctl {key}")))?;
    }
    for p in linux
        .and_then(|l| l.masked_paths().as_ref())
        .into_iter()
        .flatten()
    {
        mask(Path::new(p))?;
    }
    for p in linux
        .and_then(|l| l.readonly_paths().as_ref())
        .into_iter()
        .flatten()
    {
        readonly(Path::new(p))?;
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        remount_readonly(Path::new("/"), false)?;
    }
    Ok(())
}

/// The /proc/sys file of a sysctl key; rejects keys that would walk out of /proc/sys.
pub fn sysctl_path(key: &str) -> Result<PathBuf> {
    if key.is_empty() || key.split(['.', '/']).any(|c| c.is_empty() || c == "..") {
        return Err(LibcontainerError::InvalidSpec(format!(
            "invalid sysctl {key:?}"
        )));
    }
    Ok(Path::new("/proc/sys").join(key.replace('.', "/")))
}

fn mask(p: &Path) -> Result<()> {
    let meta = match std::fs::metadata(p) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(LibcontainerError::Io {
                op: format!("stat {}", p.display()),
                source: e,
            })
        }
    };
    let r = if meta.is_dir() {
        mount(
            Some("tmpfs"),
            p,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            Some("size=0"),
        )
    } else {
        mount(
            Some("/dev/null"),
            p,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    };
    r.map_err(LibcontainerError::sys(format!("mask {}", p.display())))
}

fn readonly(p: &Path) -> Result<()> {
    match mount(
        Some(p),
        p,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    ) {
        Ok(()) => remount_readonly(p, true),
        Err(nix::Error::ENOENT) => Ok(()),
        Err(e) => Err(LibcontainerError::Sys {
            op: format!("bind {} read-only", p.display()),
            source: e,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_paths() {
        assert_eq!(
            sysctl_path("net.ipv4.ip_forward").expect("ok"),
            PathBuf::from("/proc/sys/net/ipv4/ip_forward")
        );
        assert!(sysctl_path("../../etc/passwd").is_err());
        assert!(sysctl_path("kernel..x").is_err());
        assert!(sysctl_path("").is_err());
    }

    #[test]
    fn propagation_default_and_explicit() {
        let mut spec = Spec::default();
        assert_eq!(
            initial_propagation(&spec).expect("p"),
            MsFlags::MS_SLAVE | MsFlags::MS_REC
        );
        let mut linux = spec.linux().clone().expect("linux");
        linux.set_rootfs_propagation(Some("private".into()));
        spec.set_linux(Some(linux.clone()));
        assert_eq!(initial_propagation(&spec).expect("p"), MsFlags::MS_PRIVATE);
        linux.set_rootfs_propagation(Some("sideways".into()));
        spec.set_linux(Some(linux));
        assert!(initial_propagation(&spec).is_err());
    }
}
