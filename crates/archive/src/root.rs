//! A directory that every path operation stays inside.
//!
//! All lookups go through `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` from one directory
//! fd, so `..`, absolute symlinks and symlink chains planted by an archive are resolved as if the
//! root were `/`; the final component is then created or inspected with `*at` calls that do not
//! follow it. Nothing ever joins an untrusted name onto a host path and lets the kernel follow it.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Dir, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;

use crate::ArchiveError;

pub(crate) struct Root {
    fd: OwnedFd,
}

impl Root {
    pub(crate) fn open(path: &Path) -> Result<Root, ArchiveError> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| ArchiveError::io("open root", path.display(), e))?;
        Ok(Root { fd })
    }

    /// Opens `rel` (clean, relative) resolved inside the root.
    pub(crate) fn open_in(&self, rel: &Path, flags: OFlags) -> io::Result<OwnedFd> {
        let rel = crate::path::or_dot(rel);
        Ok(rustix::fs::openat2(
            &self.fd,
            rel,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )?)
    }

    /// The directory `rel`, following symlinks inside the root.
    pub(crate) fn dir(&self, rel: &Path) -> io::Result<OwnedFd> {
        self.open_in(rel, OFlags::RDONLY | OFlags::DIRECTORY)
    }

    /// The directory `rel`, creating missing components (mode 0755, like Docker) on the way.
    pub(crate) fn dir_create(&self, rel: &Path) -> Result<OwnedFd, ArchiveError> {
        let comps: Vec<_> = rel.components().collect();
        // Find the deepest existing ancestor, searching from the leaf: usually only the last
        // component or two are new, so this stays cheap for deep trees.
        let mut have = comps.len();
        let mut cur = loop {
            let prefix: PathBuf = comps[..have].iter().collect();
            match self.dir(&prefix) {
                Ok(fd) => break fd,
                Err(e) if e.kind() == io::ErrorKind::NotFound && have > 0 => have -= 1,
                Err(e) => return Err(ArchiveError::io("open directory", prefix.display(), e)),
            }
        };
        for i in have..comps.len() {
            let name = comps[i].as_os_str();
            let shown = || {
                comps[..=i]
                    .iter()
                    .collect::<PathBuf>()
                    .display()
                    .to_string()
            };
            // A dangling symlink in the way makes mkdirat fail with EEXIST: reported, not followed.
            rustix::fs::mkdirat(&cur, name, Mode::from_raw_mode(0o755))
                .map_err(|e| ArchiveError::io("create directory", shown(), e))?;
            cur = rustix::fs::openat(
                &cur,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| ArchiveError::io("open directory", shown(), e))?;
        }
        Ok(cur)
    }
}

/// `lstat` of `name` in `dir`; `None` when absent.
pub(crate) fn lstat_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<Stat>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn is_dir(st: &Stat) -> bool {
    rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory
}

/// Removes `name` in `dir` and, when it is a directory, everything below it, without following
/// any symlink.
pub(crate) fn remove_all_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ISDIR) | Err(Errno::PERM) => {}
        Err(e) => return Err(e.into()),
    }
    let sub = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    for child in list_dir(sub.as_fd())? {
        remove_all_at(sub.as_fd(), &child)?;
    }
    match rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The names in a directory, without `.` and `..`, sorted bytewise (callers rely on the order
/// for deterministic tars).
pub(crate) fn list_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<std::ffi::OsString>> {
    use std::os::unix::ffi::OsStrExt;
    let mut it = Dir::read_from(dir)?;
    let mut names = Vec::new();
    while let Some(ent) = it.read() {
        let ent = ent?;
        let name = ent.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_os_string());
        }
    }
    names.sort();
    Ok(names)
}
