//! Filesystem diffs as `docker diff` reports them.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::node::OPAQUE_XATTR;
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

fn lstat(p: &Path) -> io::Result<Option<Metadata>> {
    match fs::symlink_metadata(p) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn names(dir: &Path) -> io::Result<Vec<OsString>> {
    let mut v = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<Vec<_>>>()?;
    v.sort();
    Ok(v)
}

fn io_err<'a>(op: &'static str, p: &'a Path) -> impl FnOnce(io::Error) -> ArchiveError + 'a {
    move |e| ArchiveError::io(op, p.display(), e)
}

/// Docker's rule: mode, owner and device always count; size and mtime only for non-directories
/// (a directory's mtime moves whenever anything inside it does).
fn stat_different(new: &Metadata, old: &Metadata, new_path: &Path, old_path: &Path) -> bool {
    if new.mode() != old.mode()
        || new.uid() != old.uid()
        || new.gid() != old.gid()
        || new.rdev() != old.rdev()
    {
        return true;
    }
    if new.is_dir() {
        return false;
    }
    // Tar keeps whole seconds: a zero nanosecond part on either side matches any (Docker's sameFsTime).
    let same_time = new.mtime() == old.mtime()
        && (new.mtime_nsec() == old.mtime_nsec() || new.mtime_nsec() == 0 || old.mtime_nsec() == 0);
    if new.size() != old.size() || !same_time {
        return true;
    }
    new.file_type().is_symlink() && fs::read_link(new_path).ok() != fs::read_link(old_path).ok()
}

/// Compares two full trees (vfs layers): every path in `layer` but not `parent` is Added,
/// every path only in `parent` is Deleted (only the top-most of a deleted subtree), and paths
/// in both with different metadata are Modified. Directories with any change inside are Modified.
pub fn changes_between(layer: &Path, parent: &Path) -> Result<Vec<Change>, ArchiveError> {
    let mut out = Vec::new();
    let parent_exists = parent.is_dir();
    between(layer, parent, Path::new(""), parent_exists, &mut out)?;
    out.sort();
    Ok(out)
}

fn between(
    layer: &Path,
    parent: &Path,
    rel: &Path,
    in_parent: bool,
    out: &mut Vec<Change>,
) -> Result<bool, ArchiveError> {
    let ldir = layer.join(rel);
    let lnames = names(&ldir).map_err(io_err("list", &ldir))?;
    let mut changed = false;
    for name in &lnames {
        let sub = rel.join(name);
        let lp = layer.join(&sub);
        let Some(lm) = lstat(&lp).map_err(io_err("stat", &lp))? else {
            continue;
        };
        let pp = parent.join(&sub);
        let pm = if in_parent {
            lstat(&pp).map_err(io_err("stat", &pp))?
        } else {
            None
        };
        let mut reported = false;
        match &pm {
            None => {
                out.push(change(&sub, ChangeKind::Added));
                reported = true;
            }
            Some(pm) => {
                if lm.file_type() != pm.file_type() || stat_different(&lm, pm, &lp, &pp) {
                    out.push(change(&sub, ChangeKind::Modified));
                    reported = true;
                }
            }
        }
        changed |= reported;
        if lm.is_dir() {
            let parent_dir = pm.as_ref().is_some_and(Metadata::is_dir);
            let inner = between(layer, parent, &sub, parent_dir, out)?;
            if inner && !reported {
                out.push(change(&sub, ChangeKind::Modified));
            }
            changed |= inner;
        }
    }
    if in_parent {
        let pdir = parent.join(rel);
        for name in names(&pdir).map_err(io_err("list", &pdir))? {
            if lnames.binary_search(&name).is_err() {
                out.push(change(&rel.join(&name), ChangeKind::Deleted));
                changed = true;
            }
        }
    }
    Ok(changed)
}

fn is_whiteout(m: &Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn is_opaque(p: &Path) -> bool {
    let mut buf = [0u8; 4];
    matches!(rustix::fs::lgetxattr(p, OPAQUE_XATTR, &mut buf[..]), Ok(1) if buf[0] == b'y')
}

/// What `rel` is in the merged view of `lowers` (top-most first), honouring whiteouts and
/// opaque directories, without following symlinks in the lower trees.
fn lower_lookup(lowers: &[PathBuf], rel: &Path) -> Option<Metadata> {
    let comps: Vec<_> = rel.iter().collect();
    for lower in lowers {
        let mut path = lower.clone();
        let mut hidden_below = false;
        for (i, comp) in comps.iter().enumerate() {
            path.push(comp);
            let Ok(m) = fs::symlink_metadata(&path) else {
                break;
            };
            if is_whiteout(&m) {
                return None;
            }
            if i + 1 == comps.len() {
                return Some(m);
            }
            if !m.is_dir() {
                return None;
            }
            hidden_below |= is_opaque(&path);
        }
        if hidden_below {
            return None;
        }
    }
    None
}

/// Scans an overlay upper directory against its lower directories (top-most first): 0:0 char
/// devices are Deleted, entries absent from the lowers Added, the rest Modified. An opaque
/// directory reports every lower child it hides as Deleted.
pub fn changes_overlay(upper: &Path, lowers: &[PathBuf]) -> Result<Vec<Change>, ArchiveError> {
    let mut out = Vec::new();
    overlay_walk(upper, lowers, Path::new(""), &mut out)?;
    out.sort();
    Ok(out)
}

fn overlay_walk(
    upper: &Path,
    lowers: &[PathBuf],
    rel: &Path,
    out: &mut Vec<Change>,
) -> Result<bool, ArchiveError> {
    let dir = upper.join(rel);
    let unames = names(&dir).map_err(io_err("list", &dir))?;
    let mut changed = false;
    for name in &unames {
        let sub = rel.join(name);
        let up = upper.join(&sub);
        let Some(um) = lstat(&up).map_err(io_err("stat", &up))? else {
            continue;
        };
        if is_whiteout(&um) {
            out.push(change(&sub, ChangeKind::Deleted));
            changed = true;
            continue;
        }
        let lm = lower_lookup(lowers, &sub);
        let mut reported = true;
        match &lm {
            None => out.push(change(&sub, ChangeKind::Added)),
            Some(lm) if um.is_dir() && lm.is_dir() && !stat_different(&um, lm, &up, &up) => {
                reported = false
            }
            Some(_) => out.push(change(&sub, ChangeKind::Modified)),
        }
        changed |= reported;
        if um.is_dir() {
            let mut inner = overlay_walk(upper, lowers, &sub, out)?;
            if is_opaque(&up) && lm.as_ref().is_some_and(Metadata::is_dir) {
                let present = names(&up).map_err(io_err("list", &up))?;
                let mut hidden = BTreeSet::new();
                for lower in lowers {
                    if let Ok(ns) = names(&lower.join(&sub)) {
                        hidden.extend(ns);
                    }
                }
                for h in hidden
                    .into_iter()
                    .filter(|h| present.binary_search(h).is_err())
                {
                    let hp = sub.join(&h);
                    if lower_lookup(lowers, &hp).is_some() {
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
