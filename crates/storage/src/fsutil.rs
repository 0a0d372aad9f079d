//! Small filesystem helpers shared by both drivers: id checks, staging directories, sizes.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::StorageError;

/// Prefix of directories being built; never a valid id, so reconcile can spot them.
pub(crate) const STAGING_PREFIX: &str = ".tmp-";
/// Prefix of directories being deleted.
pub(crate) const TRASH_PREFIX: &str = ".rm-";

/// Ids become directory names: keep them to a safe alphabet (no `/`, no leading dot).
pub(crate) fn check_id(id: &str) -> Result<(), StorageError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id.as_bytes()[0].is_ascii_alphanumeric()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(StorageError::InvalidId(id.to_string()))
    }
}

/// The directory of layer `id` under `base`, after validating the id.
pub(crate) fn layer_dir(base: &Path, id: &str) -> Result<PathBuf, StorageError> {
    check_id(id)?;
    Ok(base.join(id))
}

/// Like [`layer_dir`], but the layer must exist.
pub(crate) fn existing_layer_dir(base: &Path, id: &str) -> Result<PathBuf, StorageError> {
    let dir = layer_dir(base, id)?;
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(StorageError::NotFound(id.to_string()))
    }
}

/// A unique sibling name for `id` with `prefix`, distinct across processes and calls.
pub(crate) fn unique_name(prefix: &str, id: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}{id}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A directory under construction. It is renamed into place by [`Staging::commit`]; dropped
/// uncommitted (error or panic) it is deleted, and a crash leaves only a `.tmp-` name that no
/// lookup treats as a layer and [`crate::Driver::reconcile`] removes.
pub(crate) struct Staging {
    path: PathBuf,
    committed: bool,
}

impl Staging {
    pub(crate) fn new(parent: &Path, id: &str) -> Result<Staging, StorageError> {
        let path = parent.join(unique_name(STAGING_PREFIX, id));
        fs::create_dir(&path).map_err(|e| StorageError::io("create", path.display(), e))?;
        Ok(Staging {
            path,
            committed: false,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn commit(mut self, dest: &Path, id: &str) -> Result<(), StorageError> {
        match fs::rename(&self.path, dest) {
            Ok(()) => {
                self.committed = true;
                Ok(())
            }
            Err(e) if dest.exists() => {
                drop(e);
                Err(StorageError::AlreadyExists(id.to_string()))
            }
            Err(e) => Err(StorageError::io("commit layer", dest.display(), e)),
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            // Best effort: reconcile removes what this misses.
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Removes a directory tree by first renaming it aside, so a crash midway never leaves a
/// half-deleted layer under its real name.
pub(crate) fn remove_tree(dir: &Path, id: &str) -> Result<(), StorageError> {
    let Some(parent) = dir.parent() else {
        return Err(StorageError::io(
            "remove",
            dir.display(),
            io::Error::other("no parent"),
        ));
    };
    let trash = parent.join(unique_name(TRASH_PREFIX, id));
    match fs::rename(dir, &trash) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StorageError::io("remove", dir.display(), e)),
    }
    fs::remove_dir_all(&trash).map_err(|e| StorageError::io("remove", trash.display(), e))
}

/// Total bytes of regular files below `dir`, hard links counted once, symlinks not followed.
pub(crate) fn dir_size(dir: &Path) -> Result<u64, StorageError> {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for ent in fs::read_dir(&d).map_err(|e| StorageError::io("list", d.display(), e))? {
            let ent = ent.map_err(|e| StorageError::io("list", d.display(), e))?;
            let md = ent
                .metadata()
                .map_err(|e| StorageError::io("stat", ent.path().display(), e))?;
            if md.is_dir() {
                stack.push(ent.path());
            } else if md.is_file() && (md.nlink() == 1 || seen.insert((md.dev(), md.ino()))) {
                total += md.size();
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        for good in ["abc", "0123abcdef", "a.b-c_d"] {
            assert!(check_id(good).is_ok(), "{good}");
        }
        for bad in ["", ".hidden", "../x", "a/b", ".tmp-x", &"a".repeat(200)] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn staging_is_removed_unless_committed() {
        let d = tempfile::tempdir().unwrap();
        let s = Staging::new(d.path(), "x").unwrap();
        let p = s.path().to_path_buf();
        assert!(p
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(STAGING_PREFIX));
        drop(s);
        assert!(!p.exists());
        let s = Staging::new(d.path(), "y").unwrap();
        fs::write(s.path().join("f"), "1").unwrap();
        s.commit(&d.path().join("y"), "y").unwrap();
        assert!(d.path().join("y/f").exists());
        let s = Staging::new(d.path(), "y").unwrap();
        fs::write(s.path().join("g"), "1").unwrap();
        assert!(matches!(
            s.commit(&d.path().join("y"), "y"),
            Err(StorageError::AlreadyExists(_))
        ));
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn sizes_count_hard_links_once() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("sub")).unwrap();
        fs::write(d.path().join("sub/a"), "12345").unwrap();
        fs::hard_link(d.path().join("sub/a"), d.path().join("b")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("l")).unwrap();
        assert_eq!(dir_size(d.path()).unwrap(), 5);
    }
}
