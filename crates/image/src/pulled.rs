//! Images that arrive layer by layer from elsewhere (a registry pull): the caller checks which
//! layers exist, adds the missing ones bottom up, then registers the config and its names.
//! A push reads the other way: the config and each layer's uncompressed tar.
//! Layers added for an image that is never registered are garbage that the next collection
//! (or [`ImageService::open`] after a crash) removes, so a failed pull leaves no image behind.

use std::fs::File;
use std::io::Read;

use wharf_imageref::{Digest, Reference};

use crate::error::ImageError;
use crate::service::ImageService;

impl ImageService {
    /// Whether the layer chain `chain` is registered.
    pub fn has_layer(&self, chain: &Digest) -> bool {
        self.layer(chain).is_some()
    }

    /// Whether the image with config digest `id` is registered.
    pub fn has_image(&self, id: &Digest) -> bool {
        self.read_state().images.contains_key(id)
    }

    /// Applies a layer tar (plain, gzip or zstd) on top of the registered chain `parent` and
    /// returns the new chain ID. Data whose uncompressed digest is not `diff_id` is refused and
    /// leaves nothing behind; an already registered layer is returned without reading `src`.
    pub fn add_layer(
        &self,
        parent: Option<&Digest>,
        src: Box<dyn Read + '_>,
        diff_id: &Digest,
    ) -> Result<Digest, ImageError> {
        let _w = self.lock_writer();
        let parent = match parent {
            Some(p) => Some(
                self.layer(p)
                    .ok_or_else(|| ImageError::NotFound(format!("layer {p}")))?,
            ),
            None => None,
        };
        let rec = self.add_layer_from_stream(parent.as_ref(), src, Some(diff_id))?;
        Ok(rec.chain_id)
    }

    /// Registers the image `config` (its layers must all be registered) and points each of
    /// `refs` (tags or digest references) at it. Returns the image ID and whether any of the
    /// names was new or pointed elsewhere before (Docker's "Downloaded newer image").
    pub fn register_pulled(
        &self,
        config: &[u8],
        refs: &[Reference],
    ) -> Result<(Digest, bool), ImageError> {
        let _w = self.lock_writer();
        let id = self.register_image(config, None)?;
        let mut changed = false;
        for r in refs {
            let key = r.clone().with_default_tag().full();
            if self.read_state().refs.get(&key) != Some(&id) {
                changed = true;
                self.set_ref(r, &id)?;
            }
        }
        Ok((id, changed))
    }

    /// The ID, config bytes and layer diff IDs (bottom first) of the image `reference` names.
    pub fn image_for_push(
        &self,
        reference: &str,
    ) -> Result<(Digest, Vec<u8>, Vec<Digest>), ImageError> {
        let id = self.lookup_id(reference)?;
        let config = self.content.read(&id)?;
        let diff_ids = self
            .read_state()
            .images
            .get(&id)
            .map(|e| e.config.rootfs.diff_ids.clone())
            .ok_or_else(|| ImageError::NotFound(reference.to_string()))?;
        Ok((id, config, diff_ids))
    }

    /// Opens the uncompressed tar of the layer with `diff_id`.
    pub fn open_layer_tar(&self, diff_id: &Digest) -> Result<File, ImageError> {
        self.content.open_blob(diff_id)
    }
}
