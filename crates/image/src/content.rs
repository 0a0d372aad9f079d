//! Content-addressed blob store: `<root>/blobs/sha256/<hex>`, verified and atomically written.
//!
//! Writes go to `<root>/ingest/<random>`, are hashed on the way, fsynced, and renamed into
//! place only when the digest matches, so a blob file that exists is always complete and
//! correct. Leftover ingest files (a crash mid-write) are removed by [`ContentStore::open`].

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use wharf_imageref::Digest;

use crate::error::ImageError;
use crate::fsutil::{fsync_dir, random_hex};

/// The blob store rooted at one directory.
#[derive(Debug)]
pub struct ContentStore {
    root: PathBuf,
}

impl ContentStore {
    /// Opens (creating) the store and discards half-written ingests.
    pub fn open(root: &Path) -> Result<ContentStore, ImageError> {
        let store = ContentStore {
            root: root.to_path_buf(),
        };
        fs::create_dir_all(store.blobs_dir()).map_err(ImageError::io(format!(
            "create {}",
            store.blobs_dir().display()
        )))?;
        let ingest = store.ingest_dir();
        if ingest.exists() {
            fs::remove_dir_all(&ingest)
                .map_err(ImageError::io(format!("clean {}", ingest.display())))?;
        }
        fs::create_dir_all(&ingest)
            .map_err(ImageError::io(format!("create {}", ingest.display())))?;
        Ok(store)
    }

    fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    fn ingest_dir(&self) -> PathBuf {
        self.root.join("ingest")
    }

    /// Where the blob lives (whether or not it exists).
    pub fn path(&self, d: &Digest) -> PathBuf {
        self.blobs_dir().join(d.hex())
    }

    /// Whether the blob is present.
    pub fn exists(&self, d: &Digest) -> bool {
        self.path(d).is_file()
    }

    /// Reads a whole (small) blob, verifying it against its name.
    pub fn read(&self, d: &Digest) -> Result<Vec<u8>, ImageError> {
        let bytes = fs::read(self.path(d)).map_err(ImageError::io(format!("read blob {d}")))?;
        let actual = digest_of(&bytes);
        if &actual != d {
            return Err(ImageError::DigestMismatch {
                what: "stored blob".into(),
                expected: d.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(bytes)
    }

    /// Like [`ContentStore::read`], but refuses a blob above `limit` bytes without reading
    /// it: for members parsed into memory (manifests, configs, indexes).
    pub fn read_bounded(&self, d: &Digest, limit: u64, what: &str) -> Result<Vec<u8>, ImageError> {
        let size = fs::metadata(self.path(d))
            .map_err(ImageError::io(format!("stat blob {d}")))?
            .len();
        check_json_size(what, size, limit)?;
        self.read(d)
    }

    /// Opens a blob for streaming.
    pub fn open_blob(&self, d: &Digest) -> Result<File, ImageError> {
        File::open(self.path(d)).map_err(ImageError::io(format!("open blob {d}")))
    }

    /// Stores `bytes` and returns their digest.
    pub fn write_bytes(&self, bytes: &[u8]) -> Result<Digest, ImageError> {
        let mut w = self.ingest()?;
        w.write_all(bytes).map_err(ImageError::io("write blob"))?;
        Ok(w.commit(None)?.0)
    }

    /// Starts a streaming write.
    pub fn ingest(&self) -> Result<Ingest, ImageError> {
        let path = self.ingest_dir().join(random_hex());
        let file =
            File::create(&path).map_err(ImageError::io(format!("create {}", path.display())))?;
        Ok(Ingest {
            file: Some(file),
            path,
            hasher: Sha256::new(),
            size: 0,
            blobs: self.blobs_dir(),
        })
    }

    /// Moves an already-verified file on the same filesystem into the store under `d`.
    pub fn adopt(&self, file: &Path, d: &Digest) -> Result<(), ImageError> {
        File::open(file)
            .and_then(|f| f.sync_all())
            .map_err(ImageError::io(format!("fsync {}", file.display())))?;
        fs::rename(file, self.path(d)).map_err(ImageError::io(format!("store blob {d}")))?;
        fsync_dir(&self.blobs_dir())
    }

    /// Deletes a blob; absent is fine.
    pub fn delete(&self, d: &Digest) -> Result<(), ImageError> {
        match fs::remove_file(self.path(d)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(ImageError::io(format!("delete blob {d}"))(e))
            }
            _ => Ok(()),
        }
    }

    /// Every blob present.
    pub fn list(&self) -> Result<Vec<Digest>, ImageError> {
        let dir = self.blobs_dir();
        let mut out = Vec::new();
        for entry in
            fs::read_dir(&dir).map_err(ImageError::io(format!("list {}", dir.display())))?
        {
            let entry = entry.map_err(ImageError::io(format!("list {}", dir.display())))?;
            if let Some(d) = entry
                .file_name()
                .to_str()
                .and_then(|n| Digest::from_hex(n).ok())
            {
                out.push(d);
            }
        }
        Ok(out)
    }
}

/// The sha256 digest of `bytes`.
/// Refuses a JSON member of `size` bytes above `limit`.
pub(crate) fn check_json_size(what: &str, size: u64, limit: u64) -> Result<(), ImageError> {
    if size > limit {
        return Err(ImageError::InvalidArgument(format!(
            "invalid archive: {what} is {size} bytes, above the {limit}-byte limit for JSON"
        )));
    }
    Ok(())
}

pub fn digest_of(bytes: &[u8]) -> Digest {
    finish(Sha256::digest(bytes).as_slice())
}

/// Turns raw sha256 output into a [`Digest`].
pub(crate) fn finish(raw: &[u8]) -> Digest {
    Digest::from_hex(&hex::encode(raw)).expect("sha256 output is 64 lowercase hex characters")
}

/// A blob being written: hashes as it goes; dropped without commit, it leaves nothing behind.
#[derive(Debug)]
pub struct Ingest {
    file: Option<File>,
    path: PathBuf,
    hasher: Sha256,
    size: u64,
    blobs: PathBuf,
}

impl Ingest {
    /// Syncs, verifies against `expected` (when given) and moves the blob into place.
    pub fn commit(mut self, expected: Option<&Digest>) -> Result<(Digest, u64), ImageError> {
        let file = self.file.take().ok_or_else(|| {
            ImageError::io("commit blob")(io::Error::other("ingest already closed"))
        })?;
        file.sync_all().map_err(ImageError::io("fsync blob"))?;
        drop(file);
        let actual = finish(self.hasher.clone().finalize().as_slice());
        if let Some(e) = expected {
            if e != &actual {
                return Err(ImageError::DigestMismatch {
                    what: "blob".into(),
                    expected: e.to_string(),
                    actual: actual.to_string(),
                });
            }
        }
        let dest = self.blobs.join(actual.hex());
        fs::rename(&self.path, &dest).map_err(ImageError::io(format!("store blob {actual}")))?;
        fsync_dir(&self.blobs)?;
        Ok((actual, self.size))
    }
}

impl Write for Ingest {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("ingest already closed"))?;
        let n = file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().map_or(Ok(()), |f| f.flush())
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        if self.file.take().is_some() || self.path.exists() {
            // Best effort: a leftover is also removed by the next open.
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// `io::copy` with a 1 MiB buffer: fewer syscalls and hash calls for layer-sized streams.
pub(crate) fn copy_large(r: &mut dyn Read, w: &mut dyn Write) -> io::Result<u64> {
    wharf_archive::copy_buffered(&mut vec![0u8; 1 << 20], r, w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_verify_and_reject_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let d = store.write_bytes(b"hello").unwrap();
        assert_eq!(
            d.hex(),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(store.read(&d).unwrap(), b"hello");
        assert_eq!(store.list().unwrap(), vec![d.clone()]);

        let mut w = store.ingest().unwrap();
        w.write_all(b"other").unwrap();
        let err = w.commit(Some(&d)).unwrap_err();
        assert!(matches!(err, ImageError::DigestMismatch { .. }));
        // The rejected bytes left nothing in ingest or blobs.
        assert_eq!(fs::read_dir(dir.path().join("ingest")).unwrap().count(), 0);
        assert_eq!(store.list().unwrap().len(), 1);
        store.delete(&d).unwrap();
        assert!(!store.exists(&d));
    }

    #[test]
    fn open_discards_half_written_ingests() {
        let dir = tempfile::tempdir().unwrap();
        drop(ContentStore::open(dir.path()).unwrap());
        fs::write(dir.path().join("ingest/deadbeef"), b"partial").unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        assert_eq!(fs::read_dir(dir.path().join("ingest")).unwrap().count(), 0);
        assert!(store.list().unwrap().is_empty());
    }

    #[test]
    fn corrupted_blob_is_detected_on_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let d = store.write_bytes(b"config").unwrap();
        fs::write(store.path(&d), b"tampered").unwrap();
        assert!(matches!(
            store.read(&d),
            Err(ImageError::DigestMismatch { .. })
        ));
    }
}
