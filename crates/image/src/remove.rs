//! `docker rmi` and `docker image prune`, and the garbage collection of layers and blobs
//! that nothing references any more.

use std::collections::{HashMap, HashSet};
use std::sync::MutexGuard;

use wharf_imageref::{short_id, Digest, Reference};

use crate::error::ImageError;
use crate::service::{familiar, DeleteItem, ImageService};

impl ImageService {
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
        let in_use = &|img: &str| in_use(img) || with_layers.contains_key(img);
        // Name the container in conflict messages when the store knows it.
        let user = with_layers.get(id.as_str()).map_or_else(
            || "a container".to_string(),
            |c| format!("container {}", short_id(c)),
        );
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
                    "conflict: unable to remove repository reference \"{reference}\" (must force) - {user} is using its referenced image {}",
                    short_id(id.as_str())
                )));
            }
            self.remove_refs(std::slice::from_ref(&key))?;
            items.push(DeleteItem::Untagged(familiar(&key)));
            // As moby: the last tag of a repository takes that repository's digest
            // references (left by a pull or push) with it.
            let repo = Reference::parse(&key).ok().map(|r| r.name());
            let others: Vec<String> = refs.iter().filter(|r| **r != key).cloned().collect();
            let same_repo: Vec<String> = others
                .iter()
                .filter(|r| Reference::parse(r).ok().map(|r| r.name()) == repo)
                .cloned()
                .collect();
            let mut left = others.len();
            if !key.contains('@') && same_repo.iter().all(|r| r.contains('@')) {
                self.remove_refs(&same_repo)?;
                items.extend(same_repo.iter().map(|r| DeleteItem::Untagged(familiar(r))));
                left -= same_repo.len();
            }
            if left > 0 {
                return Ok(items);
            }
            // Untagging the last tag deletes the image only if nothing else needs it.
            if self.delete_conflict(&id, force, in_use, &user).is_none() {
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
            if let Some(msg) = self.delete_conflict(&id, force, in_use, &user) {
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
        user: &str,
    ) -> Option<String> {
        if !self.read_state().children_of(id).is_empty() {
            return Some(format!(
                "conflict: unable to delete {} (cannot be forced) - image has dependent child images",
                short_id(id.as_str())
            ));
        }
        if !force && in_use(id.as_str()) {
            return Some(format!(
                "conflict: unable to delete {} (must be forced) - image is being used by {user}",
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
        let in_use = &|img: &str| in_use(img) || with_layers.contains_key(img);
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

    /// Image id -> a container whose layer sits on it: in use even if the callback missed it.
    fn images_with_containers(&self) -> HashMap<String, String> {
        self.read_state()
            .rw
            .values()
            .map(|r| (r.image_id.to_string(), r.container_id.clone()))
            .collect()
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
}
