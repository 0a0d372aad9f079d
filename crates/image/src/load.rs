//! `docker load`: docker-save archives (`manifest.json`, legacy or Docker 25+ layout) and OCI
//! image layouts (`index.json`), optionally compressed.
//!
//! The archive is streamed once: every file goes straight into the content store (verified
//! against its name when it is `blobs/sha256/<hex>`), then manifests are read from there and
//! layers applied from the stored blobs. Nothing is registered until its data is complete;
//! blobs the load added but nothing references are removed at the end, success or not.

use std::collections::{HashMap, HashSet};
use std::io::{BufReader, Read};
use std::sync::mpsc;

use wharf_imageref::{Digest, Reference};
use wharf_storage::UnpackedLayer;

use crate::content::{check_json_size, copy_large};
use crate::error::ImageError;
use crate::model::{
    chain_id_on, is_index_type, pick_platform, ImageConfig, Index, Manifest, SaveManifestEntry,
};
use crate::service::ImageService;
use crate::store::LayerRecord;

/// How deep nested indexes may go before we call the archive hostile.
const MAX_INDEX_DEPTH: usize = 4;
/// Link chains longer than this are refused (loops).
const MAX_LINK_HOPS: usize = 16;
/// Archive entries beyond this make the load fail (a tar bomb, not an image).
const MAX_ARCHIVE_ENTRIES: usize = 100_000;
/// Bound on every JSON member parsed into memory (manifest.json, index.json, manifests,
/// configs): real ones are kilobytes; a 1 MB gzip can expand to a 1 GB "manifest".
pub const MAX_JSON_MEMBER: u64 = 8 << 20;

/// Files a load can need: top-level files (manifest.json, index.json, legacy `<id>.json`
/// configs, go-containerregistry's `sha256:<hex>` configs and `<hex>.tar.gz` layers), blobs and
/// legacy `<id>/layer.tar`. Anything else (legacy `json`/`VERSION`) is skipped unread.
fn wanted(path: &str) -> bool {
    !path.contains('/') || path.starts_with("blobs/sha256/") || path.ends_with("/layer.tar")
}

/// The archive's files, by normalised path.
#[derive(Default)]
struct ArchiveFiles {
    files: HashMap<String, Digest>,
    links: HashMap<String, String>,
}

impl ArchiveFiles {
    fn get(&self, path: &str) -> Result<&Digest, ImageError> {
        let mut p =
            normalise(path).ok_or_else(|| bad(format!("invalid path {path:?} in archive")))?;
        for _ in 0..MAX_LINK_HOPS {
            if let Some(d) = self.files.get(&p) {
                return Ok(d);
            }
            match self.links.get(&p) {
                Some(t) => p = t.clone(),
                None => return Err(bad(format!("{path} is missing from the archive"))),
            }
        }
        Err(bad(format!("too many links resolving {path}")))
    }
}

fn bad(msg: String) -> ImageError {
    ImageError::InvalidArgument(format!("invalid archive: {msg}"))
}

/// Cleans a path inside the archive; `None` if it climbs out of the root.
fn normalise(p: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

/// What the speculative extractor hears about each `blobs/sha256/` entry.
enum Spec {
    /// An uncompressed tar: probably the next layer of the current image.
    Layer(Digest),
    /// Anything else (config, manifest): the next layer probably starts a new chain.
    Reset,
}

/// A layer for the committer, in archive order, with its unpacking thread when one started.
enum Step<'scope> {
    Layer(
        Digest,
        Option<std::thread::ScopedJoinHandle<'scope, Option<Result<UnpackedLayer, ImageError>>>>,
    ),
    Reset,
}

/// One image to register: its config and its layer blobs.
struct Pending {
    config: Digest,
    layers: Vec<Digest>,
    tags: Vec<Reference>,
}

impl ImageService {
    /// Loads every image in the archive; returns Docker's "Loaded image: …" lines.
    pub fn load(&self, src: &mut dyn Read) -> Result<Vec<String>, ImageError> {
        let _w = self.lock_writer();
        let before: HashSet<Digest> = self.content.list()?.into_iter().collect();
        let result = self.load_locked(src);
        // Drop what this load brought in that nothing references (also after a failure).
        self.gc_layers()?;
        let live = self.read_state().live_blobs();
        for d in self.content.list()? {
            if !before.contains(&d) && !live.contains(&d) {
                self.content.delete(&d)?;
            }
        }
        result
    }

    fn load_locked(&self, src: &mut dyn Read) -> Result<Vec<String>, ImageError> {
        // Extract layers while the rest of the archive still streams in (see `speculate`).
        let (tx, rx) = mpsc::channel();
        let files = std::thread::scope(|scope| {
            scope.spawn(|| self.speculate(rx));
            let files = self.ingest_archive(src, &tx);
            drop(tx);
            files
        })?;
        let pending = if files.files.contains_key("manifest.json") {
            self.pending_from_docker(&files)?
        } else if files.files.contains_key("index.json") {
            self.pending_from_oci(&files)?
        } else {
            return Err(bad("neither manifest.json nor index.json found".into()));
        };
        let mut lines = Vec::new();
        for p in pending {
            let id = self.register_pending(&p)?;
            if p.tags.is_empty() {
                lines.push(format!("Loaded image ID: {id}"));
            }
            for t in &p.tags {
                let old = self.read_state().refs.get(&t.full()).cloned();
                if let Some(old) = old.filter(|o| *o != id) {
                    lines.push(format!(
                        "The image {} already exists, renaming the old one with ID {old} to empty string",
                        t.familiar()
                    ));
                }
                self.set_ref(t, &id)?;
                lines.push(format!("Loaded image: {}", t.familiar()));
            }
        }
        Ok(lines)
    }

    /// Applies layer blobs as they arrive, each on top of the previous one, before the
    /// manifest (which comes last) says what the real chain is. Docker 25+ and OCI archives
    /// list an image's layers in order, so the guess is usually right and the registration
    /// pass then finds every layer already there (same chain ID); a wrong guess only costs
    /// work, and the unused layers are collected when the load ends.
    ///
    /// Where the driver allows (overlay2), several layers unpack at once, each into its own
    /// staging dir; only putting them in place on their parents is sequential.
    fn speculate(&self, rx: mpsc::Receiver<Spec>) {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4));
        std::thread::scope(|scope| {
            // Bounds the unpacks in flight: the queue, the one being committed, the one being queued.
            let (tx, steps) = mpsc::sync_channel::<Step<'_>>(workers - 2);
            scope.spawn(|| self.commit_speculated(steps));
            let mut chain: Option<Digest> = None;
            for msg in rx {
                let step = match msg {
                    Spec::Reset => {
                        chain = None;
                        Step::Reset
                    }
                    Spec::Layer(d) => {
                        let next = chain_id_on(chain.as_ref(), &d);
                        // Layers already stored (a re-load) need no unpacking.
                        let unpack = self.layer(&next).is_none().then(|| {
                            let d = d.clone();
                            scope.spawn(move || self.unpack_blob(&d))
                        });
                        chain = Some(next);
                        Step::Layer(d, unpack)
                    }
                };
                if tx.send(step).is_err() {
                    break; // The committer gave up; the registration pass reports why.
                }
            }
        });
    }

    /// Puts speculatively unpacked layers in place, in archive order, each on the previous one.
    fn commit_speculated(&self, steps: mpsc::Receiver<Step<'_>>) {
        let mut parent: Option<LayerRecord> = None;
        for step in steps {
            let (d, unpack) = match step {
                Step::Reset => {
                    parent = None;
                    continue;
                }
                Step::Layer(d, unpack) => (d, unpack),
            };
            let unpacked = unpack.map(|h| {
                h.join()
                    .unwrap_or_else(|_| Some(Err(bad(format!("unpacking layer {d} panicked")))))
            });
            let layer = match unpacked.flatten() {
                Some(Ok(u)) => self.add_unpacked_layer(parent.as_ref(), &d, u),
                Some(Err(e)) => Err(e),
                // Already stored, or the driver cannot unpack ahead (vfs).
                None => self.add_layer_from_blob(parent.as_ref(), &d),
            };
            match layer {
                Ok(layer) => parent = Some(layer),
                Err(e) => {
                    // The registration pass meets the same blob and reports the error.
                    tracing::debug!(blob = %d, error = %e, "speculative layer failed");
                    return;
                }
            }
        }
    }

    fn ingest_archive(
        &self,
        src: &mut dyn Read,
        spec: &mpsc::Sender<Spec>,
    ) -> Result<ArchiveFiles, ImageError> {
        let plain = wharf_archive::decompress(Box::new(BufReader::with_capacity(1 << 20, src)))?;
        let mut tar = tar::Archive::new(plain);
        let mut out = ArchiveFiles::default();
        // Errors from the tar parser mean a malformed upload, not a fault of ours.
        let entries = tar.entries().map_err(|e| bad(e.to_string()))?;
        for (n, entry) in entries.enumerate() {
            if n >= MAX_ARCHIVE_ENTRIES {
                return Err(bad(format!("more than {MAX_ARCHIVE_ENTRIES} entries")));
            }
            let mut entry = entry.map_err(|e| bad(e.to_string()))?;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let path =
                normalise(&raw).ok_or_else(|| bad(format!("path {raw:?} escapes the archive")))?;
            let kind = entry.header().entry_type();
            if kind.is_file() && !path.contains('/') && path.ends_with(".json") {
                // Known to be JSON before it is read: refuse it before storing it.
                check_json_size(&path, entry.size(), MAX_JSON_MEMBER)?;
            }
            if kind.is_file() && wanted(&path) {
                let expected = path
                    .strip_prefix("blobs/sha256/")
                    .map(Digest::from_hex)
                    .transpose()
                    .map_err(|_| bad(format!("{path} is not named by a sha256 digest")))?;
                let mut ingest = self.content.ingest()?;
                copy_large(&mut entry, &mut ingest)
                    .map_err(ImageError::io(format!("read {path} from archive")))?;
                let (d, _) = ingest.commit(expected.as_ref())?;
                if expected.is_some() {
                    // A closed receiver only means speculation stopped; loading goes on.
                    let _ = spec.send(if self.is_plain_tar(&d) {
                        Spec::Layer(d.clone())
                    } else {
                        Spec::Reset
                    });
                }
                out.files.insert(path, d);
            } else if kind.is_symlink() || kind.is_hard_link() {
                let target = entry
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .unwrap_or_default();
                let resolved = if kind.is_symlink() && !target.starts_with('/') {
                    let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
                    format!("{dir}/{target}")
                } else {
                    target.clone()
                };
                let t = normalise(&resolved)
                    .ok_or_else(|| bad(format!("link {path} -> {target} escapes the archive")))?;
                out.links.insert(path, t);
            }
        }
        Ok(out)
    }

    /// Whether a stored blob starts like an uncompressed tar (`ustar` magic at offset 257).
    fn is_plain_tar(&self, d: &Digest) -> bool {
        let mut head = [0u8; 262];
        self.content
            .open_blob(d)
            .and_then(|mut f| f.read_exact(&mut head).map_err(ImageError::io("read blob")))
            .is_ok()
            && &head[257..262] == b"ustar"
    }

    fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        d: &Digest,
        what: &str,
    ) -> Result<T, ImageError> {
        let bytes = self.content.read_bounded(d, MAX_JSON_MEMBER, what)?;
        serde_json::from_slice(&bytes).map_err(ImageError::json(what))
    }

    fn pending_from_docker(&self, files: &ArchiveFiles) -> Result<Vec<Pending>, ImageError> {
        let entries: Vec<SaveManifestEntry> =
            self.read_json(files.get("manifest.json")?, "manifest.json")?;
        entries
            .into_iter()
            .map(|e| {
                let tags = e
                    .repo_tags
                    .unwrap_or_default()
                    .iter()
                    .map(|t| Reference::parse(t).map(Reference::with_default_tag))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Pending {
                    config: files.get(&e.config)?.clone(),
                    layers: e
                        .layers
                        .iter()
                        .map(|l| files.get(l).cloned())
                        .collect::<Result<_, _>>()?,
                    tags,
                })
            })
            .collect()
    }

    fn pending_from_oci(&self, files: &ArchiveFiles) -> Result<Vec<Pending>, ImageError> {
        let index: Index = self.read_json(files.get("index.json")?, "index.json")?;
        let mut out: Vec<Pending> = Vec::new();
        for desc in &index.manifests {
            let tag = desc.annotations.as_ref().and_then(|a| {
                a.get("io.containerd.image.name")
                    .or_else(|| {
                        a.get("org.opencontainers.image.ref.name")
                            .filter(|n| n.contains('/') || n.contains(':'))
                    })
                    .and_then(|n| Reference::parse(n).ok())
                    .map(Reference::with_default_tag)
            });
            let manifest = self.resolve_manifest(&desc.digest, &desc.media_type, 0)?;
            let layers = manifest.layers.iter().map(|l| l.digest.clone()).collect();
            // One image may be listed once per tag: merge them.
            match out.iter_mut().find(|p| p.config == manifest.config.digest) {
                Some(p) => p.tags.extend(tag),
                None => out.push(Pending {
                    config: manifest.config.digest.clone(),
                    layers,
                    tags: tag.into_iter().collect(),
                }),
            }
        }
        Ok(out)
    }

    /// Follows indexes / manifest lists down to this platform's image manifest.
    fn resolve_manifest(
        &self,
        d: &Digest,
        media_type: &str,
        depth: usize,
    ) -> Result<Manifest, ImageError> {
        if depth > MAX_INDEX_DEPTH {
            return Err(bad("indexes nested too deeply".into()));
        }
        let value: serde_json::Value = self.read_json(d, "manifest")?;
        let mt = value
            .get("mediaType")
            .and_then(|v| v.as_str())
            .unwrap_or(media_type)
            .to_string();
        if value.get("schemaVersion").and_then(|v| v.as_u64()) == Some(1) {
            return Err(ImageError::NotSupported(format!(
                "manifest {d} uses Docker image manifest schema 1, which Docker itself no longer loads"
            )));
        }
        if is_index_type(&mt) || value.get("manifests").is_some() {
            let index: Index =
                serde_json::from_value(value).map_err(ImageError::json("image index"))?;
            let chosen = pick_platform(&index.manifests).ok_or_else(|| {
                ImageError::NotFound(format!(
                    "no manifest for linux/{} in index {d}",
                    crate::model::host_arch()
                ))
            })?;
            return self.resolve_manifest(&chosen.digest, &chosen.media_type, depth + 1);
        }
        serde_json::from_value(value).map_err(ImageError::json("image manifest"))
    }

    fn register_pending(&self, p: &Pending) -> Result<Digest, ImageError> {
        let bytes = self
            .content
            .read_bounded(&p.config, MAX_JSON_MEMBER, "image config")?;
        let config: ImageConfig =
            serde_json::from_slice(&bytes).map_err(ImageError::json("image config"))?;
        let diffs = &config.rootfs.diff_ids;
        if diffs.len() != p.layers.len() {
            return Err(bad(format!(
                "config {} lists {} layers but the manifest has {}",
                p.config,
                diffs.len(),
                p.layers.len()
            )));
        }
        let mut parent: Option<LayerRecord> = None;
        for (blob, diff_id) in p.layers.iter().zip(diffs) {
            let layer = if blob == diff_id {
                self.add_layer_from_blob(parent.as_ref(), diff_id)?
            } else {
                // Compressed blob: store the uncompressed tar under its diff ID.
                let file = self.content.open_blob(blob)?;
                self.add_layer_from_stream(parent.as_ref(), Box::new(file), Some(diff_id))?
            };
            parent = Some(layer);
        }
        self.register_image(&bytes, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_confined() {
        assert_eq!(normalise("./a/b/../c").as_deref(), Some("a/c"));
        assert_eq!(normalise("/abs/x").as_deref(), Some("abs/x"));
        assert_eq!(normalise("../x"), None);
        assert_eq!(normalise("a/../../x"), None);
    }

    #[test]
    fn only_image_files_are_kept() {
        for p in [
            "manifest.json",
            "index.json",
            "blobs/sha256/ab",
            "abc.json",
            "id/layer.tar",
        ] {
            assert!(wanted(p), "{p}");
        }
        for p in ["id/json", "id/VERSION", "x/y.json", "deep/junk/file"] {
            assert!(!wanted(p), "{p}");
        }
    }

    #[test]
    fn links_resolve_and_loops_fail() {
        let d = Digest::from_hex(&"a".repeat(64)).unwrap();
        let mut f = ArchiveFiles::default();
        f.files.insert("blobs/sha256/x".into(), d.clone());
        f.links
            .insert("id/layer.tar".into(), "blobs/sha256/x".into());
        f.links.insert("loop1".into(), "loop2".into());
        f.links.insert("loop2".into(), "loop1".into());
        assert_eq!(f.get("./id/layer.tar").unwrap(), &d);
        assert!(f.get("loop1").is_err());
        assert!(f.get("missing").is_err());
        assert!(f.get("../etc/passwd").is_err());
    }
}
