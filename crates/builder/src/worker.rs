//! What the engine needs from the daemon: images, build containers and commits. The daemon
//! implements [`Worker`] over its container and image services; tests use a fake.

use std::path::PathBuf;

use wharf_image::ContainerConfig;

use crate::BuildError;

/// A local image as a build sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageInfo {
    /// `sha256:<hex>`.
    pub id: String,
    pub config: ContainerConfig,
}

/// How a build container runs: the stage's config with the step's command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSpec {
    /// The full argv; the image's entrypoint does not apply.
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub user: String,
    pub workdir: String,
    /// `default`, `none` or `host`.
    pub network: String,
    /// `host:ip` lines for /etc/hosts.
    pub extra_hosts: Vec<String>,
}

/// Build containers and images. Methods block; the engine calls them from its own threads.
///
/// Containers made by [`Worker::create`] must be recognisable after a crash so the daemon can
/// remove them at start; the engine removes them itself otherwise.
pub trait Worker: Send + Sync {
    /// A local image by reference or id; `None` when there is none.
    fn image(&self, reference: &str) -> Result<Option<ImageInfo>, BuildError>;
    /// Fetches an image that is not local (the distribution seam); its error is the build's.
    fn pull(&self, reference: &str) -> Result<ImageInfo, BuildError>;
    /// Creates (not starts) a build container on `image`; returns its id.
    fn create(&self, image: &str, spec: &RunSpec) -> Result<String, BuildError>;
    /// Mounts the container's root filesystem.
    fn mount(&self, container: &str) -> Result<PathBuf, BuildError>;
    fn unmount(&self, container: &str) -> Result<(), BuildError>;
    /// Starts the container, passes its output to `out` as it comes, returns the exit code.
    fn run(&self, container: &str, out: &mut dyn FnMut(&[u8])) -> Result<i64, BuildError>;
    /// Commits the container's changes as a layer on its image, with `config` and a history
    /// row `created_by`; returns the new image id.
    fn commit(
        &self,
        container: &str,
        config: &ContainerConfig,
        created_by: &str,
    ) -> Result<String, BuildError>;
    /// A new image without a new layer: `parent` (none: an empty image) with `config` and one
    /// history row `created_by`; an empty `created_by` adds no row (FROM scratch's base).
    fn commit_config(
        &self,
        parent: Option<&str>,
        config: &ContainerConfig,
        created_by: &str,
    ) -> Result<String, BuildError>;
    /// Removes a build container (and its layer).
    fn remove(&self, container: &str) -> Result<(), BuildError>;
    /// Points `reference` (`name[:tag]`) at `image`.
    fn tag(&self, image: &str, reference: &str) -> Result<(), BuildError>;
}
