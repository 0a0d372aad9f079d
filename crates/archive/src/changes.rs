//! Filesystem diffs as `docker diff` reports them.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, OFlags};

use crate::node::OPAQUE_XATTR;
use crate::root::Root;
use crate::ArchiveError;

/// What happened to a path, numbered as Docker's `GET /containers/{id}/changes` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChangeKind {
    /// Exists in both, with different metadata or content (or changed children, for directories).
    Modified = 0,
    /// Exists only in the newer tree.
    Added = 1,
    /// Exists only in the older tree.
    Deleted = 2,
}

/// One changed path. `path` is absolute within the layer, e.g. `/etc/hosts`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Change {
    pub path: String,
    pub kind: ChangeKind,
}

fn change(rel: &Path, kind: ChangeKind) -> Change {
    Change {
        path: format!("/{}", rel.to_string_lossy()),
        kind,
    }
}

/// A tree read through one directory fd, so a running container swapping a directory for a
/// symlink mid-scan cannot make the scan list anything outside it. A missing directory reads
/// as an empty tree.
struct Tree {
    root: Option<Root>,
}

type Meta = rustix::fs::Stat;

impl Tree {
    fn open(path: &Path) -> Result<Tree, ArchiveError> {
        if !path.is_dir() {
            return Ok(Tree { root: None });
        }
        Ok(Tree {
            root: Some(Root::open(path)?),
        })
    }

    fn open_nofollow(&self, rel: &Path, flags: OFlags) -> io::Result<Option<std::os::fd::OwnedFd>> {
        let Some(root) = &self.root else {
            return Ok(None);
        };
        match root.open_in(rel, flags | OFlags::NOFOLLOW) {
            Ok(fd) => Ok(Some(fd)),
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.kind() == io::ErrorKind::NotADirectory =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn lstat(&self, rel: &Path) -> Result<Option<Meta>, ArchiveError> {
        let err = |e: io::Error| ArchiveError::io("stat", rel.display(), e);
        match self.open_nofollow(rel, OFlags::PATH).map_err(err)? {
            Some(fd) => Ok(Some(rustix::fs::fstat(&fd).map_err(|e| err(e.into()))?)),
            None => Ok(None),
        }
    }

    /// Sorted names in directory `rel`; empty if it is not a directory (any more).
    fn names(&self, rel: &Path) -> Result<Vec<OsString>, ArchiveError> {
        let err = |e: io::Error| ArchiveError::io("list", rel.display(), e);
        match self.open_nofollow(rel, OFlags::RDONLY | OFlags::DIRECTORY) {
            Ok(Some(fd)) => crate::root::list_dir(fd.as_fd()).map_err(err),
            Ok(None) => Ok(Vec::new()),
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
                Ok(Vec::new())
            }
            Err(e) => Err(err(e)),
        }
    }

    fn readlink(&self, rel: &Path) -> Option<std::ffi::CString> {
        let fd = self.open_nofollow(rel, OFlags::PATH).ok()??;
        rustix::fs::readlinkat(&fd, "", Vec::new()).ok()
    }

    fn is_opaque(&self, rel: &Path) -> bool {
        let Ok(Some(fd)) = self.open_nofollow(rel, OFlags::RDONLY | OFlags::DIRECTORY) else {
            return false;
        };
        let mut buf = [0u8; 4];
        matches!(rustix::fs::fgetxattr(&fd, OPAQUE_XATTR, &mut buf[..]), Ok(1) if buf[0] == b'y')
    }
}

fn ftype(m: &Meta) -> FileType {
    FileType::from_raw_mode(m.st_mode)
}

fn is_dir(m: &Meta) -> bool {
    ftype(m) == FileType::Directory
}

/// Docker's rule: mode, owner and device always count; size and mtime only for non-directories
/// (a directory's mtime moves whenever anything inside it does).
fn stat_different(new: &Meta, old: &Meta, link_differs: impl FnOnce() -> bool) -> bool {
    if new.st_mode != old.st_mode
        || new.st_uid != old.st_uid
        || new.st_gid != old.st_gid
        || new.st_rdev != old.st_rdev
    {
        return true;
    }
    if is_dir(new) {
        return false;
    }
    // Tar keeps whole seconds: a zero nanosecond part on either side matches any (Docker's sameFsTime).
    let same_time = new.st_mtime == old.st_mtime
        && (new.st_mtime_nsec == old.st_mtime_nsec
            || new.st_mtime_nsec == 0
            || old.st_mtime_nsec == 0);
    if new.st_size != old.st_size || !same_time {
        return true;
    }
    ftype(new) == FileType::Symlink && link_differs()
}

/// Compares two full trees (vfs layers): every path in `layer` but not `parent` is Added,
/// every path only in `parent` is Deleted (only the top-most of a deleted subtree), and paths
/// in both with different metadata are Modified. Directories with any change inside are Modified.
pub fn changes_between(layer: &Path, parent: &Path) -> Result<Vec<Change>, ArchiveError> {
    let mut out = Vec::new();
    let (layer, parent) = (Tree::open(layer)?, Tree::open(parent)?);
    let in_parent = parent.root.is_some();
    between(&layer, &parent, Path::new(""), in_parent, &mut out)?;
    out.sort();
    Ok(out)
}

fn between(
    layer: &Tree,
    parent: &Tree,
    rel: &Path,
    in_parent: bool,
    out: &mut Vec<Change>,
) -> Result<bool, ArchiveError> {
    let lnames = layer.names(rel)?;
    let mut changed = false;
    for name in &lnames {
        let sub = rel.join(name);
        let Some(lm) = layer.lstat(&sub)? else {
            continue;
        };
        let pm = if in_parent { parent.lstat(&sub)? } else { None };
        let mut reported = false;
        match &pm {
            None => {
                out.push(change(&sub, ChangeKind::Added));
                reported = true;
            }
            Some(pm) => {
                if stat_different(&lm, pm, || layer.readlink(&sub) != parent.readlink(&sub)) {
                    out.push(change(&sub, ChangeKind::Modified));
                    reported = true;
                }
            }
        }
        changed |= reported;
        if is_dir(&lm) {
            let parent_dir = pm.as_ref().is_some_and(is_dir);
            let inner = between(layer, parent, &sub, parent_dir, out)?;
            if inner && !reported {
                out.push(change(&sub, ChangeKind::Modified));
            }
            changed |= inner;
        }
    }
    if in_parent {
        for name in parent.names(rel)? {
            if lnames.binary_search(&name).is_err() {
                out.push(change(&rel.join(&name), ChangeKind::Deleted));
                changed = true;
            }
        }
    }
    Ok(changed)
}

fn is_whiteout(m: &Meta) -> bool {
    ftype(m) == FileType::CharacterDevice && m.st_rdev == 0
}

/// What `rel` is in the merged view of `lowers` (top-most first), honouring whiteouts and
/// opaque directories, without following symlinks in the lower trees.
fn lower_lookup(lowers: &[Tree], rel: &Path) -> Result<Option<Meta>, ArchiveError> {
    let comps: Vec<_> = rel.iter().collect();
    for lower in lowers {
        let mut path = PathBuf::new();
        let mut hidden_below = false;
        for (i, comp) in comps.iter().enumerate() {
            path.push(comp);
            let Some(m) = lower.lstat(&path)? else { break };
            if is_whiteout(&m) {
                return Ok(None);
            }
            if i + 1 == comps.len() {
                return Ok(Some(m));
            }
            if !is_dir(&m) {
                return Ok(None);
            }
            hidden_below |= lower.is_opaque(&path);
        }
        if hidden_below {
            return Ok(None);
        }
    }
    Ok(None)
}

/// What `rel` is (lstat) in the overlay view of `layers` (top-most first), without mounting it.
pub fn overlay_lstat(
    layers: &[PathBuf],
    rel: &Path,
) -> Result<Option<rustix::fs::Stat>, ArchiveError> {
    let trees = layers
        .iter()
        .map(|l| Tree::open(l))
        .collect::<Result<Vec<_>, _>>()?;
    lower_lookup(&trees, rel)
}

/// Scans an overlay upper directory against its lower directories (top-most first): 0:0 char
/// devices are Deleted, entries absent from the lowers Added, the rest Modified. An opaque
/// directory reports every lower child it hides as Deleted.
pub fn changes_overlay(upper: &Path, lowers: &[PathBuf]) -> Result<Vec<Change>, ArchiveError> {
    let mut out = Vec::new();
    let upper = Tree::open(upper)?;
    let lowers = lowers
        .iter()
        .map(|l| Tree::open(l))
        .collect::<Result<Vec<_>, _>>()?;
    overlay_walk(&upper, &lowers, Path::new(""), &mut out)?;
    out.sort();
    Ok(out)
}

fn overlay_walk(
    upper: &Tree,
    lowers: &[Tree],
    rel: &Path,
    out: &mut Vec<Change>,
) -> Result<bool, ArchiveError> {
    let mut changed = false;
    for name in upper.names(rel)? {
        let sub = rel.join(&name);
        let Some(um) = upper.lstat(&sub)? else {
            continue;
        };
        if is_whiteout(&um) {
            out.push(change(&sub, ChangeKind::Deleted));
            changed = true;
            continue;
        }
        let lm = lower_lookup(lowers, &sub)?;
        let mut reported = true;
        match &lm {
            None => out.push(change(&sub, ChangeKind::Added)),
            Some(lm) if is_dir(&um) && is_dir(lm) && !stat_different(&um, lm, || false) => {
                reported = false
            }
            Some(_) => out.push(change(&sub, ChangeKind::Modified)),
        }
        changed |= reported;
        if is_dir(&um) {
            let mut inner = overlay_walk(upper, lowers, &sub, out)?;
            if upper.is_opaque(&sub) && lm.as_ref().is_some_and(is_dir) {
                let present = upper.names(&sub)?;
                let mut hidden = BTreeSet::new();
                for lower in lowers {
                    hidden.extend(lower.names(&sub)?);
                }
                for h in hidden
                    .into_iter()
                    .filter(|h| present.binary_search(h).is_err())
                {
                    let hp = sub.join(&h);
                    if lower_lookup(lowers, &hp)?.is_some() {
                        out.push(change(&hp, ChangeKind::Deleted));
                        inner = true;
                    }
                }
            }
            if inner && !reported {
                out.push(change(&sub, ChangeKind::Modified));
            }
            changed |= inner;
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn kinds(v: &[Change]) -> Vec<(String, ChangeKind)> {
        v.iter().map(|c| (c.path.clone(), c.kind)).collect()
    }

    #[test]
    fn between_reports_added_modified_deleted() {
        let d = tempfile::tempdir().unwrap();
        let (old, new) = (d.path().join("old"), d.path().join("new"));
        for root in [&old, &new] {
            fs::create_dir_all(root.join("etc")).unwrap();
            fs::create_dir_all(root.join("same")).unwrap();
            fs::write(root.join("etc/hosts"), "a").unwrap();
        }
        fs::create_dir_all(old.join("gone/deep")).unwrap();
        fs::write(new.join("etc/hosts"), "bb").unwrap();
        fs::create_dir_all(new.join("new/sub")).unwrap();
        let got = changes_between(&new, &old).unwrap();
        assert_eq!(
            kinds(&got),
            vec![
                ("/etc".into(), ChangeKind::Modified),
                ("/etc/hosts".into(), ChangeKind::Modified),
                ("/gone".into(), ChangeKind::Deleted),
                ("/new".into(), ChangeKind::Added),
                ("/new/sub".into(), ChangeKind::Added),
            ]
        );
    }

    #[test]
    fn symlinked_directories_are_never_descended() {
        let d = tempfile::tempdir().unwrap();
        let (old, new) = (d.path().join("old"), d.path().join("new"));
        fs::create_dir_all(old.join("etc")).unwrap();
        fs::create_dir_all(&new).unwrap();
        std::os::unix::fs::symlink("/etc", new.join("etc")).unwrap();
        let got = changes_between(&new, &old).unwrap();
        assert_eq!(kinds(&got), vec![("/etc".into(), ChangeKind::Modified)]);
        let got = changes_overlay(&new, &[old]).unwrap();
        assert_eq!(kinds(&got), vec![("/etc".into(), ChangeKind::Modified)]);
    }

    #[test]
    fn between_without_parent_is_all_added() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("f"), "x").unwrap();
        let got = changes_between(d.path(), &d.path().join("missing")).unwrap();
        assert_eq!(kinds(&got), vec![("/f".into(), ChangeKind::Added)]);
    }

    #[test]
    fn overlay_upper_without_whiteouts() {
        let d = tempfile::tempdir().unwrap();
        let (lower, upper) = (d.path().join("lower"), d.path().join("upper"));
        fs::create_dir_all(lower.join("etc")).unwrap();
        fs::write(lower.join("etc/hosts"), "a").unwrap();
        fs::create_dir_all(upper.join("etc")).unwrap();
        fs::write(upper.join("etc/hosts"), "b").unwrap();
        fs::write(upper.join("etc/new"), "n").unwrap();
        let got = changes_overlay(&upper, &[lower]).unwrap();
        assert_eq!(
            kinds(&got),
            vec![
                ("/etc".into(), ChangeKind::Modified),
                ("/etc/hosts".into(), ChangeKind::Modified),
                ("/etc/new".into(), ChangeKind::Added),
            ]
        );
    }
}
