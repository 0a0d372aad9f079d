//! Registering read-only layers: tar diff -> content store blob (by diff ID) + driver layer +
//! layer record, deduplicated by chain ID.

use std::io::{self, BufReader, Read, Write};

use wharf_imageref::Digest;
use wharf_storage::UnpackedLayer;

use crate::content::Ingest;
use crate::error::ImageError;
use crate::fsutil::random_hex;
use crate::model::chain_id_on;
use crate::service::ImageService;
use crate::store::LayerRecord;

/// Read buffer for layer blobs: the tar reader otherwise asks for 512-byte headers one at a time.
const BLOB_BUF: usize = 1 << 20;

/// Copies everything read into the blob being ingested.
struct TeeIngest<'a, R> {
    inner: R,
    ingest: &'a mut Ingest,
}

impl<R: Read> Read for TeeIngest<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.ingest.write_all(&buf[..n])?;
        Ok(n)
    }
}

impl ImageService {
    /// Chain ID a layer with `diff_id` gets on top of `parent`.
    fn chain_of(parent: Option<&LayerRecord>, diff_id: &Digest) -> Digest {
        chain_id_on(parent.map(|p| &p.chain_id), diff_id)
    }

    /// The registered layer with this chain ID, if any.
    pub(crate) fn layer(&self, chain: &Digest) -> Option<LayerRecord> {
        self.read_state().layers.get(chain).cloned()
    }

    /// Adds a layer from a (possibly compressed) tar stream; the uncompressed tar is kept in
    /// the content store as the layer's blob. `expected` is the diff ID the config promises.
    /// Callers hold the writer lock.
    pub(crate) fn add_layer_from_stream(
        &self,
        parent: Option<&LayerRecord>,
        src: Box<dyn Read + '_>,
        expected: Option<&Digest>,
    ) -> Result<LayerRecord, ImageError> {
        if let Some(e) = expected {
            if let Some(existing) = self.layer(&Self::chain_of(parent, e)) {
                return Ok(existing);
            }
        }
        let plain = wharf_archive::decompress(src)?;
        let mut ingest = self.content.ingest()?;
        let cache_id = random_hex() + &random_hex();
        let created = {
            let mut tee = TeeIngest {
                inner: plain,
                ingest: &mut ingest,
            };
            let parent_id = parent.map(|p| p.cache_id.as_str());
            self.driver
                .create_layer(&cache_id, parent_id, &mut tee)
                .map_err(ImageError::from)
                .and_then(|size| {
                    // The tar reader may stop before trailing padding; the blob needs it all.
                    io::copy(&mut tee, &mut io::sink()).map_err(ImageError::io("read layer"))?;
                    Ok(size)
                })
        };
        let committed = created.and_then(|size| Ok((size, ingest.commit(expected)?.0)));
        let (size, diff_id) = match committed {
            Ok(v) => v,
            Err(e) => {
                let _ = self.driver.remove(&cache_id);
                return Err(e);
            }
        };
        self.record_layer(parent, diff_id, cache_id, size)
    }

    /// Adds a layer whose uncompressed tar is already the store blob `diff_id`.
    pub(crate) fn add_layer_from_blob(
        &self,
        parent: Option<&LayerRecord>,
        diff_id: &Digest,
    ) -> Result<LayerRecord, ImageError> {
        if let Some(existing) = self.layer(&Self::chain_of(parent, diff_id)) {
            return Ok(existing);
        }
        let mut file = BufReader::with_capacity(BLOB_BUF, self.content.open_blob(diff_id)?);
        let cache_id = random_hex() + &random_hex();
        match self
            .driver
            .create_layer(&cache_id, parent.map(|p| p.cache_id.as_str()), &mut file)
        {
            Ok(size) => self.record_layer(parent, diff_id.clone(), cache_id, size),
            Err(e) => {
                let _ = self.driver.remove(&cache_id);
                Err(e.into())
            }
        }
    }

    /// Unpacks the layer blob `diff_id` under a fresh cache id, parent still unknown; `None`
    /// when the driver cannot (see [`wharf_storage::Driver::unpack_layer`]).
    pub(crate) fn unpack_blob(
        &self,
        diff_id: &Digest,
    ) -> Option<Result<UnpackedLayer, ImageError>> {
        let mut file = match self.content.open_blob(diff_id) {
            Ok(f) => BufReader::with_capacity(BLOB_BUF, f),
            Err(e) => return Some(Err(e)),
        };
        let cache_id = random_hex() + &random_hex();
        self.driver
            .unpack_layer(&cache_id, &mut file)
            .map(|r| r.map_err(ImageError::from))
    }

    /// Registers an unpacked layer blob `diff_id` on `parent` (an existing identical layer
    /// wins and the unpacked files are dropped).
    pub(crate) fn add_unpacked_layer(
        &self,
        parent: Option<&LayerRecord>,
        diff_id: &Digest,
        layer: UnpackedLayer,
    ) -> Result<LayerRecord, ImageError> {
        if let Some(existing) = self.layer(&Self::chain_of(parent, diff_id)) {
            return Ok(existing);
        }
        let cache_id = layer.id().to_string();
        let size = self
            .driver
            .commit_unpacked(layer, parent.map(|p| p.cache_id.as_str()))?;
        self.record_layer(parent, diff_id.clone(), cache_id, size)
    }

    /// Persists the record of a layer whose data is complete; a duplicate (same chain ID
    /// created meanwhile) is dropped in favour of the existing one.
    fn record_layer(
        &self,
        parent: Option<&LayerRecord>,
        diff_id: Digest,
        cache_id: String,
        size: u64,
    ) -> Result<LayerRecord, ImageError> {
        let chain_id = Self::chain_of(parent, &diff_id);
        if let Some(existing) = self.layer(&chain_id) {
            self.driver.remove(&cache_id)?;
            return Ok(existing);
        }
        let rec = LayerRecord {
            chain_id: chain_id.clone(),
            diff_id,
            parent: parent.map(|p| p.chain_id.clone()),
            cache_id,
            size,
        };
        if let Err(e) = self.meta.put_layer(&rec) {
            let _ = self.driver.remove(&rec.cache_id);
            return Err(e);
        }
        self.write_state().layers.insert(chain_id, rec.clone());
        Ok(rec)
    }
}
