//! The container store: records by id, the name index, and crash-safe persistence
//! (`<root>/<id>/config.v2.json`, written temp + fsync + rename).
//!
//! A record exists exactly while its `config.v2.json` does, and its name is taken exactly as
//! long: a directory without one (an interrupted first write) is removed at open, and removal
//! renames the directory away (atomic) before deleting it, so a crash mid-delete cannot leave a
//! half record behind.

pub mod container;
pub mod journal;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use wharf_errdefs::{Classify, ErrorKind};

pub use self::container::{Container, RunState, Status};

/// The record file's name.
pub const RECORD: &str = "config.v2.json";

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// No container matches (Docker's wording).
    #[error("No such container: {0}")]
    NotFound(String),
    /// An id prefix matches several containers.
    #[error("Multiple IDs found with provided prefix: {0}")]
    Ambiguous(String),
    /// The name is taken (Docker's wording).
    #[error("Conflict. The container name \"{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name.")]
    NameInUse {
        /// The name, with slash.
        name: String,
        /// Who has it.
        id: String,
    },
    /// Not a valid container name (Docker's wording).
    #[error("Invalid container name ({0}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    InvalidName(String),
    /// Writing or reading a record failed.
    #[error("container state {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl Classify for StateError {
    fn kind(&self) -> ErrorKind {
        match self {
            StateError::NotFound(_) => ErrorKind::NotFound,
            StateError::Ambiguous(_) | StateError::InvalidName(_) => ErrorKind::InvalidArgument,
            StateError::NameInUse { .. } => ErrorKind::Conflict,
            StateError::Io { .. } => ErrorKind::Internal,
        }
    }
}

/// Prefix of a record directory being deleted.
const TRASH: &str = ".removing-";

/// A shared, lockable container record.
pub type Handle = Arc<Mutex<Container>>;

/// Validates and normalises a user-given name to `/name` (`/?[a-zA-Z0-9][a-zA-Z0-9_.-]+`).
pub fn normalize_name(name: &str) -> Result<String, StateError> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    let b = bare.as_bytes();
    let ok = b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
    if ok {
        Ok(format!("/{bare}"))
    } else {
        Err(StateError::InvalidName(name.to_string()))
    }
}

/// All containers, indexed by id and name.
pub struct Store {
    root: PathBuf,
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    by_id: HashMap<String, Handle>,
    names: HashMap<String, String>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep serving.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Store {
    /// Opens the store at `root` (`<data-root>/containers`), loading every record. Directories
    /// of records that were never written or were being removed are deleted; unreadable
    /// records are skipped with a warning (and returned) so one bad file cannot stop the daemon.
    pub fn open(root: &Path) -> Result<(Store, Vec<PathBuf>), StateError> {
        let io = |source| StateError::Io {
            path: root.to_path_buf(),
            source,
        };
        fs::create_dir_all(root).map_err(io)?;
        let mut inner = Inner::default();
        let mut bad = Vec::new();
        for entry in fs::read_dir(root).map_err(io)? {
            let dir = entry.map_err(io)?.path();
            let rec = dir.join(RECORD);
            let removing = dir
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(TRASH));
            if removing || (dir.is_dir() && !rec.exists()) {
                // Never committed (only a temp file) or half deleted: no record, no name.
                if let Err(e) = fs::remove_dir_all(&dir) {
                    tracing::warn!(path = %dir.display(), "removing a leftover record dir: {e}");
                }
                continue;
            }
            match fs::read(&rec)
                .ok()
                .and_then(|b| serde_json::from_slice::<Container>(&b).ok())
            {
                Some(c) => {
                    inner.names.insert(c.name.clone(), c.id.clone());
                    inner.by_id.insert(c.id.clone(), Arc::new(Mutex::new(c)));
                }
                None => bad.push(dir),
            }
        }
        Ok((
            Store {
                root: root.to_path_buf(),
                inner: RwLock::new(inner),
            },
            bad,
        ))
    }

    /// The store's directory (`<data-root>/containers`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The container's private directory.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Docker's lookup order: full id, exact name, then a unique id prefix.
    pub fn get(&self, key: &str) -> Result<Handle, StateError> {
        let inner = self.read();
        if let Some(h) = inner.by_id.get(key) {
            return Ok(h.clone());
        }
        let name = if key.starts_with('/') {
            key.to_string()
        } else {
            format!("/{key}")
        };
        if let Some(h) = inner.names.get(&name).and_then(|id| inner.by_id.get(id)) {
            return Ok(h.clone());
        }
        if !key.is_empty() && key.bytes().all(|c| c.is_ascii_hexdigit()) {
            let mut hits = inner.by_id.iter().filter(|(id, _)| id.starts_with(key));
            if let Some((_, h)) = hits.next() {
                if hits.next().is_some() {
                    return Err(StateError::Ambiguous(key.to_string()));
                }
                return Ok(h.clone());
            }
        }
        Err(StateError::NotFound(key.to_string()))
    }

    /// Every container.
    pub fn all(&self) -> Vec<Handle> {
        self.read().by_id.values().cloned().collect()
    }

    /// Reserves the record's name and adds it; persists it.
    pub fn insert(&self, c: Container) -> Result<Handle, StateError> {
        let mut inner = self.write();
        if let Some(id) = inner.names.get(&c.name) {
            return Err(StateError::NameInUse {
                name: c.name.clone(),
                id: id.clone(),
            });
        }
        self.write_record(&c)?;
        inner.names.insert(c.name.clone(), c.id.clone());
        let h = Arc::new(Mutex::new(c.clone()));
        inner.by_id.insert(c.id, h.clone());
        Ok(h)
    }

    /// Moves `id` to `new_name` (normalised); persists.
    pub fn rename(&self, id: &str, new_name: &str) -> Result<(), StateError> {
        let new_name = normalize_name(new_name)?;
        let mut inner = self.write();
        if let Some(other) = inner.names.get(&new_name) {
            return Err(StateError::NameInUse {
                name: new_name,
                id: other.clone(),
            });
        }
        let h = inner
            .by_id
            .get(id)
            .cloned()
            .ok_or_else(|| StateError::NotFound(id.to_string()))?;
        let mut c = lock(&h);
        let old = std::mem::replace(&mut c.name, new_name.clone());
        if let Err(e) = self.write_record(&c) {
            c.name = old;
            return Err(e);
        }
        inner.names.remove(&old);
        inner.names.insert(new_name, id.to_string());
        Ok(())
    }

    /// Whether a name is free.
    pub fn name_taken(&self, name: &str) -> Option<String> {
        self.read().names.get(name).cloned()
    }

    /// Drops the record, releasing its name, and deletes its directory. The directory is first
    /// renamed away (atomically), so the record is either wholly there or gone; the name is
    /// released only once it is gone.
    pub fn remove(&self, id: &str) -> Result<(), StateError> {
        let mut inner = self.write();
        // Held across the rename: an update in flight finishes first, later ones see no record.
        let h = inner.by_id.get(id).cloned();
        let guard = h.as_ref().map(|h| lock(h));
        let dir = self.dir(id);
        let trash = self.root.join(format!("{TRASH}{id}"));
        match fs::rename(&dir, &trash) {
            Ok(()) => {
                let _ = fs::File::open(&self.root).and_then(|d| d.sync_all());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(StateError::Io { path: dir, source }),
        }
        if let Some(c) = &guard {
            inner.names.remove(&c.name);
        }
        inner.by_id.remove(id);
        drop(guard);
        drop(inner);
        // Leftovers of a failed delete are removed at the next open.
        if let Err(e) = fs::remove_dir_all(&trash) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %trash.display(), "deleting a removed record: {e}");
            }
        }
        Ok(())
    }

    /// Writes the record atomically: a crash leaves the old or the new file, never half. A
    /// record removed meanwhile stays removed (call with the record's lock held).
    pub fn persist(&self, c: &Container) -> Result<(), StateError> {
        if !self.dir(&c.id).is_dir() {
            return Ok(());
        }
        self.write_record(c)
    }

    fn write_record(&self, c: &Container) -> Result<(), StateError> {
        let bytes = serde_json::to_vec(c).map_err(|e| StateError::Io {
            path: self.dir(&c.id).join(RECORD),
            source: std::io::Error::other(e),
        })?;
        journal::write_atomic(&self.dir(&c.id), RECORD, &bytes)
    }

    /// Locks a handle (tolerating poisoning).
    pub fn lock(h: &Handle) -> std::sync::MutexGuard<'_, Container> {
        lock(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, name: &str) -> Container {
        Container {
            id: id.to_string(),
            name: name.to_string(),
            created: "2026-01-01T00:00:00Z".into(),
            path: "sh".into(),
            args: vec!["-c".into(), "true".into()],
            config: Default::default(),
            host_config: Default::default(),
            image: "sha256:00".into(),
            runtime: "runc".into(),
            driver: "vfs".into(),
            state: RunState::default(),
            restart_count: 0,
            manually_stopped: false,
            has_been_started: false,
            mount_points: Vec::new(),
        }
    }

    #[test]
    fn names_validate() {
        assert_eq!(normalize_name("web_1.a-b").expect("ok"), "/web_1.a-b");
        assert_eq!(normalize_name("/ab").expect("ok"), "/ab");
        for bad in ["", "a", "_ab", "a b", "a/b", "//ab", "-ab"] {
            assert!(normalize_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lookup_conflicts_rename_and_reload() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (s, bad) = Store::open(dir.path()).expect("open");
        assert!(bad.is_empty());
        s.insert(rec("abc123", "/one")).expect("insert");
        s.insert(rec("abd456", "/two")).expect("insert");
        let e = s.insert(rec("fff", "/one")).err().expect("conflict");
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert!(e
            .to_string()
            .contains("\"/one\" is already in use by container \"abc123\""));
        assert_eq!(Store::lock(&s.get("one").expect("name")).id, "abc123");
        assert_eq!(Store::lock(&s.get("abd").expect("prefix")).id, "abd456");
        assert!(matches!(s.get("ab"), Err(StateError::Ambiguous(_))));
        assert!(matches!(s.get("zzz"), Err(StateError::NotFound(_))));
        s.rename("abc123", "three").expect("rename");
        assert!(s.get("one").is_err());
        assert!(s.rename("abd456", "three").is_err());
        // An unreadable record is reported and kept; a dir with only a temp file (a first
        // write cut short) or a half-deleted one is removed.
        fs::create_dir_all(dir.path().join("garbage")).expect("garbage");
        fs::write(dir.path().join("garbage").join(RECORD), b"{").expect("garbage");
        fs::create_dir_all(dir.path().join("torn")).expect("torn");
        fs::write(dir.path().join("torn/.config.v2.json.tmp"), b"{").expect("torn");
        fs::create_dir_all(dir.path().join(".removing-x")).expect("trash");
        let (s2, bad) = Store::open(dir.path()).expect("reopen");
        assert_eq!(bad.len(), 1);
        assert!(!dir.path().join("torn").exists());
        assert!(!dir.path().join(".removing-x").exists());
        assert_eq!(
            Store::lock(&s2.get("three").expect("reloaded")).id,
            "abc123"
        );
        s2.remove("abc123").expect("remove");
        assert!(s2.get("three").is_err());
        assert!(!dir.path().join("abc123").exists());
    }
}
