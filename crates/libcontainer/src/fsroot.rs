//! Path operations confined to the container's rootfs.
//!
//! Every lookup goes through `openat2(RESOLVE_IN_ROOT)`, so a symlink planted in the rootfs
//! (`/proc -> /host/etc`, `../../..`) resolves inside the rootfs and a mount can never land on
//! the host. Mounts are then made on `/proc/self/fd/N` of the resolved descriptor.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::error::{LibcontainerError, Result};

fn resolve() -> ResolveFlags {
    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS
}

/// Lexically cleans `path` to components below the root ("." dropped, ".." kept for the kernel
/// to clamp).
fn rel(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| {
            !matches!(
                c,
                Component::RootDir | Component::CurDir | Component::Prefix(_)
            )
        })
        .collect()
}

/// A directory descriptor acting as `/` for lookups.
#[derive(Debug)]
pub struct RootDir {
    fd: OwnedFd,
}

/// A path in `/proc/self/fd` naming an open descriptor, for syscalls that take paths.
pub fn fd_path(fd: &impl AsRawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

impl RootDir {
    /// Opens `path` (a host path) as the root.
    pub fn open(path: &Path) -> Result<RootDir> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| sys(format!("open rootfs {}", path.display()), e))?;
        Ok(RootDir { fd })
    }

    /// Opens `path` inside the root with `flags` (O_CLOEXEC is always added).
    pub fn open_in(&self, path: &Path, flags: OFlags) -> std::result::Result<OwnedFd, Errno> {
        let p = rel(path);
        let p = if p.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            p
        };
        rustix::fs::openat2(
            self.fd.as_fd(),
            &p,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            resolve(),
        )
    }

    /// Creates `path` and its parents as directories inside the root; returns an O_PATH fd.
    pub fn mkdir_all(&self, path: &Path, mode: u32) -> Result<OwnedFd> {
        let p = rel(path);
        let mut prefix = PathBuf::new();
        let mut dir = self
            .open_in(&prefix, OFlags::PATH | OFlags::DIRECTORY)
            .map_err(|e| sys("open root", e))?;
        for comp in p.components() {
            prefix.push(comp);
            dir = match self.open_in(&prefix, OFlags::PATH | OFlags::DIRECTORY) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => {
                    match rustix::fs::mkdirat(
                        dir.as_fd(),
                        comp.as_os_str(),
                        Mode::from_raw_mode(mode),
                    ) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(sys(format!("mkdir {}", prefix.display()), e)),
                    }
                    self.open_in(&prefix, OFlags::PATH | OFlags::DIRECTORY)
                        .map_err(|e| sys(format!("open {}", prefix.display()), e))?
                }
                Err(e) => return Err(sys(format!("open {}", prefix.display()), e)),
            };
        }
        Ok(dir)
    }

    /// Makes sure `path` exists as a file (for file bind mounts and device nodes).
    pub fn touch(&self, path: &Path) -> Result<OwnedFd> {
        // An existing target is only looked at: opening it for writing would copy it up into
        // an overlay's upper dir (a spurious change in `docker diff`) or block on a fifo.
        if let Ok(fd) = self.open_in(path, OFlags::PATH) {
            return Ok(fd);
        }
        let (parent, name) = self.parent_of(path)?;
        match rustix::fs::openat(
            parent.as_fd(),
            name.as_path(),
            OFlags::CREATE | OFlags::EXCL | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        ) {
            Ok(_) | Err(Errno::EXIST) | Err(Errno::ISDIR) | Err(Errno::LOOP) => {}
            Err(e) => return Err(sys(format!("create {}", path.display()), e)),
        }
        self.open_in(path, OFlags::PATH)
            .map_err(|e| sys(format!("open {}", path.display()), e))
    }

    /// The parent directory (created if missing) and final name of `path`.
    pub fn parent_of(&self, path: &Path) -> Result<(OwnedFd, PathBuf)> {
        let p = rel(path);
        let name = p.file_name().map(PathBuf::from).ok_or_else(|| {
            LibcontainerError::InvalidSpec(format!("path {} has no file name", path.display()))
        })?;
        let parent = self.mkdir_all(p.parent().unwrap_or(Path::new("")), 0o755)?;
        Ok((parent, name))
    }
}

pub(crate) fn sys(op: impl Into<String>, e: Errno) -> LibcontainerError {
    LibcontainerError::Sys {
        op: op.into(),
        source: nix::Error::from_raw(e.raw_os_error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_resolve_inside_root() {
        let host = tempfile::tempdir().expect("tempdir");
        let root = host.path().join("rootfs");
        std::fs::create_dir(&root).expect("mkdir");
        let outside = host.path().join("outside");
        std::fs::create_dir(&outside).expect("mkdir");
        symlink(&outside, root.join("evil")).expect("symlink");
        symlink("../../..", root.join("up")).expect("symlink");
        let r = RootDir::open(&root).expect("root");
        // The link's target does not exist inside the root: refuse rather than follow it out.
        assert!(r.mkdir_all(Path::new("/evil/sub"), 0o755).is_err());
        assert!(
            !outside.join("sub").exists(),
            "escaped the root through a symlink"
        );
        let inside = root.join(outside.strip_prefix("/").expect("abs"));
        std::fs::create_dir_all(&inside).expect("mkdir");
        r.mkdir_all(Path::new("/evil/sub"), 0o755).expect("mkdir");
        assert!(inside.join("sub").is_dir());
        assert!(
            !outside.join("sub").exists(),
            "escaped the root through a symlink"
        );
        r.mkdir_all(Path::new("up/x"), 0o755).expect("mkdir");
        assert!(root.join("x").is_dir());
        r.touch(Path::new("/a/b/file")).expect("touch");
        assert!(root.join("a/b/file").is_file());
    }

    #[test]
    fn lexical_clean() {
        assert_eq!(rel(Path::new("/a/./b/")), PathBuf::from("a/b"));
        assert_eq!(rel(Path::new("/")), PathBuf::new());
    }
}
