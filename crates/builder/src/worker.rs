//! What the engine needs from the daemon: images, build containers and commits. The daemon
//! implements [`Worker`] over its container and image services; tests use a fake.

use std::path::PathBuf;

use wharf_api_types::container::Resources;
use wharf_image::{ContainerConfig, HistoryItem};

use crate::BuildError;

/// A local image as a build sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageInfo {
    /// `sha256:<hex>`.
    pub id: String,
    pub config: ContainerConfig,
    /// History rows, oldest first (`--cache-from` matches steps against them).
    pub history: Vec<HistoryItem>,
    /// Layer diff ids, bottom first.
    pub diff_ids: Vec<String>,
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
    /// Read-only binds (`host:target:ro`) of context paths or other images' files.
    pub binds: Vec<String>,
    /// `RUN --mount=type=tmpfs`: target and size in bytes.
    pub tmpfs: Vec<(String, u64)>,
    /// `RUN --mount=type=secret` files.
    pub secrets: Vec<SecretMount>,
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
    /// `from=`: the stage or image whose `source` path a new cache starts as a copy of.
    pub from: Option<String>,
    pub source: String,
    /// Where `from`'s `source` is on the host while the step runs (set by the engine).
    pub seed: Option<PathBuf>,
}

/// A secret file mounted into a RUN (`--mount=type=secret`); never part of a layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretMount {
    pub target: String,
    pub data: Vec<u8>,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// One `RUN --mount` as written, before the engine resolves sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSpec {
    Cache(CacheMount),
    /// `type=bind` (the default type): `source` under the context or `from`'s root;
    /// with `rw` the step may write to it, and what it writes is thrown away.
    Bind {
        target: String,
        source: String,
        from: Option<String>,
        rw: bool,
    },
    /// `type=tmpfs`, `size` in bytes (0: the kernel's default).
    Tmpfs {
        target: String,
        size: u64,
    },
    /// `type=secret`: `id` (default: the target's file name) from the build's secrets, as a
    /// file at `target` (none when only `env` is given) and/or the variable `env`.
    Secret {
        id: String,
        target: String,
        env: Option<String>,
        required: bool,
        uid: u32,
        gid: u32,
        mode: u32,
    },
}

impl MountSpec {
    /// Parses a `--mount` value as BuildKit's Dockerfile frontend does.
    pub fn parse(spec: &str) -> Result<MountSpec, String> {
        let mut kind = "bind".to_string();
        let (mut target, mut id, mut source, mut from) = (String::new(), None, None, None);
        let mut env = None;
        let (mut readonly, mut rw, mut required) = (None, false, false);
        let (mut uid, mut gid, mut mode, mut size) = (None, None, None, 0u64);
        for field in spec.split(',') {
            let (k, v) = field.split_once('=').unwrap_or((field, ""));
            let flag = v.is_empty() || v == "true";
            let num = |v: &str, radix| {
                u32::from_str_radix(v, radix).map_err(|_| format!("invalid value for {k}: {v}"))
            };
            match k.to_ascii_lowercase().as_str() {
                "type" => kind = v.to_string(),
                "target" | "dst" | "destination" => target = v.to_string(),
                "id" => id = Some(v.to_string()),
                "source" | "src" => source = Some(v.to_string()),
                "from" => from = Some(v.to_string()),
                "env" => env = Some(v.to_string()),
                "ro" | "readonly" => readonly = Some(flag),
                "rw" | "readwrite" => rw = flag,
                "required" => required = flag,
                "uid" => uid = Some(num(v, 10)?),
                "gid" => gid = Some(num(v, 10)?),
                "mode" => mode = Some(num(v, 8)?),
                "size" => {
                    size = parse_size(v).ok_or_else(|| format!("invalid value for size: {v}"))?
                }
                "sharing" if matches!(v, "shared" | "private" | "locked") => {}
                other => return Err(format!("unexpected key '{other}' in '{field}'")),
            }
        }
        let readonly = readonly.unwrap_or(false) || (kind == "bind" && !rw);
        if kind == "secret" {
            let id = id.unwrap_or_else(|| {
                target
                    .rsplit('/')
                    .next()
                    .filter(|n| !n.is_empty())
                    .unwrap_or_default()
                    .to_string()
            });
            if id.is_empty() {
                return Err("one of id or target must be set for a secret mount".into());
            }
            if target.is_empty() && env.is_none() {
                target = format!("/run/secrets/{id}");
            }
            return Ok(MountSpec::Secret {
                id,
                target,
                env,
                required,
                uid: uid.unwrap_or(0),
                gid: gid.unwrap_or(0),
                mode: mode.unwrap_or(0o400),
            });
        }
        if !target.starts_with('/') {
            return Err("mount destination must be an absolute path".into());
        }
        if env.is_some() {
            return Err(format!("unexpected key 'env' for a {kind} mount"));
        }
        if kind == "cache" && source.is_some() && from.is_none() {
            return Err("RUN --mount=type=cache,source= needs from=".into());
        }
        if kind == "tmpfs" && (from.is_some() || source.is_some()) {
            return Err("unexpected key 'from' or 'source' for a tmpfs mount".into());
        }
        match kind.as_str() {
            "cache" => {
                let id = id
                    .filter(|i| !i.is_empty())
                    .unwrap_or_else(|| target.clone());
                if id.len() > 100 {
                    return Err("cache mount id is longer than 100 bytes".into());
                }
                Ok(MountSpec::Cache(CacheMount {
                    id,
                    target,
                    readonly,
                    uid: uid.unwrap_or(0),
                    gid: gid.unwrap_or(0),
                    mode: mode.unwrap_or(0o755),
                    from,
                    source: source.clone().unwrap_or_default(),
                    seed: None,
                }))
            }
            "bind" => Ok(MountSpec::Bind {
                target,
                source: source.unwrap_or_default(),
                from,
                rw: !readonly,
            }),
            "tmpfs" => Ok(MountSpec::Tmpfs { target, size }),
            "ssh" => Err("RUN --mount=type=ssh is not supported by Wharf's builder yet".into()),
            other => Err(format!("unsupported mount type \"{other}\"")),
        }
    }
}

/// Go's `units.RAMInBytes` subset BuildKit accepts for tmpfs size: `64m`, `1g`, bytes.
fn parse_size(v: &str) -> Option<u64> {
    let v = v.trim().to_ascii_lowercase();
    let v = v.strip_suffix('b').unwrap_or(&v);
    let (num, mult) = match v.char_indices().last()? {
        (i, 'k') => (&v[..i], 1u64 << 10),
        (i, 'm') => (&v[..i], 1 << 20),
        (i, 'g') => (&v[..i], 1 << 30),
        _ => (v, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
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
    /// A step restored from `--cache-from` image `source`: `parent` plus `source`'s history
    /// row `index` and its layer, with `config`; returns the new image id.
    fn restore_step(
        &self,
        parent: Option<&str>,
        source: &str,
        index: usize,
        config: &ContainerConfig,
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
    fn mount_specs() {
        let cache = |s| match MountSpec::parse(s) {
            Ok(MountSpec::Cache(c)) => c,
            other => panic!("{s}: {other:?}"),
        };
        let m = cache("type=cache,target=/root/.cache,uid=1,mode=0700");
        assert_eq!(
            (m.id.as_str(), m.uid, m.mode, m.readonly),
            ("/root/.cache", 1, 0o700, false)
        );
        let m = cache("type=cache,id=x,dst=/c,ro");
        assert_eq!(
            (m.id.as_str(), m.target.as_str(), m.readonly),
            ("x", "/c", true)
        );
        assert_eq!(
            MountSpec::parse("target=/x,source=a,from=st"),
            Ok(MountSpec::Bind {
                target: "/x".into(),
                source: "a".into(),
                from: Some("st".into()),
                rw: false,
            }),
            "bind is the default type"
        );
        assert!(matches!(
            MountSpec::parse("target=/x,rw"),
            Ok(MountSpec::Bind { rw: true, .. })
        ));
        assert_eq!(
            MountSpec::parse("type=tmpfs,target=/t,size=64m"),
            Ok(MountSpec::Tmpfs {
                target: "/t".into(),
                size: 64 << 20
            })
        );
        match MountSpec::parse("type=secret,id=tok") {
            Ok(MountSpec::Secret {
                id, target, mode, ..
            }) => assert_eq!(
                (id.as_str(), target.as_str(), mode),
                ("tok", "/run/secrets/tok", 0o400)
            ),
            other => panic!("{other:?}"),
        }
        assert!(MountSpec::parse("type=secret").is_err());
        assert!(matches!(
            MountSpec::parse("type=secret,id=t,env=TOK"),
            Ok(MountSpec::Secret { target, env: Some(e), .. }) if target.is_empty() && e == "TOK"
        ));
        assert_eq!(
            cache("type=cache,target=/c,from=st,source=/s")
                .from
                .as_deref(),
            Some("st")
        );
        assert!(MountSpec::parse("type=cache,target=/c,source=/s").is_err());
        assert!(MountSpec::parse("type=tmpfs,target=/c,source=x").is_err());
        assert!(MountSpec::parse("type=ssh,target=/x").is_err());
        assert!(MountSpec::parse("type=cache,target=rel").is_err());
        assert!(MountSpec::parse("type=cache,target=/x,bogus=1").is_err());
    }
}
