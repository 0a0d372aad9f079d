//! The `cgroup` mount inside the container: the container's own cgroup directories, never the
//! host's whole hierarchy (like runc's cgroupfs driver without a cgroup namespace).

use std::path::Path;

use nix::mount::{mount, MsFlags};

use crate::cgroup::CgroupDir;
use crate::error::{LibcontainerError, Result};
use crate::fsroot::{fd_path, RootDir};
use crate::mount::MountOptions;

/// Mounts `dirs` at `dest`: each under a tmpfs by hierarchy name (v1), or the single v2
/// directory directly at `dest`.
pub fn mount_cgroups(
    root: &RootDir,
    dest: &Path,
    opts: &MountOptions,
    dirs: &[CgroupDir],
) -> Result<()> {
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let ro = opts.flags & MsFlags::MS_RDONLY;
    let bind = |dir: &Path, at: &Path| -> Result<()> {
        let target = root.mkdir_all(at, 0o755)?;
        mount(
            Some(dir),
            &fd_path(&target),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(LibcontainerError::sys(format!(
            "bind cgroup {}",
            dir.display()
        )))?;
        // Reopen: the old descriptor names the directory under the new mount.
        let target = root.mkdir_all(at, 0o755)?;
        mount(
            None::<&str>,
            &fd_path(&target),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags | ro,
            None::<&str>,
        )
        .map_err(LibcontainerError::sys(format!(
            "remount cgroup {}",
            at.display()
        )))
    };
    if let [single] = dirs {
        if single.name.is_empty() {
            return bind(&single.dir, dest);
        }
    }
    let target = root.mkdir_all(dest, 0o755)?;
    mount(
        Some("tmpfs"),
        &fd_path(&target),
        Some("tmpfs"),
        flags,
        Some("mode=755"),
    )
    .map_err(LibcontainerError::sys(format!(
        "mount tmpfs on {}",
        dest.display()
    )))?;
    for d in dirs.iter().filter(|d| !d.name.is_empty()) {
        bind(&d.dir, &dest.join(&d.name))?;
    }
    if !ro.is_empty() {
        let target = root.mkdir_all(dest, 0o755)?;
        mount(
            None::<&str>,
            &fd_path(&target),
            None::<&str>,
            MsFlags::MS_REMOUNT | flags | ro,
            None::<&str>,
        )
        .map_err(LibcontainerError::sys(format!(
            "remount {} read-only",
            dest.display()
        )))?;
    }
    Ok(())
}
