//! Reading trees confined to a root: the source side of tar writing and vfs copies.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, OFlags, Stat, Timespec};

use crate::node::{Node, NodeKind};
use crate::root::Root;
use crate::ArchiveError;

/// Which extended attributes a reader picks up.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Xattrs {
    /// Everything (tree copies).
    All,
    /// Only `security.capability`, as Docker puts in layer tars.
    Capability,
}

/// One node read from a source tree.
pub(crate) struct SourceEntry {
    pub node: Node,
    /// Open for reading when the node is a regular file.
    pub file: Option<File>,
}

pub(crate) struct Source {
    root: Root,
    xattrs: Xattrs,
    /// First path seen for each multiply-linked inode, so later names become hard links.
    links: HashMap<(u64, u64), PathBuf>,
}

impl Source {
    pub(crate) fn open(root: &Path, xattrs: Xattrs) -> Result<Self, ArchiveError> {
        Ok(Source {
            root: Root::open(root)?,
            xattrs,
            links: HashMap::new(),
        })
    }

    /// Reads `rel` without following its final component; `None` when absent. A regular file
    /// already seen under another name comes back as a hard link to that name.
    pub(crate) fn entry(&mut self, rel: &Path) -> Result<Option<SourceEntry>, ArchiveError> {
        let err = |e: io::Error| ArchiveError::io("read", rel.display(), e);
        let pfd = match self.root.open_in(rel, OFlags::PATH | OFlags::NOFOLLOW) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(err(e)),
        };
        let stat = rustix::fs::fstat(&pfd).map_err(|e| err(e.into()))?;
        let ftype = FileType::from_raw_mode(stat.st_mode);
        let (kind, fd): (NodeKind, Option<OwnedFd>) = match ftype {
            FileType::RegularFile => {
                if stat.st_nlink > 1 {
                    let key = (stat.st_dev, stat.st_ino);
                    if let Some(first) = self.links.get(&key) {
                        let node =
                            self.node(NodeKind::Hardlink(first.clone()), &stat, None, rel)?;
                        return Ok(Some(SourceEntry { node, file: None }));
                    }
                    self.links.insert(key, rel.to_path_buf());
                }
                (
                    NodeKind::File,
                    Some(self.reopen(rel, OFlags::RDONLY).map_err(err)?),
                )
            }
            FileType::Directory => (
                NodeKind::Dir,
                Some(
                    self.reopen(rel, OFlags::RDONLY | OFlags::DIRECTORY)
                        .map_err(err)?,
                ),
            ),
            FileType::Symlink => {
                let target =
                    rustix::fs::readlinkat(&pfd, "", Vec::new()).map_err(|e| err(e.into()))?;
                (
                    NodeKind::Symlink(PathBuf::from(OsStr::from_bytes(target.as_bytes()))),
                    None,
                )
            }
            FileType::CharacterDevice => (
                NodeKind::Char(
                    rustix::fs::major(stat.st_rdev),
                    rustix::fs::minor(stat.st_rdev),
                ),
                None,
            ),
            FileType::BlockDevice => (
                NodeKind::Block(
                    rustix::fs::major(stat.st_rdev),
                    rustix::fs::minor(stat.st_rdev),
                ),
                None,
            ),
            FileType::Fifo => (NodeKind::Fifo, None),
            // Sockets are not archivable; tar tools skip them too.
            _ => return Ok(None),
        };
        let node = self.node(kind, &stat, fd.as_ref(), rel)?;
        let file = match node.kind {
            NodeKind::File => fd.map(File::from),
            _ => None,
        };
        Ok(Some(SourceEntry { node, file }))
    }

    /// Whether `rel` exists (without following its final component). Unlike [`entry`](Self::entry)
    /// this does not register hard links.
    pub(crate) fn exists(&self, rel: &Path) -> Result<bool, ArchiveError> {
        match self.root.open_in(rel, OFlags::PATH | OFlags::NOFOLLOW) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(ArchiveError::io("stat", rel.display(), e)),
        }
    }

    fn reopen(&self, rel: &Path, flags: OFlags) -> io::Result<OwnedFd> {
        self.root.open_in(rel, flags | OFlags::NOFOLLOW)
    }

    fn node(
        &self,
        kind: NodeKind,
        st: &Stat,
        fd: Option<&OwnedFd>,
        rel: &Path,
    ) -> Result<Node, ArchiveError> {
        let xattrs = match fd {
            Some(fd) => read_xattrs(fd, self.xattrs)
                .map_err(|e| ArchiveError::io("read xattrs", rel.display(), e))?,
            None => Vec::new(),
        };
        Ok(Node {
            kind,
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            mtime: Timespec {
                tv_sec: st.st_mtime,
                tv_nsec: st.st_mtime_nsec as _,
            },
            xattrs,
        })
    }

    /// Sorted names in the directory `rel`.
    pub(crate) fn children(&self, rel: &Path) -> Result<Vec<OsString>, ArchiveError> {
        let fd = self
            .reopen(rel, OFlags::RDONLY | OFlags::DIRECTORY)
            .map_err(|e| ArchiveError::io("open", rel.display(), e))?;
        crate::root::list_dir(fd.as_fd()).map_err(|e| ArchiveError::io("list", rel.display(), e))
    }

    /// Resolves `rel` inside the root, following symlinks (also in the final component) the way
    /// a process chrooted there would, and returns the clean relative path it names.
    pub(crate) fn resolve(&self, rel: &Path) -> Result<PathBuf, ArchiveError> {
        let mut cur = PathBuf::new();
        let mut pending: Vec<OsString> = rel.iter().map(OsStr::to_os_string).collect();
        pending.reverse();
        let mut hops = 0;
        while let Some(comp) = pending.pop() {
            // `..` at the root clamps, as with RESOLVE_IN_ROOT; `cur` is already physical.
            if comp == ".." {
                cur.pop();
                continue;
            }
            if comp == "." || comp == "/" {
                continue;
            }
            let next = cur.join(&comp);
            let fd = self
                .root
                .open_in(&next, OFlags::PATH | OFlags::NOFOLLOW)
                .map_err(|e| match e.kind() {
                    io::ErrorKind::NotFound => {
                        ArchiveError::NotFound(format!("/{}", rel.display()))
                    }
                    _ => ArchiveError::io("resolve", rel.display(), e),
                })?;
            let st =
                rustix::fs::fstat(&fd).map_err(|e| ArchiveError::io("stat", next.display(), e))?;
            if FileType::from_raw_mode(st.st_mode) != FileType::Symlink {
                cur = crate::path::clean(&next)?;
                continue;
            }
            hops += 1;
            if hops > 40 {
                return Err(crate::path::invalid(
                    rel,
                    "too many levels of symbolic links",
                ));
            }
            let target = rustix::fs::readlinkat(&fd, "", Vec::new())
                .map_err(|e| ArchiveError::io("readlink", next.display(), e))?;
            let target = Path::new(OsStr::from_bytes(target.as_bytes()));
            if target.is_absolute() {
                cur = PathBuf::new();
            }
            let mut parts: Vec<OsString> = target.iter().map(OsStr::to_os_string).collect();
            parts.reverse();
            pending.extend(parts);
        }
        Ok(cur)
    }
}

pub(crate) fn read_xattrs(fd: &impl AsFd, which: Xattrs) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let names: Vec<Vec<u8>> = match which {
        Xattrs::Capability => vec![b"security.capability".to_vec()],
        Xattrs::All => {
            let mut buf = vec![0u8; 4096];
            let n = match rustix::fs::flistxattr(fd, &mut buf[..]) {
                Ok(n) => n,
                Err(rustix::io::Errno::RANGE) => {
                    buf = vec![0u8; 65536];
                    rustix::fs::flistxattr(fd, &mut buf[..])?
                }
                Err(rustix::io::Errno::NOTSUP) => 0,
                Err(e) => return Err(e.into()),
            };
            buf[..n]
                .split(|b| *b == 0)
                .filter(|n| !n.is_empty())
                .map(<[u8]>::to_vec)
                .collect()
        }
    };
    let mut out = Vec::new();
    let mut val = vec![0u8; 65536];
    for name in names {
        match rustix::fs::fgetxattr(fd, OsStr::from_bytes(&name), &mut val[..]) {
            Ok(n) => out.push((name, val[..n].to_vec())),
            Err(rustix::io::Errno::NODATA) | Err(rustix::io::Errno::NOTSUP) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}
