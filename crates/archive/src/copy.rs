//! Copying a local tree (vfs layers, volume copy-up).
//!
//! The walk holds a directory fd per level on both sides and reaches every entry with `*at`
//! calls that never follow its final component, so a symlink in the source is copied as a
//! link and nothing resolves a path from the root again: ten syscalls per small file, where
//! going through [`Extractor`] (each path resolved with `openat2` on both sides) took about
//! sixteen. Large directories are spread over rayon's pool, since per-file work is all
//! syscalls. 10,000 small files from overlayfs, on two cores: to tmpfs 275 ms through the
//! extractor, 190 ms walking by fds, 110 ms on both cores; to ext4 455 ms and 220 ms.
//!
//! [`Extractor`]: crate::node::Extractor

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use rayon::prelude::*;
use rustix::fs::{
    AtFlags, Dir, FileType, Gid, Mode, OFlags, Stat, Timespec, Timestamps, Uid, XattrFlags,
};
use rustix::io::Errno;

use crate::root::Root;
use crate::walk::{read_xattrs, Xattrs};
use crate::ArchiveError;

/// Largest buffer for file contents when the kernel cannot copy them itself.
const COPY_BUF: usize = 256 << 10;

/// Directories with fewer entries are copied on the calling thread.
const PARALLEL_MIN: usize = 32;

/// Copies the tree at `src` into the existing, empty directory `dst`, preserving ownership,
/// modes, times, xattrs, hard links, devices and fifos; sockets are skipped.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<(), ArchiveError> {
    let open = |p: &Path| {
        rustix::fs::open(
            p,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| ArchiveError::io("open", p.display(), e))
    };
    let (sfd, dfd) = (open(src)?, open(dst)?);
    let copier = Copier {
        dst_root: Root::open(dst)?,
        links: Mutex::new(HashMap::new()),
        kernel_copy: AtomicBool::new(true),
    };
    let rel = PathBuf::new();
    copier.contents(sfd.as_fd(), dfd.as_fd(), &rel)?;
    let st = rustix::fs::fstat(&sfd).map_err(at_err("stat", &rel))?;
    copier.meta(&Target::Fd(dfd.as_fd()), &st, Some(sfd.as_fd()), &rel)
}

struct Copier {
    /// For hard links: their first copy is named relative to this root.
    dst_root: Root,
    /// First destination path of each multiply-linked source inode. Held while that first
    /// copy is made, so a link from another thread never looks for a file not there yet.
    links: Mutex<HashMap<(u64, u64), PathBuf>>,
    /// `copy_file_range` works between these two filesystems (cleared at the first EXDEV).
    kernel_copy: AtomicBool,
}

/// Where metadata goes: an open node, or a name in a directory (symlinks, devices, fifos).
enum Target<'a> {
    Fd(BorrowedFd<'a>),
    At(BorrowedFd<'a>, &'a OsStr, bool),
}

fn at_err<'a>(op: &'static str, rel: &'a Path) -> impl FnOnce(Errno) -> ArchiveError + 'a {
    move |e| ArchiveError::io(op, rel.display(), e)
}

impl Copier {
    /// Copies what is inside the directory `sdir` into `ddir`.
    fn contents(
        &self,
        sdir: BorrowedFd<'_>,
        ddir: BorrowedFd<'_>,
        rel: &Path,
    ) -> Result<(), ArchiveError> {
        let mut names: Vec<OsString> = Vec::new();
        let mut it = Dir::read_from(sdir).map_err(at_err("list", rel))?;
        while let Some(ent) = it.read() {
            let ent = ent.map_err(at_err("list", rel))?;
            let name = ent.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(OsStr::from_bytes(name).to_os_string());
            }
        }
        drop(it);
        let one = |name: &OsString| self.entry(sdir, ddir, name, &rel.join(name));
        if names.len() < PARALLEL_MIN {
            names.iter().try_for_each(one)
        } else {
            names.par_iter().try_for_each(one)
        }
    }

    fn entry(
        &self,
        sdir: BorrowedFd<'_>,
        ddir: BorrowedFd<'_>,
        name: &OsStr,
        rel: &Path,
    ) -> Result<(), ArchiveError> {
        let st = rustix::fs::statat(sdir, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(at_err("stat", rel))?;
        let node_at = |ft: FileType, dev: u64| {
            rustix::fs::mknodat(ddir, name, ft, Mode::from_raw_mode(0o600), dev)
                .map_err(at_err("mknod", rel))
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => self.file(sdir, ddir, name, rel, &st),
            FileType::Directory => {
                rustix::fs::mkdirat(ddir, name, Mode::from_raw_mode(0o700))
                    .map_err(at_err("mkdir", rel))?;
                let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let s = rustix::fs::openat(sdir, name, flags, Mode::empty())
                    .map_err(at_err("open", rel))?;
                let d = rustix::fs::openat(ddir, name, flags, Mode::empty())
                    .map_err(at_err("open", rel))?;
                self.contents(s.as_fd(), d.as_fd(), rel)?;
                // After the children, which would bump its mtime again.
                self.meta(&Target::Fd(d.as_fd()), &st, Some(s.as_fd()), rel)
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(sdir, name, Vec::new())
                    .map_err(at_err("readlink", rel))?;
                rustix::fs::symlinkat(target.as_c_str(), ddir, name)
                    .map_err(at_err("symlink", rel))?;
                self.meta(&Target::At(ddir, name, true), &st, None, rel)
            }
            ft @ (FileType::CharacterDevice | FileType::BlockDevice) => {
                node_at(ft, st.st_rdev)?;
                self.meta(&Target::At(ddir, name, false), &st, None, rel)
            }
            FileType::Fifo => {
                node_at(FileType::Fifo, 0)?;
                self.meta(&Target::At(ddir, name, false), &st, None, rel)
            }
            // Sockets belong to a live process, not to the tree.
            _ => Ok(()),
        }
    }

    fn file(
        &self,
        sdir: BorrowedFd<'_>,
        ddir: BorrowedFd<'_>,
        name: &OsStr,
        rel: &Path,
        st: &Stat,
    ) -> Result<(), ArchiveError> {
        let _first_copy = if st.st_nlink > 1 {
            let mut links = self.links.lock().unwrap_or_else(|p| p.into_inner());
            let key = (st.st_dev, st.st_ino);
            if let Some(first) = links.get(&key) {
                // `first` is a path this copy made; resolved inside the destination anyway.
                let (tparent, tname) = crate::path::split(first)
                    .ok_or_else(|| crate::path::invalid(first, "hard link to the root"))?;
                let tdir = self
                    .dst_root
                    .dir(tparent)
                    .map_err(|e| ArchiveError::io("open", tparent.display(), e))?;
                return rustix::fs::linkat(&tdir, tname, ddir, name, AtFlags::empty())
                    .map_err(at_err("link", rel));
            }
            links.insert(key, rel.to_path_buf());
            Some(links)
        } else {
            None
        };
        let s = rustix::fs::openat(
            sdir,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(at_err("open", rel))?;
        let d = rustix::fs::openat(
            ddir,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(at_err("create", rel))?;
        let size = u64::try_from(st.st_size).unwrap_or(0);
        // A file with holes keeps them: the sparse writer skips zero blocks.
        let sparse = u64::try_from(st.st_blocks).unwrap_or(0) * 512 < size;
        let (mut sfile, mut dfile) = (File::from(s), File::from(d));
        let copied = if sparse {
            let mut buf = vec![0; COPY_BUF];
            crate::node::copy_sparse(&mut buf, &mut sfile, &mut dfile).map(drop)
        } else {
            self.dense(&sfile, &mut dfile, size)
        };
        copied.map_err(|e| ArchiveError::io("copy", rel.display(), e))?;
        self.meta(&Target::Fd(dfile.as_fd()), st, Some(sfile.as_fd()), rel)
    }

    /// Copies `size` bytes, in the kernel where both filesystems allow it (no copy through
    /// user space; a reflink on filesystems that share extents).
    fn dense(&self, mut s: &File, d: &mut File, size: u64) -> io::Result<()> {
        let mut done = 0u64;
        while self.kernel_copy.load(Ordering::Relaxed) && done < size {
            let want = usize::try_from(size - done).unwrap_or(usize::MAX);
            match rustix::fs::copy_file_range(s, None, &*d, None, want) {
                Ok(0) => return Ok(()),
                Ok(n) => done += n as u64,
                // Another filesystem pair, or one without the call: copy through a buffer.
                Err(Errno::XDEV | Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) if done == 0 => {
                    self.kernel_copy.store(false, Ordering::Relaxed)
                }
                Err(e) => return Err(e.into()),
            }
        }
        let mut buf = vec![0; usize::try_from(size - done).map_or(COPY_BUF, |n| n.min(COPY_BUF))];
        while done < size {
            let n = match s.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            d.write_all(&buf[..n])?;
            done += n as u64;
        }
        Ok(())
    }

    /// Ownership first (chown clears setuid bits and file capabilities), then mode and xattrs
    /// (read from `src` when the node has an fd), then times.
    fn meta(
        &self,
        target: &Target<'_>,
        st: &Stat,
        src: Option<BorrowedFd<'_>>,
        rel: &Path,
    ) -> Result<(), ArchiveError> {
        let (uid, gid) = (
            Some(Uid::from_raw(st.st_uid)),
            Some(Gid::from_raw(st.st_gid)),
        );
        let mode = Mode::from_raw_mode(st.st_mode & 0o7777);
        let times = Timestamps {
            last_access: Timespec {
                tv_sec: st.st_mtime,
                tv_nsec: st.st_mtime_nsec as _,
            },
            last_modification: Timespec {
                tv_sec: st.st_mtime,
                tv_nsec: st.st_mtime_nsec as _,
            },
        };
        match *target {
            Target::Fd(fd) => {
                rustix::fs::fchown(fd, uid, gid).map_err(at_err("chown", rel))?;
                rustix::fs::fchmod(fd, mode).map_err(at_err("chmod", rel))?;
                if let Some(src) = src {
                    let xattrs = read_xattrs(&src, Xattrs::All)
                        .map_err(|e| ArchiveError::io("read xattrs", rel.display(), e))?;
                    for (key, value) in xattrs {
                        match rustix::fs::fsetxattr(
                            fd,
                            OsStr::from_bytes(&key),
                            &value,
                            XattrFlags::empty(),
                        ) {
                            // Not every filesystem takes every namespace, as on extraction.
                            Ok(()) | Err(Errno::NOTSUP) | Err(Errno::PERM) => {}
                            Err(e) => return Err(ArchiveError::io("setxattr", rel.display(), e)),
                        }
                    }
                }
                rustix::fs::futimens(fd, &times).map_err(at_err("utimes", rel))
            }
            Target::At(dir, name, is_link) => {
                rustix::fs::chownat(dir, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(at_err("chown", rel))?;
                if !is_link {
                    rustix::fs::chmodat(dir, name, mode, AtFlags::empty())
                        .map_err(at_err("chmod", rel))?;
                }
                rustix::fs::utimensat(dir, name, &times, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(at_err("utimes", rel))
            }
        }
    }
}
