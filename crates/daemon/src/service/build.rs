//! The builder's backend: [`DaemonWorker`] lends `wharf_builder` the daemon's containers and
//! images, and [`BuildService`] owns the cache, the build scratch space and cancellation.
//!
//! Build containers carry the label [`BUILD_LABEL`] so that a daemon killed mid-build removes
//! them at its next start ([`BuildService::reconcile`]); half-committed layers are dropped by
//! the image store's own recovery.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use wharf_api_types::container::{CreateRequest, HostConfig};
use wharf_api_types::strslice::StrSlice;
use wharf_builder::{BuildError, CacheMount, CacheStore, ImageInfo, RunSpec, SecretMount, Worker};
use wharf_errdefs::{Classify, ErrorKind};
use wharf_image::{CommitOptions, ImageService};

use super::containers::lifecycle::WaitCondition;
use super::containers::logs::LogOptions;
use super::containers::ContainerService;
use crate::server::error::ApiError;

/// Label on every build container (value: the build id).
pub const BUILD_LABEL: &str = "com.wharf.build";

fn werr(e: ApiError) -> BuildError {
    BuildError::Worker {
        kind: e.kind,
        message: e.message,
    }
}

fn ierr(e: wharf_image::ImageError) -> BuildError {
    BuildError::Worker {
        kind: e.kind(),
        message: e.to_string(),
    }
}

/// The daemon's side of a build. Its methods block on the daemon's runtime, so the engine
/// must run on a blocking thread.
pub struct DaemonWorker {
    containers: Arc<ContainerService>,
    registry: Arc<wharf_distribution::Registry>,
    rt: tokio::runtime::Handle,
    build_id: String,
    /// Where `RUN --mount=type=cache` directories live, one per cache id.
    mounts: PathBuf,
    /// This build's secret files (in the scratch space, removed when the build ends).
    secrets: PathBuf,
}

impl DaemonWorker {
    fn images(&self) -> &Arc<ImageService> {
        self.containers.images()
    }

    /// `host:target[:ro]` for a cache mount, making its directory on first use.
    fn cache_bind(&self, m: &CacheMount) -> Result<String, BuildError> {
        let dir = self.mounts.join(hex::encode(m.id.as_bytes()));
        if let Some(seed) = m.seed.as_ref().filter(|_| !dir.exists()) {
            // A new cache from `from=`: copied aside, then renamed in, so a crash mid-copy
            // leaves no half-seeded cache.
            let tmp = dir.with_extension("seed");
            let _ = std::fs::remove_dir_all(&tmp);
            std::fs::create_dir_all(&self.mounts).map_err(|source| BuildError::Io {
                context: format!("create {}", self.mounts.display()),
                source,
            })?;
            wharf_builder::copy_tree(seed, &tmp)?;
            std::fs::rename(&tmp, &dir).map_err(|source| BuildError::Io {
                context: format!("create cache mount {}", dir.display()),
                source,
            })?;
        }
        if !dir.exists() {
            let io = |source| BuildError::Io {
                context: format!("create cache mount {}", dir.display()),
                source,
            };
            std::fs::create_dir_all(&dir).map_err(io)?;
            std::os::unix::fs::chown(&dir, Some(m.uid), Some(m.gid)).map_err(io)?;
            std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(m.mode))
                .map_err(io)?;
        }
        let ro = if m.readonly { ":ro" } else { "" };
        Ok(format!("{}:{}{ro}", dir.display(), m.target))
    }

    /// `host:target:ro` for a secret, written to a private file of the build's.
    fn secret_bind(&self, n: usize, s: &SecretMount) -> Result<String, BuildError> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let path = self.secrets.join(n.to_string());
        let io = |source| BuildError::Io {
            context: format!("write secret {}", path.display()),
            source,
        };
        std::fs::create_dir_all(&self.secrets).map_err(io)?;
        std::fs::set_permissions(&self.secrets, std::fs::Permissions::from_mode(0o700))
            .map_err(io)?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        std::io::Write::write_all(&mut f, &s.data).map_err(io)?;
        std::os::unix::fs::fchown(&f, Some(s.uid), Some(s.gid)).map_err(io)?;
        f.set_permissions(std::fs::Permissions::from_mode(s.mode))
            .map_err(io)?;
        Ok(format!("{}:{}:ro", path.display(), s.target))
    }
}

impl Worker for DaemonWorker {
    fn image(&self, reference: &str) -> Result<Option<ImageInfo>, BuildError> {
        match self.images().resolve(reference) {
            Ok(i) => Ok(Some(ImageInfo {
                id: i.id,
                config: i.config,
                history: i.history,
                diff_ids: i.root_fs.layers,
            })),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ierr(e)),
        }
    }

    fn pull(&self, reference: &str) -> Result<ImageInfo, BuildError> {
        let r = wharf_image::Reference::parse(reference).map_err(|e| BuildError::Worker {
            kind: ErrorKind::InvalidArgument,
            message: e.to_string(),
        })?;
        let store: Arc<dyn wharf_distribution::LayerStore> = self.images().clone();
        self.rt
            .block_on(async {
                let resolved = self.registry.resolve(&r, None, None).await?;
                let silent = wharf_distribution::Reporter::silent();
                self.registry.pull(store, resolved, &silent).await
            })
            .map_err(|e| BuildError::Worker {
                kind: e.kind(),
                message: e.to_string(),
            })?;
        self.image(reference)?.ok_or_else(|| BuildError::Worker {
            kind: ErrorKind::NotFound,
            message: format!("No such image: {reference}"),
        })
    }

    fn create(&self, image: &str, spec: &RunSpec) -> Result<String, BuildError> {
        let mut req = CreateRequest::default();
        req.config.image = image.to_string();
        req.config.cmd = Some(StrSlice(spec.cmd.clone()));
        req.config.entrypoint = Some(StrSlice(Vec::new()));
        req.config.env = Some(spec.env.clone());
        req.config.user = spec.user.clone();
        req.config.working_dir = spec.workdir.clone();
        req.config.labels = Some(
            [(BUILD_LABEL.to_string(), self.build_id.clone())]
                .into_iter()
                .collect(),
        );
        req.config.healthcheck = Some(wharf_api_types::container::HealthConfig {
            test: Some(vec!["NONE".to_string()]),
            ..Default::default()
        });
        let mut binds = spec
            .cache_mounts
            .iter()
            .map(|m| self.cache_bind(m))
            .collect::<Result<Vec<_>, _>>()?;
        binds.extend(spec.binds.iter().cloned());
        for (n, s) in spec.secrets.iter().enumerate() {
            binds.push(self.secret_bind(n, s)?);
        }
        let tmpfs: std::collections::BTreeMap<String, String> = spec
            .tmpfs
            .iter()
            .map(|(t, size)| {
                let opts = if *size > 0 {
                    format!("size={size}")
                } else {
                    String::new()
                };
                (t.clone(), opts)
            })
            .collect();
        req.host_config = Some(HostConfig {
            binds: (!binds.is_empty()).then_some(binds),
            tmpfs: (!tmpfs.is_empty()).then_some(tmpfs),
            network_mode: spec.network.clone(),
            extra_hosts: (!spec.extra_hosts.is_empty()).then(|| spec.extra_hosts.clone()),
            resources: spec.resources.clone(),
            shm_size: spec.shm_size,
            ..Default::default()
        });
        let cs = self.containers.clone();
        let (id, _) = self
            .rt
            .block_on(async move { cs.create(None, req).await })
            .map_err(werr)?;
        Ok(id)
    }

    fn mount(&self, container: &str) -> Result<PathBuf, BuildError> {
        self.images().mount_rw_layer(container).map_err(ierr)
    }

    fn unmount(&self, container: &str) -> Result<(), BuildError> {
        self.images().unmount_rw_layer(container).map_err(ierr)
    }

    fn run(&self, container: &str, out: &mut dyn FnMut(&[u8])) -> Result<i64, BuildError> {
        let cs = self.containers.clone();
        let id = container.to_string();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(64);
        self.rt
            .block_on(async {
                cs.start(&id).await?;
                let q = crate::server::http::Query::parse(Some("stdout=1&stderr=1&follow=1"));
                let opts = LogOptions::parse(&q)?;
                cs.logs(&id, opts, tx)
            })
            .map_err(werr)?;
        while let Some(frame) = rx.blocking_recv() {
            // Multiplexed frames: 8-byte header, then the payload.
            let mut b = &frame[..];
            while b.len() >= 8 {
                let n = u32::from_be_bytes([b[4], b[5], b[6], b[7]]) as usize;
                let end = (8 + n).min(b.len());
                out(&b[8..end]);
                b = &b[end..];
            }
        }
        let cs = self.containers.clone();
        let w = self
            .rt
            .block_on(async move { cs.wait(&id, WaitCondition::NotRunning).await })
            .map_err(werr)?;
        Ok(w.status_code)
    }

    fn commit(
        &self,
        container: &str,
        config: &wharf_image::ContainerConfig,
        created_by: &str,
        author: Option<&str>,
    ) -> Result<String, BuildError> {
        let opts = CommitOptions {
            config: Some(config.clone()),
            created_by: Some(created_by.to_string()),
            author: author.map(str::to_string),
            ..Default::default()
        };
        self.images()
            .commit(container, opts)
            .map(|i| i.id)
            .map_err(ierr)
    }

    fn commit_config(
        &self,
        parent: Option<&str>,
        config: &wharf_image::ContainerConfig,
        created_by: &str,
        author: Option<&str>,
    ) -> Result<String, BuildError> {
        self.images()
            .commit_config(parent, config.clone(), created_by, author)
            .map(|i| i.id)
            .map_err(ierr)
    }

    fn restore_step(
        &self,
        parent: Option<&str>,
        source: &str,
        index: usize,
        config: &wharf_image::ContainerConfig,
    ) -> Result<String, BuildError> {
        self.images()
            .restore_step(parent, source, index, config.clone())
            .map(|i| i.id)
            .map_err(ierr)
    }

    fn remove(&self, container: &str) -> Result<(), BuildError> {
        let cs = self.containers.clone();
        let id = container.to_string();
        self.rt
            .block_on(async move { cs.remove(&id, true).await })
            .map_err(werr)
    }

    fn tag(&self, image: &str, reference: &str) -> Result<(), BuildError> {
        let (repo, tag) = match reference.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r, Some(t)),
            _ => (reference, None),
        };
        self.images().tag(image, repo, tag).map_err(ierr)
    }
}

/// Builds, their scratch space and the cache.
pub struct BuildService {
    containers: Arc<ContainerService>,
    registry: Arc<wharf_distribution::Registry>,
    cache: CacheStore,
    tmp: PathBuf,
    mounts: PathBuf,
    /// Cancel flags of running builds, by build id.
    active: Mutex<HashMap<String, Arc<AtomicBool>>>,
}

impl BuildService {
    /// Opens the cache under `root` (`<data-root>/builder`) and empties the scratch space a
    /// previous daemon may have left.
    pub fn open(
        root: &Path,
        containers: Arc<ContainerService>,
        registry: Arc<wharf_distribution::Registry>,
    ) -> Result<BuildService, BuildError> {
        let tmp = root.join("tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|source| BuildError::Io {
            context: format!("create {}", tmp.display()),
            source,
        })?;
        Ok(BuildService {
            containers,
            registry,
            cache: CacheStore::open(&root.join("cache"))?,
            tmp,
            mounts: root.join("mounts"),
            active: Mutex::new(HashMap::new()),
        })
    }

    /// The scratch directory for one build.
    pub fn scratch(&self, build_id: &str) -> PathBuf {
        self.tmp.join(build_id)
    }

    /// Registers a build; its flag turns true on cancel.
    pub fn start(&self, build_id: &str) -> Arc<AtomicBool> {
        let flag = Arc::new(AtomicBool::new(false));
        self.lock().insert(build_id.to_string(), flag.clone());
        flag
    }

    pub fn finish(&self, build_id: &str) {
        self.lock().remove(build_id);
        let _ = std::fs::remove_dir_all(self.secrets_dir(build_id));
    }

    fn secrets_dir(&self, build_id: &str) -> PathBuf {
        self.tmp.join(format!("{build_id}.secrets"))
    }

    /// `POST /build/cancel?id=`: true when such a build was running.
    pub fn cancel(&self, build_id: &str) -> bool {
        match self.lock().get(build_id) {
            Some(f) => {
                f.store(true, std::sync::atomic::Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<AtomicBool>>> {
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn worker(&self, build_id: &str) -> DaemonWorker {
        DaemonWorker {
            containers: self.containers.clone(),
            registry: self.registry.clone(),
            rt: tokio::runtime::Handle::current(),
            build_id: build_id.to_string(),
            mounts: self.mounts.clone(),
            secrets: self.secrets_dir(build_id),
        }
    }

    pub fn cache(&self) -> &CacheStore {
        &self.cache
    }

    /// `/system/df` `BuildCache` rows: one per cached step. Their bytes live in image
    /// layers, which the image rows already count, so each row is shared and sized 0.
    pub fn df_rows(&self) -> Vec<serde_json::Value> {
        self.cache
            .entries()
            .into_iter()
            .map(|(key, image)| {
                let created = self
                    .cache
                    .created(&key)
                    .map(|t| chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339());
                serde_json::json!({
                    "ID": key,
                    "Parent": "",
                    "Type": "regular",
                    "Description": format!("build step result {image}"),
                    "InUse": false,
                    "Shared": true,
                    "Size": 0,
                    "CreatedAt": created,
                    "LastUsedAt": null,
                    "UsageCount": 0,
                })
            })
            .collect()
    }

    /// `builder prune`: forgets every cache record; returns their ids.
    pub fn prune(&self) -> Result<Vec<String>, BuildError> {
        let mut ids = Vec::new();
        for (k, _) in self.cache.entries() {
            self.cache.remove(&k)?;
            ids.push(k);
        }
        // Cache mounts are build cache too; none is in use while no build runs.
        if self.lock().is_empty() {
            let _ = std::fs::remove_dir_all(&self.mounts);
        }
        Ok(ids)
    }

    /// Removes build containers a killed daemon left behind.
    pub async fn reconcile(&self) {
        let leftovers: Vec<String> = self
            .containers
            .store
            .all()
            .iter()
            .filter_map(|h| {
                let c = crate::state::Store::lock(h);
                c.config
                    .labels
                    .as_ref()
                    .is_some_and(|l| l.contains_key(BUILD_LABEL))
                    .then(|| c.id.clone())
            })
            .collect();
        for id in leftovers {
            tracing::info!(container = %id, "removing a build container left by an interrupted build");
            if let Err(e) = self.containers.remove(&id, true).await {
                tracing::warn!(container = %id, "removing build container: {e}");
            }
        }
    }
}
