//! Spec mounts: option parsing (pure) and performing one mount inside the rootfs.

use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use oci_spec::runtime::Mount;
use rustix::fs::OFlags;

use crate::cgroup::CgroupDir;
use crate::error::{LibcontainerError, Result};
use crate::fsroot::{fd_path, sys, RootDir};

/// A spec mount's options split into what mount(2) needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags for the mount call.
    pub flags: MsFlags,
    /// Propagation changes, applied one by one after mounting.
    pub propagation: Vec<MsFlags>,
    /// Filesystem-specific data (`mode=755,size=65536k`).
    pub data: String,
}

impl MountOptions {
    /// Whether this is a bind mount.
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }
}

/// Parses runc-style mount options; unknown options become filesystem data.
pub fn parse_options(opts: &[String]) -> MountOptions {
    let mut out = MountOptions {
        flags: MsFlags::empty(),
        propagation: Vec::new(),
        data: String::new(),
    };
    let mut data = Vec::new();
    for o in opts {
        let (clear, flag) = match o.as_str() {
            "ro" | "rro" => (false, MsFlags::MS_RDONLY),
            "rw" | "rrw" => (true, MsFlags::MS_RDONLY),
            "nosuid" => (false, MsFlags::MS_NOSUID),
            "suid" => (true, MsFlags::MS_NOSUID),
            "nodev" => (false, MsFlags::MS_NODEV),
            "dev" => (true, MsFlags::MS_NODEV),
            "noexec" => (false, MsFlags::MS_NOEXEC),
            "exec" => (true, MsFlags::MS_NOEXEC),
            "sync" => (false, MsFlags::MS_SYNCHRONOUS),
            "async" => (true, MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (false, MsFlags::MS_DIRSYNC),
            "remount" => (false, MsFlags::MS_REMOUNT),
            "mand" => (false, MsFlags::MS_MANDLOCK),
            "nomand" => (true, MsFlags::MS_MANDLOCK),
            "atime" => (true, MsFlags::MS_NOATIME),
            "noatime" => (false, MsFlags::MS_NOATIME),
            "diratime" => (true, MsFlags::MS_NODIRATIME),
            "nodiratime" => (false, MsFlags::MS_NODIRATIME),
            "relatime" => (false, MsFlags::MS_RELATIME),
            "norelatime" => (true, MsFlags::MS_RELATIME),
            "strictatime" => (false, MsFlags::MS_STRICTATIME),
            "nostrictatime" => (true, MsFlags::MS_STRICTATIME),
            "bind" => (false, MsFlags::MS_BIND),
            "rbind" => (false, MsFlags::MS_BIND | MsFlags::MS_REC),
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                out.propagation
                    .push(propagation(o).unwrap_or(MsFlags::MS_PRIVATE));
                continue;
            }
            // Docker passes tmpcopyup for tmpfs; the image content is not ours to copy.
            "tmpcopyup" => continue,
            other => {
                data.push(other.to_string());
                continue;
            }
        };
        if clear {
            out.flags.remove(flag);
        } else {
            out.flags.insert(flag);
        }
    }
    out.data = data.join(",");
    out
}

/// The flags for a propagation keyword (`rootfsPropagation` and mount options).
pub fn propagation(word: &str) -> Option<MsFlags> {
    Some(match word {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

/// Flags that a bind remount must repeat, or the kernel refuses (locked flags) or clears them.
const BIND_REMOUNT_KEEP: MsFlags = MsFlags::MS_RDONLY
    .union(MsFlags::MS_NOSUID)
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

/// Performs one spec mount inside `root`. Relative bind sources are relative to `bundle`;
/// `cgroup` mounts expose `cgroups`.
pub fn mount_in_root(
    root: &RootDir,
    m: &Mount,
    bundle: &Path,
    cgroups: &[CgroupDir],
) -> Result<()> {
    let opts = parse_options(m.options().as_deref().unwrap_or_default());
    let typ = m
        .typ()
        .as_deref()
        .unwrap_or(if opts.is_bind() { "bind" } else { "none" });
    let dest = m.destination();
    if typ == "cgroup" || typ == "cgroup2" {
        return crate::cgroupfs_mount::mount_cgroups(root, dest, &opts, cgroups);
    }
    let source: Option<PathBuf> = m.source().as_ref().map(|s| {
        if opts.is_bind() && s.is_relative() {
            bundle.join(s)
        } else {
            s.clone()
        }
    });
    let target = if opts.is_bind() && source.as_deref().is_some_and(|s| !s.is_dir()) {
        root.touch(dest)?
    } else {
        root.mkdir_all(dest, 0o755)?
    };
    let first_flags = if opts.is_bind() {
        opts.flags & (MsFlags::MS_BIND | MsFlags::MS_REC)
    } else {
        opts.flags
    };
    let data = (!opts.data.is_empty()).then_some(opts.data.as_str());
    let fstype = (!opts.is_bind()).then_some(typ);
    mount(
        source.as_deref(),
        &fd_path(&target),
        fstype,
        first_flags,
        data,
    )
    .map_err(LibcontainerError::sys(format!(
        "mount {typ} on {}",
        dest.display()
    )))?;
    // The descriptor still names the covered directory; reopen to reach the new mount.
    let mounted = root
        .open_in(dest, OFlags::PATH)
        .map_err(|e| sys(format!("reopen {}", dest.display()), e))?;
    if opts.is_bind()
        && opts
            .flags
            .intersects(BIND_REMOUNT_KEEP | MsFlags::MS_NOATIME)
    {
        let flags = MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | (opts.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC));
        mount(
            None::<&str>,
            &fd_path(&mounted),
            None::<&str>,
            flags,
            None::<&str>,
        )
        .map_err(LibcontainerError::sys(format!(
            "remount {}",
            dest.display()
        )))?;
    }
    for p in &opts.propagation {
        mount(
            None::<&str>,
            &fd_path(&mounted),
            None::<&str>,
            *p,
            None::<&str>,
        )
        .map_err(LibcontainerError::sys(format!(
            "set propagation on {}",
            dest.display()
        )))?;
    }
    Ok(())
}

/// Bind-remounts `path` read-only, keeping the flags it already has (they may be locked).
pub fn remount_readonly(path: &Path, recursive: bool) -> Result<()> {
    let cur = nix::sys::statvfs::statvfs(path).map_err(LibcontainerError::sys(format!(
        "statvfs {}",
        path.display()
    )))?;
    let mut keep = MsFlags::empty();
    let f = cur.flags();
    use nix::sys::statvfs::FsFlags;
    for (s, m) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(s) {
            keep |= m;
        }
    }
    let rec = if recursive {
        MsFlags::MS_REC
    } else {
        MsFlags::empty()
    };
    mount(
        None::<&str>,
        path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | keep | rec,
        None::<&str>,
    )
    .map_err(LibcontainerError::sys(format!(
        "remount {} read-only",
        path.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(o: &[&str]) -> MountOptions {
        parse_options(&o.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_and_data() {
        let o = p(&["nosuid", "strictatime", "mode=755", "size=65536k"]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(o.data, "mode=755,size=65536k");
        assert!(!o.is_bind());
    }

    #[test]
    fn later_options_override() {
        assert_eq!(p(&["ro", "rw"]).flags, MsFlags::empty());
        assert_eq!(p(&["noexec", "exec", "nodev"]).flags, MsFlags::MS_NODEV);
    }

    #[test]
    fn bind_and_propagation() {
        let o = p(&["rbind", "ro", "rprivate"]);
        assert!(o.is_bind());
        assert!(o.flags.contains(MsFlags::MS_REC | MsFlags::MS_RDONLY));
        assert_eq!(o.propagation, vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC]);
        assert!(o.data.is_empty());
        assert_eq!(
            propagation("rslave"),
            Some(MsFlags::MS_SLAVE | MsFlags::MS_REC)
        );
        assert_eq!(propagation("bogus"), None);
    }
}
