//! The build cache: a step's result (an image id) keyed by a digest of a canonical record of
//! everything that determines it: the parent image, the instruction with its expanded
//! arguments and environment, and for COPY/ADD the sources' content hashes. One small file per
//! key, written atomically, so the cache survives restarts; a hit is used only when its image
//! still exists.

use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::BuildError;

/// What a step's result depends on.
#[derive(Debug, Clone, Serialize)]
pub struct CacheRecord<'a> {
    /// Bumped when the meaning of a record changes.
    pub version: u32,
    /// The image the step starts from (`scratch` when none).
    pub parent: &'a str,
    /// The history `created_by` text: instruction with expanded args, env and content hashes.
    pub step: &'a str,
    /// The resulting image's container config, canonical JSON.
    pub config: &'a serde_json::Value,
    pub platform: &'a str,
}

impl CacheRecord<'_> {
    /// `sha256` hex of the record's canonical JSON.
    pub fn key(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(Sha256::digest(&json))
    }
}

/// The persisted map from keys to image ids.
#[derive(Debug, Clone)]
pub struct CacheStore {
    dir: PathBuf,
}

impl CacheStore {
    /// Opens (creating) the store in `dir`; removes temp files a crash left.
    pub fn open(dir: &Path) -> Result<CacheStore, BuildError> {
        std::fs::create_dir_all(dir)
            .map_err(BuildError::io(format!("create {}", dir.display())))?;
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().ends_with(".tmp") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok(CacheStore {
            dir: dir.to_path_buf(),
        })
    }

    /// The image id stored for `key`.
    pub fn get(&self, key: &str) -> Option<String> {
        let id = std::fs::read_to_string(self.dir.join(key)).ok()?;
        let id = id.trim();
        (id.starts_with("sha256:") && id.len() == 71).then(|| id.to_string())
    }

    /// Records `key -> image` (temp file, fsync, rename).
    pub fn put(&self, key: &str, image: &str) -> Result<(), BuildError> {
        use std::io::Write;
        let tmp = self.dir.join(format!("{key}.tmp"));
        let mut f = std::fs::File::create(&tmp).map_err(BuildError::io("write cache record"))?;
        f.write_all(image.as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(BuildError::io("write cache record"))?;
        std::fs::rename(&tmp, self.dir.join(key)).map_err(BuildError::io("commit cache record"))
    }

    /// Every (key, image) pair.
    pub fn entries(&self) -> Vec<(String, String)> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        rd.flatten()
            .filter_map(|e| {
                let k = e.file_name().to_string_lossy().to_string();
                if k.ends_with(".tmp") {
                    return None;
                }
                self.get(&k).map(|id| (k, id))
            })
            .collect()
    }

    /// When `key` was recorded.
    pub fn created(&self, key: &str) -> Option<std::time::SystemTime> {
        std::fs::metadata(self.dir.join(key)).ok()?.modified().ok()
    }

    /// Drops one record.
    pub fn remove(&self, key: &str) -> Result<(), BuildError> {
        match std::fs::remove_file(self.dir.join(key)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(BuildError::io("remove cache record")(e))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_reopen_and_keys_are_canonical() {
        let tmp = tempfile::tempdir().expect("tmp");
        let cfg = serde_json::json!({"Env": ["A=1"]});
        let rec = |step| CacheRecord {
            version: 1,
            parent: "sha256:p",
            step,
            config: &cfg,
            platform: "linux/amd64",
        };
        assert_eq!(rec("RUN x").key(), rec("RUN x").key());
        assert_ne!(rec("RUN x").key(), rec("RUN y").key());
        let id = format!("sha256:{}", "a".repeat(64));
        CacheStore::open(tmp.path())
            .expect("open")
            .put(&rec("RUN x").key(), &id)
            .expect("put");
        std::fs::write(tmp.path().join("junk.tmp"), "x").expect("junk");
        let s = CacheStore::open(tmp.path()).expect("reopen");
        assert_eq!(s.get(&rec("RUN x").key()), Some(id));
        assert!(!tmp.path().join("junk.tmp").exists());
        assert_eq!(s.entries().len(), 1);
    }
}
