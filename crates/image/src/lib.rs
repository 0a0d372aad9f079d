//! Wharf's image store: content-addressed blobs, image/layer/tag metadata, and the image
//! operations the daemon exposes (import, load, save, commit, tag, rmi, prune, history).
//!
//! Layout under the store root (`<data-root>/image`):
//! `content/blobs/sha256/<hex>` (configs and uncompressed layer tars, by digest),
//! `content/ingest/` (in-flight writes), `imagedb/<id>.json`, `layerdb/<chain-id>.json`,
//! `rwlayers/<container>.json`, `repositories.json`. Layer data lives in the storage driver.
//! Layer tars are kept byte for byte so `save` reproduces the exact diff IDs (at the cost of
//! storing each layer twice: as a tar blob and unpacked in the driver).
//!
//! ```no_run
//! use std::path::Path;
//! use wharf_image::ImageService;
//! use wharf_storage::{Driver, DriverKind};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let data_root = Path::new("/var/lib/wharf");
//! let driver = Driver::new(DriverKind::Overlay2, &data_root.join("overlay2"), &[])?;
//! let images = ImageService::open(&data_root.join("image"), driver)?;
//! let lines = images.load(&mut std::fs::File::open("busybox.tar")?)?;
//! let img = images.resolve("busybox")?;
//! images.create_rw_layer("c0ffee", &img.id)?;
//! let rootfs = images.mount_rw_layer("c0ffee")?;
//! # let _ = (lines, rootfs);
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

mod changes;
mod containers;
mod content;
mod error;
mod fsutil;
mod import;
mod init_layer;
mod layers;
mod load;
mod model;
mod pulled;
mod remove;
mod save;
mod service;
mod store;

pub use changes::apply_changes;
pub use content::{digest_of, ContentStore, Ingest};
pub use error::ImageError;
pub use load::MAX_JSON_MEMBER;
pub use model::{
    chain_ids, host_arch, is_index_type, ContainerConfig, Descriptor, Healthcheck, HistoryItem,
    ImageConfig, Index, Manifest, Platform, RootFs, SaveManifestEntry, MT_DOCKER_CONFIG,
    MT_DOCKER_MANIFEST, MT_DOCKER_MANIFEST_LIST, MT_OCI_CONFIG, MT_OCI_INDEX, MT_OCI_LAYER,
    MT_OCI_MANIFEST,
};
pub use service::{
    CommitOptions, DeleteItem, DiskUsage, GraphDriver, HistoryEntry, Image, ImageMetadata,
    ImageService, ImageUsage, InspectRootFs,
};
pub use wharf_imageref::{Digest, Reference};
