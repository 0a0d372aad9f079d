//! Materialising filesystem nodes inside a [`Root`]: the one writer behind layer application,
//! `docker cp` extraction and vfs tree copies.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid, XattrFlags};
use rustix::io::Errno;

use crate::root::{is_dir, lstat_at, remove_all_at, Root};
use crate::{ApplyOptions, ArchiveError, WhiteoutFormat};

/// What kind of node to create.
#[derive(Debug, Clone)]
pub(crate) enum NodeKind {
    File,
    Dir,
    Symlink(PathBuf),
    /// A hard link to a clean path relative to the extraction root.
    Hardlink(PathBuf),
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
}

/// A node's kind plus the metadata applied to it.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub kind: NodeKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Timespec,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Overlay's marker that a directory hides everything below it in lower layers.
pub(crate) const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Writes nodes into a root, in archive order.
pub(crate) struct Extractor<'o> {
    root: Root,
    opts: &'o ApplyOptions,
    bytes: u64,
    /// Directory mtimes are applied last: creating children would bump them again.
    dir_times: Vec<(PathBuf, Timespec)>,
    /// Paths this archive created, so an opaque marker in `Remove` mode spares them.
    unpacked: HashSet<PathBuf>,
    /// Refuse to replace a directory by a non-directory or the reverse (`docker cp` semantics).
    keep_types: bool,
    /// File contents go through this: `io::copy`'s 8 KiB buffer costs a syscall pair per 8 KiB.
    buf: Vec<u8>,
}

/// Size of [`Extractor`]'s copy buffer: most layer files fit in one read and one write.
const COPY_BUF: usize = 256 << 10;

fn at_err<'a>(op: &'static str, rel: &'a Path) -> impl FnOnce(Errno) -> ArchiveError + 'a {
    move |e| ArchiveError::io(op, rel.display(), e)
}

impl<'o> Extractor<'o> {
    pub(crate) fn new(root: &Path, opts: &'o ApplyOptions) -> Result<Self, ArchiveError> {
        Ok(Extractor {
            root: Root::open(root)?,
            opts,
            bytes: 0,
            dir_times: Vec::new(),
            unpacked: HashSet::new(),
            keep_types: false,
            buf: vec![0; COPY_BUF],
        })
    }

    /// Makes later [`put`](Self::put)s refuse to change a directory into a non-directory or back.
    pub(crate) fn keep_types(&mut self) {
        self.keep_types = true;
    }

    pub(crate) fn root(&self) -> &Root {
        &self.root
    }

    /// Creates `rel` as `node`, replacing whatever non-directory is there (tar semantics: the
    /// last entry for a path wins; a directory over a directory merges).
    pub(crate) fn put(
        &mut self,
        rel: &Path,
        node: &Node,
        content: &mut dyn Read,
    ) -> Result<(), ArchiveError> {
        self.create(rel, node, content, self.opts.allow_devices)
    }

    fn create(
        &mut self,
        rel: &Path,
        node: &Node,
        content: &mut dyn Read,
        allow_devices: bool,
    ) -> Result<(), ArchiveError> {
        let Some((parent, name)) = crate::path::split(rel) else {
            return self.put_root(node);
        };
        if matches!(node.kind, NodeKind::Char(..) | NodeKind::Block(..)) && !allow_devices {
            return Err(ArchiveError::DeviceRefused {
                path: rel.display().to_string(),
            });
        }
        let pfd = self.root.dir_create(parent)?;
        let pfd = pfd.as_fd();
        let existing =
            lstat_at(pfd, name).map_err(|e| ArchiveError::io("stat", rel.display(), e))?;
        let keep_dir = matches!(node.kind, NodeKind::Dir) && existing.as_ref().is_some_and(is_dir);
        if self.keep_types
            && existing
                .as_ref()
                .is_some_and(|st| is_dir(st) != matches!(node.kind, NodeKind::Dir))
        {
            return Err(crate::path::invalid(
                rel,
                "cannot overwrite a directory with a non-directory or the reverse",
            ));
        }
        if existing.is_some() && !keep_dir {
            if let NodeKind::Hardlink(target) = &node.kind {
                if target == rel {
                    return Ok(());
                }
            }
            remove_all_at(pfd, name).map_err(|e| ArchiveError::io("replace", rel.display(), e))?;
        }
        if self.opts.whiteouts == WhiteoutFormat::Remove {
            self.unpacked.insert(rel.to_path_buf());
        }
        let fd: Option<OwnedFd> = match &node.kind {
            NodeKind::File => {
                let fd = rustix::fs::openat(
                    pfd,
                    name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(at_err("create", rel))?;
                let mut file = File::from(fd);
                self.bytes += copy_sparse(&mut self.buf, content, &mut file)
                    .map_err(|e| ArchiveError::io("write", rel.display(), e))?;
                Some(OwnedFd::from(file))
            }
            NodeKind::Dir => {
                if !keep_dir {
                    rustix::fs::mkdirat(pfd, name, Mode::from_raw_mode(0o700))
                        .map_err(at_err("mkdir", rel))?;
                }
                let fd = rustix::fs::openat(
                    pfd,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(at_err("open", rel))?;
                Some(fd)
            }
            NodeKind::Symlink(target) => {
                rustix::fs::symlinkat(target.as_path(), pfd, name)
                    .map_err(at_err("symlink", rel))?;
                None
            }
            NodeKind::Hardlink(target) => {
                let (tparent, tname) = crate::path::split(target)
                    .ok_or_else(|| crate::path::invalid(target, "hard link to the root"))?;
                // The target's parent resolves inside the root and its final component is not
                // followed, so a link can never reach a file outside the root.
                let tfd = self.root.dir(tparent).map_err(|_| {
                    crate::path::invalid(target, "hard link target does not exist inside the root")
                })?;
                rustix::fs::linkat(&tfd, tname, pfd, name, AtFlags::empty()).map_err(
                    |e| match e {
                        Errno::NOENT => crate::path::invalid(
                            target,
                            "hard link target does not exist inside the root",
                        ),
                        Errno::PERM => {
                            crate::path::invalid(target, "hard link target is a directory")
                        }
                        e => ArchiveError::io("link", rel.display(), e),
                    },
                )?;
                // The target carries the metadata already.
                return Ok(());
            }
            NodeKind::Char(maj, min) | NodeKind::Block(maj, min) => {
                let ft = if matches!(node.kind, NodeKind::Char(..)) {
                    FileType::CharacterDevice
                } else {
                    FileType::BlockDevice
                };
                rustix::fs::mknodat(
                    pfd,
                    name,
                    ft,
                    Mode::from_raw_mode(0o600),
                    rustix::fs::makedev(*maj, *min),
                )
                .map_err(at_err("mknod", rel))?;
                None
            }
            NodeKind::Fifo => {
                rustix::fs::mknodat(pfd, name, FileType::Fifo, Mode::from_raw_mode(0o600), 0)
                    .map_err(at_err("mkfifo", rel))?;
                None
            }
        };
        self.apply_meta(pfd, name, rel, node, fd.as_ref())
    }

    fn put_root(&mut self, node: &Node) -> Result<(), ArchiveError> {
        if !matches!(node.kind, NodeKind::Dir) {
            return Err(crate::path::invalid(
                Path::new("/"),
                "only a directory can stand for the root",
            ));
        }
        let fd = self
            .root
            .dir(Path::new(""))
            .map_err(|e| ArchiveError::io("open", "/", e))?;
        self.apply_meta(fd.as_fd(), OsStr::new("."), Path::new(""), node, Some(&fd))
    }

    /// Ownership first (chown clears setuid bits and file capabilities), then mode and xattrs,
    /// then times.
    fn apply_meta(
        &mut self,
        pfd: BorrowedFd<'_>,
        name: &OsStr,
        rel: &Path,
        node: &Node,
        fd: Option<&OwnedFd>,
    ) -> Result<(), ArchiveError> {
        let is_link = matches!(node.kind, NodeKind::Symlink(_));
        if self.opts.preserve_ownership {
            let (uid, gid) = self.opts.chown.unwrap_or((node.uid, node.gid));
            rustix::fs::chownat(
                pfd,
                name,
                Some(Uid::from_raw(uid)),
                Some(Gid::from_raw(gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(at_err("chown", rel))?;
        }
        if !is_link {
            let mode = Mode::from_raw_mode(node.mode & 0o7777);
            match fd {
                Some(fd) => rustix::fs::fchmod(fd, mode),
                None => rustix::fs::chmodat(pfd, name, mode, AtFlags::empty()),
            }
            .map_err(at_err("chmod", rel))?;
        }
        if let Some(fd) = fd {
            for (key, value) in &node.xattrs {
                match rustix::fs::fsetxattr(fd, OsStr::from_bytes(key), value, XattrFlags::empty())
                {
                    // Not every filesystem takes every namespace (trusted.* needs root); Docker
                    // also tolerates these.
                    Ok(()) | Err(Errno::NOTSUP) | Err(Errno::PERM) => {}
                    Err(e) => return Err(ArchiveError::io("setxattr", rel.display(), e)),
                }
            }
        }
        if matches!(node.kind, NodeKind::Dir) {
            self.dir_times.push((rel.to_path_buf(), node.mtime));
            return Ok(());
        }
        let times = Timestamps {
            last_access: node.mtime,
            last_modification: node.mtime,
        };
        rustix::fs::utimensat(pfd, name, &times, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(at_err("utimes", rel))
    }

    /// Handles `.wh.<name>` in `dir`.
    pub(crate) fn whiteout(
        &mut self,
        dir: &Path,
        name: &OsStr,
        uid: u32,
        gid: u32,
    ) -> Result<(), ArchiveError> {
        let rel = dir.join(name);
        match self.opts.whiteouts {
            WhiteoutFormat::Remove => match self.root.dir(dir) {
                Ok(pfd) => remove_all_at(pfd.as_fd(), name)
                    .map_err(|e| ArchiveError::io("whiteout", rel.display(), e)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(ArchiveError::io("whiteout", rel.display(), e)),
            },
            WhiteoutFormat::Overlay => {
                let node = Node {
                    kind: NodeKind::Char(0, 0),
                    mode: 0,
                    uid,
                    gid,
                    mtime: Timespec {
                        tv_sec: 0,
                        tv_nsec: 0,
                    },
                    xattrs: Vec::new(),
                };
                // A whiteout is how overlay spells deletion, not a device the archive smuggles in.
                self.create(&rel, &node, &mut io::empty(), true)
            }
        }
    }

    /// Handles `.wh..wh..opq` in `dir`.
    pub(crate) fn opaque(&mut self, dir: &Path) -> Result<(), ArchiveError> {
        let dfd = match self.root.dir(dir) {
            Ok(fd) => fd,
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    && self.opts.whiteouts == WhiteoutFormat::Remove =>
            {
                return Ok(())
            }
            Err(_) => self.root.dir_create(dir)?,
        };
        match self.opts.whiteouts {
            WhiteoutFormat::Overlay => {
                rustix::fs::fsetxattr(&dfd, OPAQUE_XATTR, b"y", XattrFlags::empty())
                    .map_err(|e| ArchiveError::io("mark opaque", dir.display(), e))
            }
            WhiteoutFormat::Remove => {
                let names = crate::root::list_dir(dfd.as_fd())
                    .map_err(|e| ArchiveError::io("list", dir.display(), e))?;
                for child in names {
                    if !self.unpacked.contains(&dir.join(&child)) {
                        remove_all_at(dfd.as_fd(), &child).map_err(|e| {
                            ArchiveError::io("opaque remove", dir.join(&child).display(), e)
                        })?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Applies the deferred directory times, deepest first, and returns the content bytes written.
    pub(crate) fn finish(mut self) -> Result<u64, ArchiveError> {
        self.dir_times
            .sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
        for (rel, mtime) in &self.dir_times {
            let times = Timestamps {
                last_access: *mtime,
                last_modification: *mtime,
            };
            let (parent, name) = match crate::path::split(rel) {
                Some((p, n)) => (p, n),
                None => (Path::new(""), OsStr::new(".")),
            };
            let pfd = match self.root.dir(parent) {
                Ok(fd) => fd,
                // Removed again by a later whiteout.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(ArchiveError::io("open", parent.display(), e)),
            };
            match rustix::fs::utimensat(&pfd, name, &times, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(ArchiveError::io("utimes", rel.display(), e)),
            }
        }
        Ok(self.bytes)
    }
}

/// Granularity of hole detection: a filesystem block.
const HOLE_BLOCK: usize = 4096;
static ZERO_BLOCK: [u8; HOLE_BLOCK] = [0; HOLE_BLOCK];

/// Copies `r` into `file`, leaving holes where whole blocks are zero: a GNU sparse entry (or a
/// compressed run of zeros) of huge apparent size takes only the disk its data needs.
/// Returns the apparent size written.
pub(crate) fn copy_sparse(buf: &mut [u8], r: &mut dyn Read, file: &mut File) -> io::Result<u64> {
    use std::io::{Seek, SeekFrom};
    let mut total = 0u64;
    let mut pending_hole = 0u64;
    loop {
        let n = match r.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        for chunk in buf[..n].chunks(HOLE_BLOCK) {
            // Slice equality is a memcmp: fast even without optimisations.
            if chunk == &ZERO_BLOCK[..] {
                pending_hole += HOLE_BLOCK as u64;
                continue;
            }
            if pending_hole > 0 {
                let skip = i64::try_from(pending_hole).map_err(io::Error::other)?;
                file.seek(SeekFrom::Current(skip))?;
                pending_hole = 0;
            }
            file.write_all(chunk)?;
        }
        total += n as u64;
    }
    if pending_hole > 0 {
        // A trailing hole exists only once the size says so.
        file.set_len(total)?;
    }
    Ok(total)
}

/// `io::copy` through the caller's buffer (its 8 KiB one costs a syscall pair per 8 KiB).
pub fn copy_buffered(buf: &mut [u8], r: &mut dyn Read, w: &mut dyn Write) -> io::Result<u64> {
    let mut total = 0u64;
    loop {
        let n = match r.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..n])?;
        total += n as u64;
    }
}
