//! The intent journal: how a change made of several steps (a container's layer and record, its
//! network endpoints, a volume and its directory, a pull's blobs…) survives `kill -9` at any
//! point with either the old state or the new one, never an orphan.
//!
//! Protocol, for every area:
//! 1. [`Journal::begin`] writes the intent (`<root>/<area>/<key>.json`: what is about to be
//!    done, with what any undo needs) crash-safely: temp file, fsync, rename, fsync the dir.
//! 2. Do the work, each step idempotent (re-running a done step succeeds).
//! 3. [`Intent::commit`] removes the intent once the new state is complete and durable.
//!
//! At start, before serving, each area calls [`Journal::pending`] and settles every intent it
//! finds: it *rolls forward* (finishes the work: a removal) or *rolls back* (undoes what
//! exists: a creation whose record was never committed), then commits. A key has at most one
//! intent per area; beginning again replaces it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::StateError;

/// Writes `name` in `dir` atomically: a crash leaves the old or the new file, never half. The
/// temp file is `.<name>.tmp`; [`is_temp`] recognises leftovers.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StateError> {
    let path = dir.join(name);
    let io = |source| StateError::Io {
        path: path.clone(),
        source,
    };
    fs::create_dir_all(dir).map_err(io)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = fs::File::create(&tmp).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    fs::rename(&tmp, &path).map_err(io)?;
    sync_dir(dir).map_err(io)
}

/// Whether `name` is the temp file of an interrupted [`write_atomic`].
pub fn is_temp(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir).and_then(|d| d.sync_all())
}

/// Intents of every area, under one root (`<data-root>/journal`).
#[derive(Debug, Clone)]
pub struct Journal {
    root: PathBuf,
}

/// A written intent; dropping it without [`Intent::commit`] leaves it pending (as a crash would).
#[derive(Debug)]
#[must_use = "an intent stays pending until committed"]
pub struct Intent {
    path: PathBuf,
}

impl Journal {
    /// The journal at `root` (created on first use).
    pub fn new(root: &Path) -> Journal {
        Journal {
            root: root.to_path_buf(),
        }
    }

    fn area(&self, area: &str) -> PathBuf {
        self.root.join(area)
    }

    /// Durably records that `key` in `area` is about to change as `data` says.
    pub fn begin<T: Serialize>(
        &self,
        area: &str,
        key: &str,
        data: &T,
    ) -> Result<Intent, StateError> {
        let dir = self.area(area);
        let name = format!("{key}.json");
        let bytes = serde_json::to_vec(data).map_err(|e| StateError::Io {
            path: dir.join(&name),
            source: std::io::Error::other(e),
        })?;
        write_atomic(&dir, &name, &bytes)?;
        Ok(Intent {
            path: dir.join(name),
        })
    }

    /// The intents left in `area` by a crash, as (key, data, intent) sorted by key; temp files of
    /// intents that were never written are removed. An unreadable intent comes back as `None`
    /// data, so the area can still settle the key.
    pub fn pending<T: DeserializeOwned>(&self, area: &str) -> Vec<(String, Option<T>, Intent)> {
        let dir = self.area(area);
        let Ok(rd) = fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if is_temp(&name) {
                let _ = fs::remove_file(e.path());
                continue;
            }
            let Some(key) = name.strip_suffix(".json") else {
                continue;
            };
            let data = fs::read(e.path())
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            out.push((key.to_string(), data, Intent { path: e.path() }));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

impl Intent {
    /// The change is complete: forget the intent (durably).
    pub fn commit(self) -> Result<(), StateError> {
        match fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(StateError::Io {
                    path: self.path,
                    source,
                })
            }
        }
        match self.path.parent() {
            Some(dir) => sync_dir(dir).map_err(|source| StateError::Io {
                path: dir.to_path_buf(),
                source,
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intents_stay_pending_until_committed() {
        let d = tempfile::tempdir().expect("tempdir");
        let j = Journal::new(d.path());
        let i = j.begin("create", "c1", &"name-1").expect("begin");
        drop(j.begin("create", "c2", &"name-2").expect("begin"));
        // A crash during a later write leaves only its temp file.
        std::fs::write(d.path().join("create/.c3.json.tmp"), b"{").expect("tmp");
        std::fs::write(d.path().join("create/c4.json"), b"{").expect("torn");
        i.commit().expect("commit");
        let p = Journal::new(d.path()).pending::<String>("create");
        let keys: Vec<_> = p.iter().map(|(k, d, _)| (k.as_str(), d.clone())).collect();
        assert_eq!(keys, [("c2", Some("name-2".to_string())), ("c4", None)]);
        assert!(!d.path().join("create/.c3.json.tmp").exists());
        for (_, _, i) in p {
            i.commit().expect("commit");
        }
        assert!(Journal::new(d.path())
            .pending::<String>("create")
            .is_empty());
        assert!(Journal::new(d.path())
            .pending::<String>("never-used")
            .is_empty());
    }

    #[test]
    fn atomic_writes_replace_whole_files() {
        let d = tempfile::tempdir().expect("tempdir");
        write_atomic(d.path(), "f.json", b"one").expect("write");
        write_atomic(d.path(), "f.json", b"two").expect("write");
        assert_eq!(
            std::fs::read(d.path().join("f.json")).expect("read"),
            b"two"
        );
        assert!(is_temp(".f.json.tmp") && !is_temp("f.json"));
    }
}
