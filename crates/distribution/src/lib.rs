//! Wharf's client of the OCI distribution spec (Docker Registry HTTP API v2): resolve a
//! reference, authenticate, and pull an image into the image store.
//!
//! Why our own rather than `oci-client`: that crate's pull buffers layers in memory and its
//! token cache trusts unverified JWT expiry; Wharf needs blobs streamed to disk with digest
//! checks on the way, resumable downloads that survive a daemon crash, layers applied while
//! others still download, dockerd's endpoint policy (mirrors, insecure registries) and its
//! error wording. HTTP is the project's own `wharf-fetch` (hyper + rustls, static-friendly).
//!
//! The daemon holds one [`Registry`] (settings, token cache, download dir) and writes images
//! through the [`LayerStore`] trait, which [`wharf_image::ImageService`] implements.
//!
//! ```no_run
//! # async fn f(images: std::sync::Arc<wharf_image::ImageService>) -> Result<(), Box<dyn std::error::Error>> {
//! use wharf_distribution::{Registry, RegistryConfig, Reporter};
//! let registry = Registry::new(RegistryConfig::default(), "/var/lib/wharf/image/downloads".into())?;
//! let r = registry.resolve(&"alpine".parse()?, None, None).await?;
//! registry.pull(images, r, &Reporter::silent()).await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod auth;
mod blob;
mod client;
mod endpoints;
mod error;
mod inspect;
mod login;
mod manifest;
mod platform;
mod progress;
mod pull;
mod push;
mod remote;
mod sources;
mod tags;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use auth::Credentials;
pub use endpoints::RegistryConfig;
pub use error::DistributionError;
pub use inspect::DistributionInspect;
pub use login::login_host;
pub use platform::Platform;
pub use progress::{Progress, Reporter};
pub use pull::{Pulled, Resolved};
pub use push::Pushed;
pub use remote::{RemoteDescriptor, RemoteManifest, RemotePlatform, RemoteView};
use wharf_image::Digest;
/// Image references, as the methods here take them.
pub use wharf_image::Reference;

/// The registry client the daemon holds: settings, the shared token cache and the directory
/// where blobs download (kept across crashes so pulls resume).
#[derive(Debug)]
pub struct Registry {
    config: RegistryConfig,
    cache: Arc<auth::AuthCache>,
    downloads: PathBuf,
    /// Where each blob was pulled from or pushed to, for cross-repository mounts.
    sources: Arc<sources::BlobSources>,
    /// One lock per blob being downloaded, so concurrent pulls never share a file.
    blob_locks: std::sync::Mutex<std::collections::HashMap<Digest, Arc<tokio::sync::Mutex<()>>>>,
}

impl Registry {
    /// A client with `config`, downloading into `downloads`.
    pub fn new(config: RegistryConfig, downloads: PathBuf) -> Result<Registry, DistributionError> {
        config.validate()?;
        // Compressed layers of pushes a crash interrupted: never resumed, so dropped.
        if let Ok(rd) = std::fs::read_dir(&downloads) {
            for e in rd.flatten() {
                if e.file_name()
                    .to_string_lossy()
                    .starts_with(push::PUSH_TEMP_PREFIX)
                {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        // Beside the downloads, in the image store; a client without one remembers nothing.
        let sources_file = downloads
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(|p| p.join("blob-sources.json"));
        Ok(Registry {
            config,
            cache: Arc::default(),
            sources: Arc::new(sources::BlobSources::open(sources_file)),
            downloads,
            blob_locks: Default::default(),
        })
    }

    /// The lock of blob `d`; locks nobody holds or waits for are dropped on the way.
    fn blob_lock(&self, d: &Digest) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.blob_locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.retain(|_, l| Arc::strong_count(l) > 1);
        locks.entry(d.clone()).or_default().clone()
    }

    /// The settings in force.
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }
}

/// Where pulled images go. Layers are added bottom up; an image is registered last, so a
/// failed pull leaves at most unreferenced layers, which the store collects.
pub trait LayerStore: Send + Sync + 'static {
    /// The image a (tag or digest) reference names, if present.
    fn lookup(&self, reference: &Reference) -> Option<Digest>;
    /// Whether the layer chain `chain` is present.
    fn has_layer(&self, chain: &Digest) -> bool;
    /// Applies the layer blob at `blob` (plain, gzip or zstd tar) on `parent`; its
    /// uncompressed digest must be `diff_id`. Returns the new chain ID.
    fn add_layer(
        &self,
        parent: Option<&Digest>,
        blob: &Path,
        diff_id: &Digest,
    ) -> Result<Digest, DistributionError>;
    /// Registers the image `config` and points `refs` at it; returns its ID and whether any
    /// name moved.
    fn register(
        &self,
        config: &[u8],
        refs: &[Reference],
    ) -> Result<(Digest, bool), DistributionError>;
    /// The config bytes and layer diff IDs of a local image, for a push.
    fn image_for_push(&self, reference: &str) -> Result<(Vec<u8>, Vec<Digest>), DistributionError>;
    /// The uncompressed tar of a local layer.
    fn layer_tar(&self, diff_id: &Digest) -> Result<std::fs::File, DistributionError>;
}

impl LayerStore for wharf_image::ImageService {
    fn lookup(&self, reference: &Reference) -> Option<Digest> {
        self.resolve(&reference.full())
            .ok()
            .and_then(|i| Digest::parse(&i.id).ok())
    }

    fn has_layer(&self, chain: &Digest) -> bool {
        wharf_image::ImageService::has_layer(self, chain)
    }

    fn add_layer(
        &self,
        parent: Option<&Digest>,
        blob: &Path,
        diff_id: &Digest,
    ) -> Result<Digest, DistributionError> {
        let file = std::fs::File::open(blob)
            .map_err(DistributionError::io(format!("open {}", blob.display())))?;
        let reader = std::io::BufReader::with_capacity(1 << 20, file);
        Ok(wharf_image::ImageService::add_layer(
            self,
            parent,
            Box::new(reader),
            diff_id,
        )?)
    }

    fn register(
        &self,
        config: &[u8],
        refs: &[Reference],
    ) -> Result<(Digest, bool), DistributionError> {
        Ok(self.register_pulled(config, refs)?)
    }

    fn image_for_push(&self, reference: &str) -> Result<(Vec<u8>, Vec<Digest>), DistributionError> {
        let (_, config, diff_ids) = wharf_image::ImageService::image_for_push(self, reference)?;
        Ok((config, diff_ids))
    }

    fn layer_tar(&self, diff_id: &Digest) -> Result<std::fs::File, DistributionError> {
        Ok(self.open_layer_tar(diff_id)?)
    }
}
