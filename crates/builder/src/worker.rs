//! What the engine needs from the daemon: images, build containers and commits. The daemon
//! implements [`Worker`] over its container and image services; tests use a fake.

use std::path::PathBuf;

use wharf_api_types::container::Resources;
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
#[derive(Debug, Clone, Default, PartialEq)]
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
    /// `RUN --mount=type=cache` directories, kept by the worker across builds.
    pub cache_mounts: Vec<CacheMount>,
    /// The build's resource limits (cgroup settings and ulimits).
    pub resources: Resources,
    /// /dev/shm size in bytes; 0 for the default.
    pub shm_size: i64,
}

/// A persistent cache directory mounted into a RUN (`--mount=type=cache`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheMount {
    /// Which cache (default: the target path); the same id shares one directory.
    pub id: String,
    pub target: String,
    pub readonly: bool,
    /// Owner and mode the directory gets when first made.
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

impl CacheMount {
    /// Parses a `--mount` value of type `cache`; other types are refused.
    pub fn parse(spec: &str) -> Result<CacheMount, String> {
        let mut m = CacheMount {
            mode: 0o755,
            ..Default::default()
        };
        let mut kind = String::new();
        for field in spec.split(',') {
            let (k, v) = field.split_once('=').unwrap_or((field, ""));
            let num = |v: &str, radix| {
                u32::from_str_radix(v, radix).map_err(|_| format!("invalid value for {k}: {v}"))
            };
            match k.to_ascii_lowercase().as_str() {
                "type" => kind = v.to_string(),
                "target" | "dst" | "destination" => m.target = v.to_string(),
                "id" => m.id = v.to_string(),
                "ro" | "readonly" => m.readonly = v.is_empty() || v == "true",
                "rw" | "readwrite" => m.readonly = !(v.is_empty() || v == "true"),
                "uid" => m.uid = num(v, 10)?,
                "gid" => m.gid = num(v, 10)?,
                "mode" => m.mode = num(v, 8)?,
                "sharing" if matches!(v, "shared" | "private" | "locked") => {}
                other => return Err(format!("unexpected key '{other}' in '{field}'")),
            }
        }
        if kind != "cache" {
            return Err(format!(
                "RUN --mount=type={} is not supported by Wharf's builder yet (only type=cache)",
                if kind.is_empty() { "bind" } else { &kind }
            ));
        }
        if !m.target.starts_with('/') {
            return Err("mount destination must be an absolute path".into());
        }
        if m.id.is_empty() {
            m.id = m.target.clone();
        }
        if m.id.len() > 100 {
            return Err("cache mount id is longer than 100 bytes".into());
        }
        Ok(m)
    }
}

/// Build containers and images. Methods block; the engine calls them from its own threads.
///
/// Containers made by [`Worker::create`] must be recognisable after a crash so the daemon can
/// remove them at start; the engine removes them itself otherwise.
pub trait Worker: Send + Sync {
    /// A local image by reference or id; `None` when there is none.
    fn image(&self, reference: &str) -> Result<Option<ImageInfo>, BuildError>;
    /// Pulls `reference` from its registry, also when a local image has that name (FROM of an
    /// image that is not local, and every FROM with `--pull`); its error is the build's.
    fn pull(&self, reference: &str) -> Result<ImageInfo, BuildError>;
    /// Creates (not starts) a build container on `image`; returns its id.
    fn create(&self, image: &str, spec: &RunSpec) -> Result<String, BuildError>;
    /// Mounts the container's root filesystem.
    fn mount(&self, container: &str) -> Result<PathBuf, BuildError>;
    fn unmount(&self, container: &str) -> Result<(), BuildError>;
    /// Starts the container, passes its output to `out` as it comes, returns the exit code.
    fn run(&self, container: &str, out: &mut dyn FnMut(&[u8])) -> Result<i64, BuildError>;
    /// Commits the container's changes as a layer on its image, with `config`, a history
    /// row `created_by` and the image's `author` (MAINTAINER); returns the new image id.
    fn commit(
        &self,
        container: &str,
        config: &ContainerConfig,
        created_by: &str,
        author: Option<&str>,
    ) -> Result<String, BuildError>;
    /// A new image without a new layer: `parent` (none: an empty image) with `config` and one
    /// history row `created_by`; an empty `created_by` adds no row (FROM scratch's base).
    fn commit_config(
        &self,
        parent: Option<&str>,
        config: &ContainerConfig,
        created_by: &str,
        author: Option<&str>,
    ) -> Result<String, BuildError>;
    /// Removes a build container (and its layer).
    fn remove(&self, container: &str) -> Result<(), BuildError>;
    /// Points `reference` (`name[:tag]`) at `image`.
    fn tag(&self, image: &str, reference: &str) -> Result<(), BuildError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_mount_specs() {
        let m = CacheMount::parse("type=cache,target=/root/.cache,uid=1,mode=0700").expect("ok");
        assert_eq!(
            (m.id.as_str(), m.uid, m.mode, m.readonly),
            ("/root/.cache", 1, 0o700, false)
        );
        let m = CacheMount::parse("type=cache,id=x,dst=/c,ro").expect("ok");
        assert_eq!(
            (m.id.as_str(), m.target.as_str(), m.readonly),
            ("x", "/c", true)
        );
        assert!(CacheMount::parse("type=secret,id=s").is_err());
        assert!(
            CacheMount::parse("target=/x").is_err(),
            "bind is the default type"
        );
        assert!(CacheMount::parse("type=cache,target=rel").is_err());
        assert!(CacheMount::parse("type=cache,target=/x,bogus=1").is_err());
    }
}
