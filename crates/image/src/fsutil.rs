//! Small filesystem helpers: atomic JSON files and random names.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::ImageError;

/// fsyncs a directory so a rename inside it survives a crash.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), ImageError> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(ImageError::io(format!("fsync {}", dir.display())))
}

/// Writes `value` as JSON to `path` atomically: temp file, fsync, rename, fsync dir.
pub(crate) fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), ImageError> {
    let bytes = serde_json::to_vec(value).map_err(ImageError::json(path.display().to_string()))?;
    write_atomic(path, &bytes)
}

/// Writes `bytes` to `path` atomically.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let ctx = || format!("write {}", path.display());
    let tmp = dir.join(format!(".tmp-{}", random_hex()));
    let res = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(ImageError::io(ctx())(e));
    }
    fsync_dir(dir)
}

/// Reads a JSON file.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, ImageError> {
    let bytes = fs::read(path).map_err(ImageError::io(format!("read {}", path.display())))?;
    serde_json::from_slice(&bytes).map_err(ImageError::json(path.display().to_string()))
}

/// Removes a file; absent is fine.
pub(crate) fn remove_file(path: &Path) -> Result<(), ImageError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(ImageError::io(format!("remove {}", path.display()))(e))
        }
        _ => Ok(()),
    }
}

/// 32 random hex characters for temp names.
pub(crate) fn random_hex() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Removes leftover `.tmp-*` files from atomic writes in `dir`.
pub(crate) fn clean_tmp_files(dir: &Path) -> Result<(), ImageError> {
    for entry in fs::read_dir(dir).map_err(ImageError::io(format!("list {}", dir.display())))? {
        let entry = entry.map_err(ImageError::io(format!("list {}", dir.display())))?;
        if entry.file_name().to_string_lossy().starts_with(".tmp-") {
            remove_file(&entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_json_round_trip_and_tmp_cleanup() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.json");
        write_json_atomic(&p, &vec![1, 2, 3]).unwrap();
        assert_eq!(read_json::<Vec<i32>>(&p).unwrap(), vec![1, 2, 3]);
        fs::write(dir.path().join(".tmp-abc"), b"half").unwrap();
        clean_tmp_files(dir.path()).unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
