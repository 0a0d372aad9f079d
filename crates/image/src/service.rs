//! [`ImageService`]: the image store the daemon talks to (open/recovery, lookup, tags,
//! removal, prune, history, container layers, disk usage).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::Serialize;
use wharf_imageref::{short_id, Digest, Reference};
use wharf_storage::Driver;

use crate::content::ContentStore;
use crate::error::ImageError;
use crate::model::{ContainerConfig, HistoryItem};
use crate::store::{image_entry, ImageEntry, ImageRecord, Lookup, MetaStore, RwRecord, State};

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
    /// When the image was last tagged (RFC 3339), absent if never.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_tag_time: Option<String>,
}

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
}

pub(crate) fn parse_time(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp())
        .unwrap_or(0)
}

fn familiar(full: &str) -> String {
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
                .chain(st.rw.keys().cloned())
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
                last_tag_time: e.record.last_tag_time.clone(),
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

    fn remove_refs(&self, keys: &[String]) -> Result<(), ImageError> {
        let mut st = self.write_state();
        let mut refs = st.refs.clone();
        for k in keys {
            refs.remove(k);
        }
        self.meta.put_refs(&refs)?;
        st.refs = refs;
        Ok(())
    }

    /// `docker rmi`. `in_use(image_id)` says whether a container uses the image.
    pub fn remove(
        &self,
        reference: &str,
        force: bool,
        prune_parents: bool,
        in_use: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<DeleteItem>, ImageError> {
        let _w = self.lock_writer();
        let id = self.lookup_id(reference)?;
        let with_layers = self.images_with_containers();
        let in_use = &|img: &str| in_use(img) || with_layers.contains(img);
        let mut items = Vec::new();
        let refs = self.read_state().refs_of(&id);
        // Named by a tag (or digest reference) that points at it, or else by id / id prefix.
        let tag_key = Reference::parse(reference)
            .ok()
            .map(|r| r.with_default_tag().full())
            .filter(|k| refs.contains(k));
        if let Some(key) = tag_key {
            if !force && refs.len() <= 1 && in_use(id.as_str()) {
                return Err(ImageError::Conflict(format!(
                    "conflict: unable to remove repository reference \"{reference}\" (must force) - container is using its referenced image {}",
                    short_id(id.as_str())
                )));
            }
            self.remove_refs(std::slice::from_ref(&key))?;
            items.push(DeleteItem::Untagged(familiar(&key)));
            if refs.len() > 1 {
                return Ok(items);
            }
            // Untagging the last tag deletes the image only if nothing else needs it.
            if self.delete_conflict(&id, force, in_use).is_none() {
                self.delete_image_and_parents(&id, prune_parents, in_use, &mut items)?;
            }
        } else {
            let repos: HashSet<String> = refs
                .iter()
                .filter_map(|r| Reference::parse(r).ok().map(|r| r.name()))
                .collect();
            if !force && repos.len() > 1 {
                return Err(ImageError::Conflict(format!(
                    "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                    short_id(id.as_str())
                )));
            }
            // Checked before untagging, so a refused delete changes nothing.
            if let Some(msg) = self.delete_conflict(&id, force, in_use) {
                return Err(ImageError::Conflict(msg));
            }
            self.remove_refs(&refs)?;
            items.extend(refs.iter().map(|r| DeleteItem::Untagged(familiar(r))));
            self.delete_image_and_parents(&id, prune_parents, in_use, &mut items)?;
        }
        self.gc_layers()?;
        Ok(items)
    }

    /// Why `id` cannot be deleted: child images always block; a container using it blocks
    /// unless forced (Docker's hard and soft conflicts).
    fn delete_conflict(
        &self,
        id: &Digest,
        force: bool,
        in_use: &dyn Fn(&str) -> bool,
    ) -> Option<String> {
        if !self.read_state().children_of(id).is_empty() {
            return Some(format!(
                "conflict: unable to delete {} (cannot be forced) - image has dependent child images",
                short_id(id.as_str())
            ));
        }
        if !force && in_use(id.as_str()) {
            return Some(format!(
                "conflict: unable to delete {} (must be forced) - image is being used by a container",
                short_id(id.as_str())
            ));
        }
        None
    }

    /// Deletes the untagged, conflict-free image `id`, then (with `prune_parents`) each
    /// parent that is untagged, childless and unused.
    fn delete_image_and_parents(
        &self,
        id: &Digest,
        prune_parents: bool,
        in_use: &dyn Fn(&str) -> bool,
        items: &mut Vec<DeleteItem>,
    ) -> Result<(), ImageError> {
        let mut cur = Some(id.clone());
        while let Some(img) = cur.take() {
            let parent = {
                let st = self.read_state();
                let Some(e) = st.images.get(&img) else { break };
                let blocked = img != *id
                    && (!st.children_of(&img).is_empty()
                        || !st.refs_of(&img).is_empty()
                        || in_use(img.as_str()));
                if blocked {
                    break;
                }
                e.record.parent.clone()
            };
            self.forget_image(&img)?;
            items.push(DeleteItem::Deleted(img.to_string()));
            if prune_parents {
                cur = parent;
            }
        }
        Ok(())
    }

    /// `docker image prune`: untagged leaf images (or, with `dangling_only == false`, every
    /// image no container uses). Returns what was deleted and the bytes freed.
    pub fn prune(
        &self,
        dangling_only: bool,
        in_use: &dyn Fn(&str) -> bool,
    ) -> Result<(Vec<DeleteItem>, u64), ImageError> {
        let _w = self.lock_writer();
        let with_layers = self.images_with_containers();
        let in_use = &|img: &str| in_use(img) || with_layers.contains(img);
        let size_before = self.layers_total();
        let mut items = Vec::new();
        // Repeat: deleting a child can make its parent prunable.
        loop {
            let victims: Vec<(Digest, Vec<String>)> = {
                let st = self.read_state();
                st.images
                    .keys()
                    .filter(|id| st.children_of(id).is_empty() && !in_use(id.as_str()))
                    .map(|id| (id.clone(), st.refs_of(id)))
                    .filter(|(_, refs)| !dangling_only || refs.is_empty())
                    .collect()
            };
            if victims.is_empty() {
                break;
            }
            for (id, refs) in victims {
                if !refs.is_empty() {
                    self.remove_refs(&refs)?;
                    items.extend(refs.iter().map(|r| DeleteItem::Untagged(familiar(r))));
                }
                self.forget_image(&id)?;
                items.push(DeleteItem::Deleted(id.to_string()));
            }
        }
        self.gc_layers()?;
        let freed = size_before.saturating_sub(self.layers_total());
        Ok((items, freed))
    }

    /// Drops an image's record and config blob (its layers go in [`Self::gc_layers`]).
    fn forget_image(&self, id: &Digest) -> Result<(), ImageError> {
        self.meta.delete_image(id)?;
        self.write_state().images.remove(id);
        if !self.read_state().live_blobs().contains(id) {
            self.content.delete(id)?;
        }
        Ok(())
    }

    /// Images some container layer sits on: in use even if the caller's callback missed it.
    fn images_with_containers(&self) -> HashSet<String> {
        self.read_state().rw.values().map(|r| r.image_id.to_string()).collect()
    }

    fn layers_total(&self) -> u64 {
        self.read_state().layers.values().map(|l| l.size).sum()
    }

    /// Removes layers no image or container uses (top-most first), and their blobs.
    pub(crate) fn gc_layers(&self) -> Result<(), ImageError> {
        loop {
            let unused = self.read_state().unused_layers();
            if unused.is_empty() {
                return Ok(());
            }
            for chain in unused {
                let Some(layer) = self.read_state().layers.get(&chain).cloned() else {
                    continue;
                };
                // A layer someone builds on must go after its children.
                let has_child = self
                    .read_state()
                    .layers
                    .values()
                    .any(|l| l.parent.as_ref() == Some(&chain));
                if has_child {
                    continue;
                }
                // Record first: a crash after it leaves driver data that reconcile removes.
                self.meta.delete_layer(&chain)?;
                self.write_state().layers.remove(&chain);
                self.driver.remove(&layer.cache_id)?;
                let still_used = self.read_state().live_blobs().contains(&layer.diff_id);
                if !still_used {
                    self.content.delete(&layer.diff_id)?;
                }
            }
        }
    }

    /// Full garbage collection: unused layers and every blob nothing references.
    pub(crate) fn gc(&self, _writer: &MutexGuard<'_, ()>) -> Result<(), ImageError> {
        self.gc_layers()?;
        let live = self.read_state().live_blobs();
        for blob in self.content.list()? {
            if !live.contains(&blob) {
                self.content.delete(&blob)?;
            }
        }
        Ok(())
    }

    /// Creates container `container_id`'s read-write layer on top of image `image_id`.
    pub fn create_rw_layer(&self, container_id: &str, image_id: &str) -> Result<(), ImageError> {
        validate_container_id(container_id)?;
        let _w = self.lock_writer();
        let id = self.lookup_id(image_id)?;
        if self.read_state().rw.contains_key(container_id) {
            return Err(ImageError::Conflict(format!(
                "read-write layer for container {container_id} already exists"
            )));
        }
        let (top, parent_cache) = {
            let st = self.read_state();
            let top = st.images.get(&id).and_then(|e| e.chain.last().cloned());
            let cache = top
                .as_ref()
                .and_then(|t| st.layers.get(t))
                .map(|l| l.cache_id.clone());
            (top, cache)
        };
        self.driver
            .create_rw(container_id, parent_cache.as_deref())?;
        let rec = RwRecord {
            container_id: container_id.to_string(),
            image_id: id,
            parent_chain: top,
        };
        if let Err(e) = self.meta.put_rw(&rec) {
            let _ = self.driver.remove(container_id);
            return Err(e);
        }
        self.write_state().rw.insert(container_id.to_string(), rec);
        Ok(())
    }

    pub(crate) fn rw_record(&self, container_id: &str) -> Result<RwRecord, ImageError> {
        self.read_state()
            .rw
            .get(container_id)
            .cloned()
            .ok_or_else(|| ImageError::NoRwLayer(container_id.to_string()))
    }

    pub(crate) fn cache_id_of(&self, chain: Option<&Digest>) -> Option<String> {
        let st = self.read_state();
        chain
            .and_then(|c| st.layers.get(c))
            .map(|l| l.cache_id.clone())
    }

    /// Mounts the container's merged root filesystem and returns its path.
    pub fn mount_rw_layer(&self, container_id: &str) -> Result<PathBuf, ImageError> {
        self.rw_record(container_id)?;
        Ok(self.driver.mount(container_id)?)
    }

    /// Releases one mount of the container's root filesystem.
    pub fn unmount_rw_layer(&self, container_id: &str) -> Result<(), ImageError> {
        self.rw_record(container_id)?;
        Ok(self.driver.unmount(container_id)?)
    }

    /// Deletes the container's layer (unmounting it), then any image layers it alone kept.
    pub fn remove_rw_layer(&self, container_id: &str) -> Result<(), ImageError> {
        let _w = self.lock_writer();
        self.rw_record(container_id)?;
        self.driver.remove(container_id)?;
        self.meta.delete_rw(container_id)?;
        self.write_state().rw.remove(container_id);
        self.gc_layers()
    }

    /// What the container changed relative to its image (`docker diff`).
    pub fn changes(&self, container_id: &str) -> Result<Vec<wharf_archive::Change>, ImageError> {
        let rec = self.rw_record(container_id)?;
        let parent = self.cache_id_of(rec.parent_chain.as_ref());
        Ok(self.driver.changes(container_id, parent.as_deref())?)
    }

    /// (`SizeRw`, `SizeRootFs`): bytes the container added, and that plus its image.
    pub fn rw_layer_size(&self, container_id: &str) -> Result<(u64, u64), ImageError> {
        let rec = self.rw_record(container_id)?;
        let rw = self.driver.diff_size(container_id)?;
        let st = self.read_state();
        let base: u64 = st
            .layer_chain(rec.parent_chain.as_ref())
            .iter()
            .filter_map(|c| st.layers.get(c))
            .map(|l| l.size)
            .sum();
        Ok((rw, rw + base))
    }

    /// Sizes for `docker system df`.
    pub fn disk_usage(&self) -> Result<DiskUsage, ImageError> {
        let st = self.read_state();
        let mut image_users: std::collections::HashMap<&Digest, usize> =
            std::collections::HashMap::new();
        for e in st.images.values() {
            for c in &e.chain {
                *image_users.entry(c).or_default() += 1;
            }
        }
        let images = st
            .images
            .values()
            .map(|e| {
                let shared = e
                    .chain
                    .iter()
                    .filter(|c| image_users.get(c).is_some_and(|n| *n > 1))
                    .filter_map(|c| st.layers.get(c))
                    .map(|l| l.size)
                    .sum();
                ImageUsage {
                    id: e.record.id.to_string(),
                    size: st.image_size(e),
                    shared_size: shared,
                    containers: st.rw.values().filter(|r| r.image_id == e.record.id).count(),
                }
            })
            .collect();
        Ok(DiskUsage {
            layers_size: st.layers.values().map(|l| l.size).sum(),
            images,
        })
    }

    /// Drops read-write layers of containers the daemon no longer knows.
    pub fn reconcile_rw_layers(&self, known_container_ids: &[String]) -> Result<(), ImageError> {
        let _w = self.lock_writer();
        let known: HashSet<&str> = known_container_ids.iter().map(String::as_str).collect();
        let stale: Vec<String> = self
            .read_state()
            .rw
            .keys()
            .filter(|k| !known.contains(k.as_str()))
            .cloned()
            .collect();
        for id in stale {
            self.driver.remove(&id)?;
            self.meta.delete_rw(&id)?;
            self.write_state().rw.remove(&id);
        }
        self.gc_layers()
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

fn validate_container_id(id: &str) -> Result<(), ImageError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ImageError::InvalidArgument(format!(
            "invalid container id {id:?}"
        )))
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

    #[test]
    fn container_ids_are_path_safe() {
        assert!(validate_container_id("abc123").is_ok());
        assert!(validate_container_id("../x").is_err());
        assert!(validate_container_id("").is_err());
    }
}
