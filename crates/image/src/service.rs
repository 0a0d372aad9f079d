//! [`ImageService`]: the image store the daemon talks to (open/recovery, lookup, tags,
//! removal, prune, history, container layers, disk usage).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::Serialize;
use wharf_imageref::{Digest, Reference};
use wharf_storage::Driver;

use crate::content::ContentStore;
use crate::error::ImageError;
use crate::model::{ContainerConfig, HistoryItem};
use crate::store::{image_entry, ImageEntry, ImageRecord, Lookup, MetaStore, State};

/// The image store: metadata, content blobs and (through the driver) layer data.
///
/// Thread-safe: reads share a lock on the in-memory state; every mutation is serialised by
/// one writer lock, so long imports never block `list`/`resolve`.
pub struct ImageService {
    pub(crate) driver: Driver,
    pub(crate) content: ContentStore,
    pub(crate) meta: MetaStore,
    state: RwLock<State>,
    writer: Mutex<()>,
}

/// What `docker image inspect` / `docker images` show, in Docker's JSON shape.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Image {
    /// `sha256:<hex>` of the config blob.
    pub id: String,
    /// Familiar tags: `busybox:latest`.
    pub repo_tags: Vec<String>,
    /// Familiar digest references: `busybox@sha256:…`.
    pub repo_digests: Vec<String>,
    /// Local parent image id, or empty.
    pub parent: String,
    pub comment: String,
    /// RFC 3339 with nanoseconds.
    pub created: String,
    pub docker_version: String,
    pub author: String,
    pub config: ContainerConfig,
    pub architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    pub os: String,
    /// Total bytes of all layers.
    pub size: u64,
    pub graph_driver: GraphDriver,
    #[serde(rename = "RootFS")]
    pub root_fs: InspectRootFs,
    pub metadata: ImageMetadata,
    /// The config's history (not part of inspect output; see [`ImageService::history`]).
    #[serde(skip)]
    pub history: Vec<HistoryItem>,
}

impl Image {
    /// `Created` as unix seconds (`docker images` / `GET /images/json`); 0 when unknown.
    pub fn created_unix(&self) -> i64 {
        parse_time(&self.created)
    }
}

/// `GraphDriver` of inspect output.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GraphDriver {
    pub name: String,
    pub data: Option<BTreeMap<String, String>>,
}

/// `RootFS` of inspect output.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectRootFs {
    #[serde(rename = "Type")]
    pub kind: String,
    /// Diff IDs, bottom first.
    pub layers: Vec<String>,
}

/// `Metadata` of inspect output.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageMetadata {
    /// When the image was last tagged (RFC 3339); Docker's zero time if never.
    pub last_tag_time: String,
}

/// Go's zero `time.Time`, which Docker prints for "never".
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// One item of `GET /images/{name}/history`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HistoryEntry {
    /// Image id, or `<missing>` for steps that are not local images.
    pub id: String,
    /// Unix seconds.
    pub created: i64,
    pub created_by: String,
    /// Familiar tags of that image, `null` when none.
    pub tags: Option<Vec<String>>,
    /// Bytes the step's layer holds (0 for empty layers).
    pub size: u64,
    pub comment: String,
}

/// One item of an image delete/prune response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum DeleteItem {
    /// A tag was removed (familiar form).
    Untagged(String),
    /// An image was deleted (`sha256:…`).
    Deleted(String),
}

/// Figures for `docker system df`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiskUsage {
    /// Bytes of all read-only layers, each counted once.
    pub layers_size: u64,
    pub images: Vec<ImageUsage>,
}

/// One image's share of the disk.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageUsage {
    pub id: String,
    pub size: u64,
    /// Bytes in layers that other images also use.
    pub shared_size: u64,
    /// Number of containers whose layer sits on this image.
    pub containers: usize,
}

/// Options for [`ImageService::commit`].
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    pub repo_tag: Option<String>,
    pub author: Option<String>,
    pub comment: Option<String>,
    /// Replaces the image's container config when given.
    pub config: Option<ContainerConfig>,
    /// Dockerfile instructions applied after `config` (see [`crate::apply_changes`]).
    pub changes: Vec<String>,
    /// Informational: pausing is the daemon's job (it owns the container's cgroup).
    pub pause: bool,
    /// The history row's `created_by` (a build step); none for `docker commit`.
    pub created_by: Option<String>,
}

pub(crate) fn parse_time(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp())
        .unwrap_or(0)
}

pub(crate) fn familiar(full: &str) -> String {
    Reference::parse(full)
        .map(|r| r.familiar())
        .unwrap_or_else(|_| full.to_string())
}

impl ImageService {
    /// Opens the store at `root` (metadata + content); `driver` owns layer data. Recovers from
    /// a crash: drops records whose data is missing, removes layers and blobs nothing uses,
    /// and lets the driver delete half-created layers.
    pub fn open(root: &Path, driver: Driver) -> Result<ImageService, ImageError> {
        std::fs::create_dir_all(root)
            .map_err(ImageError::io(format!("create {}", root.display())))?;
        let content = ContentStore::open(&root.join("content"))?;
        let meta = MetaStore::open(root)?;
        let loaded = meta.load()?;
        let mut state = State::default();

        // Layers: keep those whose data exists and whose parent survives.
        let mut pending: Vec<_> = loaded.layers;
        loop {
            let before = pending.len();
            pending.retain(|l| {
                let parent_ok = l
                    .parent
                    .as_ref()
                    .is_none_or(|p| state.layers.contains_key(p));
                if parent_ok && driver.exists(&l.cache_id) {
                    state.layers.insert(l.chain_id.clone(), l.clone());
                    false
                } else {
                    true
                }
            });
            if pending.len() == before {
                break;
            }
        }
        for l in pending {
            tracing::warn!(chain_id = %l.chain_id, "dropping layer record without data");
            meta.delete_layer(&l.chain_id)?;
        }

        for rec in loaded.images {
            let entry = content
                .read(&rec.id)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .map(|cfg| image_entry(rec.clone(), cfg));
            match entry {
                Some(e) if e.chain.iter().all(|c| state.layers.contains_key(c)) => {
                    state.images.insert(rec.id.clone(), e);
                }
                _ => {
                    tracing::warn!(image = %rec.id, "dropping image record with missing config or layers");
                    meta.delete_image(&rec.id)?;
                }
            }
        }
        for rw in loaded.rw {
            if driver.exists(&rw.container_id) {
                state.rw.insert(rw.container_id.clone(), rw);
            } else {
                meta.delete_rw(&rw.container_id)?;
            }
        }
        let refs_before = loaded.refs.len();
        state.refs = loaded
            .refs
            .into_iter()
            .filter(|(_, id)| state.images.contains_key(id))
            .collect();
        if state.refs.len() != refs_before {
            meta.put_refs(&state.refs)?;
        }

        let svc = ImageService {
            driver,
            content,
            meta,
            state: RwLock::new(state),
            writer: Mutex::new(()),
        };
        let guard = svc.lock_writer();
        svc.gc(&guard)?;
        let known: Vec<String> = {
            let st = svc.read_state();
            st.layers
                .values()
                .map(|l| l.cache_id.clone())
                .chain(
                    st.rw
                        .values()
                        .flat_map(|r| [Some(r.container_id.clone()), r.init_id()])
                        .flatten(),
                )
                .collect()
        };
        let removed = svc.driver.reconcile(&known)?;
        if !removed.is_empty() {
            tracing::info!(count = removed.len(), "removed unknown driver layers");
        }
        drop(guard);
        Ok(svc)
    }

    /// The storage driver (for `docker info`).
    pub fn driver(&self) -> &Driver {
        &self.driver
    }

    pub(crate) fn read_state(&self) -> RwLockReadGuard<'_, State> {
        // A panic while holding the lock cannot leave State half-updated in a way that matters
        // more than refusing all further work would, so recover the guard.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn write_state(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn lock_writer(&self) -> MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn lookup_id(&self, reference: &str) -> Result<Digest, ImageError> {
        match self.read_state().lookup(reference) {
            Lookup::Found(id) => Ok(id),
            Lookup::Missing => Err(ImageError::NotFound(reference.to_string())),
            Lookup::Ambiguous(n) => Err(ImageError::Conflict(format!(
                "ambiguous image reference {reference:?}: the prefix matches {n} images"
            ))),
        }
    }

    /// name[:tag], name@digest, `sha256:<hex>`, 64-hex, or a unique id prefix.
    pub fn resolve(&self, reference: &str) -> Result<Image, ImageError> {
        let id = self.lookup_id(reference)?;
        let st = self.read_state();
        let e = st
            .images
            .get(&id)
            .ok_or_else(|| ImageError::NotFound(reference.to_string()))?;
        Ok(self.view(&st, e))
    }

    /// Every image.
    pub fn list(&self) -> Vec<Image> {
        let st = self.read_state();
        st.images.values().map(|e| self.view(&st, e)).collect()
    }

    fn view(&self, st: &State, e: &ImageEntry) -> Image {
        let (mut tags, mut digests) = (Vec::new(), Vec::new());
        for r in st.refs_of(&e.record.id) {
            if r.contains('@') {
                digests.push(familiar(&r));
            } else {
                tags.push(familiar(&r));
            }
        }
        let c = &e.config;
        Image {
            id: e.record.id.to_string(),
            repo_tags: tags,
            repo_digests: digests,
            parent: e
                .record
                .parent
                .as_ref()
                .map(|p| p.to_string())
                .unwrap_or_default(),
            comment: c.comment.clone().unwrap_or_default(),
            created: c.created.clone().unwrap_or_default(),
            docker_version: c.docker_version.clone().unwrap_or_default(),
            author: c.author.clone().unwrap_or_default(),
            config: c.config.clone().unwrap_or_default(),
            architecture: c.architecture.clone(),
            variant: c.variant.clone(),
            os: c.os.clone(),
            size: st.image_size(e),
            graph_driver: GraphDriver {
                name: self.driver.name().to_string(),
                data: None,
            },
            root_fs: InspectRootFs {
                kind: c.rootfs.kind.clone(),
                layers: c.rootfs.diff_ids.iter().map(|d| d.to_string()).collect(),
            },
            metadata: ImageMetadata {
                last_tag_time: e
                    .record
                    .last_tag_time
                    .clone()
                    .unwrap_or_else(|| ZERO_TIME.to_string()),
            },
            history: c.history.clone(),
        }
    }

    /// The image's build steps, newest first, as `docker history` shows them.
    pub fn history(&self, reference: &str) -> Result<Vec<HistoryEntry>, ImageError> {
        let id = self.lookup_id(reference)?;
        let st = self.read_state();
        let e = st
            .images
            .get(&id)
            .ok_or_else(|| ImageError::NotFound(reference.to_string()))?;
        let mut items = e.config.history.clone();
        if items.is_empty() {
            // Configs without history (some tools omit it): one synthetic step per layer.
            items = e
                .chain
                .iter()
                .map(|_| HistoryItem {
                    created: e.config.created.clone(),
                    ..Default::default()
                })
                .collect();
        }
        // Local ancestors own the step at index (their history length - 1).
        let mut owners: BTreeMap<usize, Digest> = BTreeMap::new();
        owners.insert(items.len().saturating_sub(1), id.clone());
        let mut parent = e.record.parent.clone();
        while let Some(p) = parent {
            let Some(pe) = st.images.get(&p) else { break };
            let n = pe.config.history.len().max(pe.chain.len());
            if n > 0 {
                owners.entry(n - 1).or_insert_with(|| p.clone());
            }
            parent = pe.record.parent.clone();
        }
        let mut layer_idx = 0;
        let mut out = Vec::with_capacity(items.len());
        for (i, h) in items.iter().enumerate() {
            let size = if h.empty_layer {
                0
            } else {
                let s = e
                    .chain
                    .get(layer_idx)
                    .and_then(|c| st.layers.get(c))
                    .map_or(0, |l| l.size);
                layer_idx += 1;
                s
            };
            let (hid, tags) = match owners.get(&i) {
                Some(owner) => {
                    let t: Vec<String> = st
                        .refs_of(owner)
                        .iter()
                        .filter(|r| !r.contains('@'))
                        .map(|r| familiar(r))
                        .collect();
                    (owner.to_string(), if t.is_empty() { None } else { Some(t) })
                }
                None => ("<missing>".to_string(), None),
            };
            out.push(HistoryEntry {
                id: hid,
                created: h.created.as_deref().map_or(0, parse_time),
                created_by: h.created_by.clone().unwrap_or_default(),
                tags,
                size,
                comment: h.comment.clone().unwrap_or_default(),
            });
        }
        out.reverse();
        Ok(out)
    }

    /// Points `repo[:tag]` (default tag `latest`) at the image `reference` resolves to.
    pub fn tag(&self, reference: &str, repo: &str, tag: Option<&str>) -> Result<(), ImageError> {
        let _w = self.lock_writer();
        let id = self.lookup_id(reference)?;
        let r = Reference::with_repo_tag(repo, tag)?;
        self.set_ref(&r, &id)
    }

    /// Adds or moves one tag; persists before updating memory.
    pub(crate) fn set_ref(&self, r: &Reference, id: &Digest) -> Result<(), ImageError> {
        let key = r.clone().with_default_tag().full();
        let mut st = self.write_state();
        let mut refs = st.refs.clone();
        refs.insert(key, id.clone());
        self.meta.put_refs(&refs)?;
        st.refs = refs;
        if let Some(e) = st.images.get_mut(id) {
            let mut rec = e.record.clone();
            rec.last_tag_time = Some(crate::model::now_rfc3339());
            // Informational only: a failure to record the time must not fail the tag.
            if self.meta.put_image(&rec).is_ok() {
                e.record = rec;
            }
        }
        Ok(())
    }

    /// Records a new image whose layers are all registered; the config goes to the store.
    pub(crate) fn register_image(
        &self,
        config_bytes: &[u8],
        parent: Option<Digest>,
    ) -> Result<Digest, ImageError> {
        let config =
            serde_json::from_slice(config_bytes).map_err(ImageError::json("image config"))?;
        let id = self.content.write_bytes(config_bytes)?;
        let existing = self.read_state().images.get(&id).map(|e| e.record.clone());
        let record = match existing {
            Some(r) => return Ok(r.id),
            None => ImageRecord {
                id: id.clone(),
                parent,
                last_tag_time: None,
            },
        };
        let entry = image_entry(record.clone(), config);
        {
            let st = self.read_state();
            if let Some(missing) = entry.chain.iter().find(|c| !st.layers.contains_key(*c)) {
                return Err(ImageError::InvalidArgument(format!(
                    "image {id} refers to unknown layer {missing}"
                )));
            }
        }
        self.meta.put_image(&record)?;
        self.write_state().images.insert(id.clone(), entry);
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_is_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<ImageService>();
    }
}
