//! Wharf's image store: content-addressed blobs, image/layer/tag metadata, and the image
//! operations the daemon exposes (import, load, save, commit, tag, rmi, prune, history).
//!
//! Layout under the store root (`<data-root>/image`):
//! `content/blobs/sha256/<hex>` (configs and uncompressed layer tars, by digest),
//! `content/ingest/` (in-flight writes), `imagedb/<id>.json`, `layerdb/<chain-id>.json`,
//! `rwlayers/<container>.json`, `repositories.json`. Layer data lives in the storage driver.
#![forbid(unsafe_code)]

mod changes;
mod containers;
mod content;
mod error;
mod fsutil;
mod import;
mod layers;
mod load;
mod model;
mod remove;
mod save;
mod service;
mod store;

pub use changes::apply_changes;
pub use content::{digest_of, ContentStore, Ingest};
pub use error::ImageError;
pub use model::{
    chain_ids, host_arch, ContainerConfig, Descriptor, Healthcheck, HistoryItem, ImageConfig,
    Index, Manifest, Platform, RootFs, SaveManifestEntry, MT_DOCKER_CONFIG, MT_DOCKER_MANIFEST,
    MT_DOCKER_MANIFEST_LIST, MT_OCI_CONFIG, MT_OCI_INDEX, MT_OCI_LAYER, MT_OCI_MANIFEST,
};
pub use service::{
    CommitOptions, DeleteItem, DiskUsage, GraphDriver, HistoryEntry, Image, ImageMetadata,
    ImageService, ImageUsage, InspectRootFs,
};
pub use wharf_imageref::{Digest, Reference};
