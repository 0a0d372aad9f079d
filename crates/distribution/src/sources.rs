//! Which repositories each blob was pulled from or pushed to (`blob-sources.json` in the
//! image store), so a push can ask the registry to mount a blob it already holds in another
//! repository instead of uploading it again, as dockerd's v2 metadata service does.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use wharf_image::Digest;

/// Repositories remembered per blob (the most recent first).
const MAX_REPOS_PER_BLOB: usize = 4;
/// Blobs remembered at most; the oldest entries go first.
const MAX_BLOBS: usize = 20_000;

/// Blob digest → `host/path` repositories, kept in a JSON file written atomically.
#[derive(Debug, Default)]
pub(crate) struct BlobSources {
    path: Option<PathBuf>,
    state: Mutex<State>,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct State {
    /// Insertion counter, to drop the oldest entries when full.
    #[serde(default)]
    seq: u64,
    #[serde(default)]
    blobs: BTreeMap<String, Entry>,
    /// Layer diff ID → the gzip blob (digest, size) it was pulled as.
    #[serde(default)]
    compressed: BTreeMap<String, (String, u64)>,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Entry {
    seq: u64,
    repos: Vec<String>,
}

impl BlobSources {
    /// The sources kept at `path` (none kept when `None`); a missing or unreadable file is
    /// an empty record, since this is only a hint.
    pub(crate) fn open(path: Option<PathBuf>) -> BlobSources {
        let state = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        BlobSources {
            path,
            state: Mutex::new(state),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The repositories (`host/path`) `blob` is known to be in.
    pub(crate) fn repos(&self, blob: &Digest) -> Vec<String> {
        self.state()
            .blobs
            .get(blob.as_str())
            .map(|e| e.repos.clone())
            .unwrap_or_default()
    }

    /// The gzip blob (digest, size) the layer `diff_id` was pulled as, if known.
    pub(crate) fn compressed(&self, diff_id: &Digest) -> Option<(Digest, u64)> {
        let st = self.state();
        let (d, size) = st.compressed.get(diff_id.as_str())?;
        Some((Digest::parse(d).ok()?, *size))
    }

    /// Records which gzip blob (digest, size) each layer (diff ID) was pulled as.
    pub(crate) fn add_compressed(&self, layers: &[(Digest, Digest, u64)]) {
        if self.path.is_none() {
            return;
        }
        let mut st = self.state();
        let mut changed = false;
        for (diff_id, blob, size) in layers {
            let v = (blob.to_string(), *size);
            if st.compressed.get(diff_id.as_str()) != Some(&v) {
                st.compressed.insert(diff_id.to_string(), v);
                changed = true;
            }
        }
        if st.compressed.len() > MAX_BLOBS {
            st.compressed.clear();
        }
        if changed {
            if let Err(e) = self.save(&st) {
                tracing::warn!(error = %e, "could not save blob sources");
            }
        }
    }

    /// Records that `blobs` are in `repo` (`host/path`) and saves the file.
    pub(crate) fn add(&self, repo: &str, blobs: &[Digest]) {
        if self.path.is_none() || blobs.is_empty() {
            return;
        }
        let mut st = self.state();
        // Already known as the latest source of each (a re-pull, a re-push): no write.
        if blobs.iter().all(|b| {
            st.blobs
                .get(b.as_str())
                .is_some_and(|e| e.repos.first().is_some_and(|r| r == repo))
        }) {
            return;
        }
        for b in blobs {
            st.seq += 1;
            let seq = st.seq;
            let e = st.blobs.entry(b.to_string()).or_default();
            e.seq = seq;
            e.repos.retain(|r| r != repo);
            e.repos.insert(0, repo.to_string());
            e.repos.truncate(MAX_REPOS_PER_BLOB);
        }
        if st.blobs.len() > MAX_BLOBS {
            let mut by_age: Vec<(u64, String)> =
                st.blobs.iter().map(|(k, e)| (e.seq, k.clone())).collect();
            by_age.sort();
            let drop = st.blobs.len() - MAX_BLOBS;
            for (_, k) in by_age.into_iter().take(drop) {
                st.blobs.remove(&k);
            }
        }
        if let Err(e) = self.save(&st) {
            tracing::warn!(error = %e, "could not save blob sources");
        }
    }

    /// temp file → fsync → rename: a crash leaves the old record or the new one.
    fn save(&self, st: &State) -> std::io::Result<()> {
        use std::io::Write;
        let Some(path) = &self.path else {
            return Ok(());
        };
        let tmp = path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(st).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_recent_repos_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob-sources.json");
        let d = Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap();
        let s = BlobSources::open(Some(path.clone()));
        for r in ["h/a", "h/b", "h/c", "h/d", "h/e", "h/b"] {
            s.add(r, std::slice::from_ref(&d));
        }
        let again = BlobSources::open(Some(path.clone()));
        assert_eq!(again.repos(&d), ["h/b", "h/e", "h/d", "h/c"]);
        // Nothing new: the file is not rewritten.
        std::fs::remove_file(&path).unwrap();
        again.add("h/b", std::slice::from_ref(&d));
        assert!(!path.exists());
        let diff = Digest::parse(&format!("sha256:{}", "b".repeat(64))).unwrap();
        again.add_compressed(&[(diff.clone(), d.clone(), 42)]);
        let third = BlobSources::open(Some(dir.path().join("blob-sources.json")));
        assert_eq!(third.compressed(&diff), Some((d.clone(), 42)));
        let none = BlobSources::open(None);
        none.add("h/a", std::slice::from_ref(&d));
        assert!(none.repos(&d).is_empty());
    }
}
