//! Containers' read-write layers: create, mount, diff, size, remove, reconcile; and the
//! disk usage figures that count them.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use wharf_imageref::Digest;

use crate::error::ImageError;
use crate::service::{DiskUsage, ImageService, ImageUsage};
use crate::store::RwRecord;

impl ImageService {
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
        let rec = RwRecord {
            container_id: container_id.to_string(),
            image_id: id,
            parent_chain: top,
            has_init: true,
        };
        let init_id = rec.init_id().unwrap_or_default();
        self.driver.create_rw(&init_id, parent_cache.as_deref())?;
        let made = (|| {
            self.fill_init_layer(&init_id)?;
            self.driver.create_rw(container_id, Some(&init_id))?;
            self.meta.put_rw(&rec)
        })();
        if let Err(e) = made {
            let _ = self.driver.remove(container_id);
            let _ = self.driver.remove(&init_id);
            return Err(e);
        }
        self.write_state().rw.insert(container_id.to_string(), rec);
        Ok(())
    }

    fn fill_init_layer(&self, init_id: &str) -> Result<(), ImageError> {
        crate::init_layer::populate(&self.driver.rw_view(init_id)?)
    }

    /// Removes the container's layers from the driver, the read-write one first.
    fn remove_driver_layers(&self, rec: &RwRecord) -> Result<(), ImageError> {
        self.driver.remove(&rec.container_id)?;
        if let Some(init) = rec.init_id() {
            self.driver.remove(&init)?;
        }
        Ok(())
    }

    /// Driver id of the layer right under the read-write one: what diffs are taken against.
    pub(crate) fn rw_parent_id(&self, rec: &RwRecord) -> Option<String> {
        rec.init_id()
            .or_else(|| self.cache_id_of(rec.parent_chain.as_ref()))
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
        let rec = self.rw_record(container_id)?;
        self.remove_driver_layers(&rec)?;
        self.meta.delete_rw(container_id)?;
        self.write_state().rw.remove(container_id);
        self.gc_layers()
    }

    /// What the container changed relative to its image (`docker diff`).
    pub fn changes(&self, container_id: &str) -> Result<Vec<wharf_archive::Change>, ImageError> {
        let rec = self.rw_record(container_id)?;
        let parent = self.rw_parent_id(&rec);
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
        let mut image_users: HashMap<&Digest, usize> = HashMap::new();
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
        let stale: Vec<RwRecord> = self
            .read_state()
            .rw
            .values()
            .filter(|r| !known.contains(r.container_id.as_str()))
            .cloned()
            .collect();
        for rec in stale {
            self.remove_driver_layers(&rec)?;
            self.meta.delete_rw(&rec.container_id)?;
            self.write_state().rw.remove(&rec.container_id);
        }
        self.gc_layers()
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
    fn container_ids_are_path_safe() {
        assert!(validate_container_id("abc123").is_ok());
        assert!(validate_container_id("../x").is_err());
        assert!(validate_container_id("").is_err());
    }
}
