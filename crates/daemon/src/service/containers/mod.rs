//! The containers backend: create, lifecycle through the per-container shim, exit handling
//! with restart policies, removal, inspect/list, logs. How records are kept in line with the
//! host across crashes is written down in [`reconcile`].
//!
//! Locking: a record's `std::sync::Mutex` is held only for short reads/updates, never across
//! an `.await`; verbs that change the lifecycle (start, stop, restart, rm) take the container's
//! async op lock so they do not interleave.

pub mod archive;
pub mod attach;
pub mod create;
pub mod health;
pub mod inspect;
pub mod lifecycle;
pub mod links;
pub mod logs;
mod mounts;
pub mod network;
pub mod reconcile;
pub mod shim;
pub mod spec;
pub mod stats;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::watch;
use wharf_errdefs::{Classify, ErrorKind};
use wharf_image::ImageService;

use crate::config::Config;
use crate::events::Events;
use crate::server::error::ApiError;
use crate::service::volumes::Volumes;
use crate::state::{Container, Handle, Store};

use self::shim::Shim;

/// Helper binaries the daemon runs or mounts.
#[derive(Debug, Clone)]
pub struct Helpers {
    /// `wharf-shim`.
    pub shim: PathBuf,
    /// `wharf-init` for `--init`, when found.
    pub init: Option<PathBuf>,
    /// Directory searched first for runtimes given by bare name (where wharfd lives).
    pub search_dir: Option<PathBuf>,
}

/// What waiters see change: exits and removal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lifecycle {
    /// Exits so far (waiters for "next-exit" wait for this to grow).
    pub exits: u64,
    /// The last exit code.
    pub exit_code: i64,
    /// The container is gone.
    pub removed: bool,
}

/// The containers backend.
pub struct ContainerService {
    /// The records.
    pub store: Store,
    images: Arc<ImageService>,
    volumes: Arc<Volumes>,
    events: Arc<Events>,
    config: Arc<RwLock<Config>>,
    network: Arc<wharf_network::NetworkService>,
    exec_root: PathBuf,
    journal_root: PathBuf,
    helpers: Helpers,
    lifecycle: Mutex<HashMap<String, watch::Sender<Lifecycle>>>,
    ops: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    pending_attach: Mutex<HashMap<String, Vec<attach::PendingAttach>>>,
    execs: Mutex<HashMap<String, attach::ExecRecord>>,
    /// Stop senders of the running health monitors.
    health: Mutex<HashMap<String, watch::Sender<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs blocking image/storage work off the async thread.
pub async fn blocking<T: Send + 'static, E: Classify + std::fmt::Display + Send + 'static>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| ApiError::from_err(&e)),
        Err(e) => Err(ApiError::internal(format!("background task failed: {e}"))),
    }
}

impl ContainerService {
    /// Builds the backend; `exec_root` holds shim dirs.
    pub fn new(
        store: Store,
        images: Arc<ImageService>,
        volumes: Arc<Volumes>,
        events: Arc<Events>,
        config: Arc<RwLock<Config>>,
        exec_root: &Path,
        helpers: Helpers,
        network: Arc<wharf_network::NetworkService>,
    ) -> ContainerService {
        let journal_root = store.root().with_file_name("journal");
        ContainerService {
            journal_root,
            store,
            images,
            volumes,
            events,
            config,
            network,
            exec_root: exec_root.to_path_buf(),
            helpers,
            lifecycle: Mutex::new(HashMap::new()),
            ops: Mutex::new(HashMap::new()),
            pending_attach: Mutex::new(HashMap::new()),
            execs: Mutex::new(HashMap::new()),
            health: Mutex::new(HashMap::new()),
        }
    }

    fn config(&self) -> Config {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The image service (shared with the images backend).
    pub fn images(&self) -> &Arc<ImageService> {
        &self.images
    }

    /// The volume backend (shared with the volumes router).
    pub fn volumes(&self) -> &Arc<Volumes> {
        &self.volumes
    }

    /// Looks a container up by id, name or id prefix.
    pub fn get(&self, key: &str) -> Result<Handle, ApiError> {
        self.store.get(key).map_err(|e| ApiError::from_err(&e))
    }

    /// A copy of the record.
    pub fn snapshot(&self, key: &str) -> Result<Container, ApiError> {
        Ok(Store::lock(&self.get(key)?).clone())
    }

    /// Applies `f` to the record and persists it.
    fn update<R>(&self, h: &Handle, f: impl FnOnce(&mut Container) -> R) -> Result<R, ApiError> {
        let mut c = Store::lock(h);
        let r = f(&mut c);
        self.store.persist(&c).map_err(|e| ApiError::from_err(&e))?;
        Ok(r)
    }

    /// The shim directory (also the OCI bundle).
    pub fn shim_dir(&self, id: &str) -> PathBuf {
        self.exec_root.join("containers").join(id)
    }

    fn shim(&self, id: &str) -> Shim {
        Shim::new(&self.shim_dir(id))
    }

    /// The json-file log of a container.
    pub fn log_path(&self, id: &str) -> PathBuf {
        self.store.dir(id).join(format!("{id}-json.log"))
    }

    fn op_lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.ops).entry(id.to_string()).or_default().clone()
    }

    fn lifecycle_tx(&self, id: &str) -> watch::Sender<Lifecycle> {
        lock(&self.lifecycle)
            .entry(id.to_string())
            .or_insert_with(|| watch::channel(Lifecycle::default()).0)
            .clone()
    }

    /// Subscribes to a container's exits and removal.
    pub fn watch(&self, id: &str) -> watch::Receiver<Lifecycle> {
        self.lifecycle_tx(id).subscribe()
    }

    /// Publishes a container event with Docker's attributes (name, image, labels).
    pub fn emit(&self, c: &Container, action: &str, extra: &[(&str, String)]) {
        let mut attrs: BTreeMap<String, String> = c.config.labels.clone().unwrap_or_default();
        attrs.insert("name".into(), c.short_name().to_string());
        attrs.insert("image".into(), c.config.image.clone());
        for (k, v) in extra {
            attrs.insert(k.to_string(), v.clone());
        }
        self.events.publish("container", action, &c.id, attrs);
    }

    /// Resolves a runtime name to (binary, extra args).
    fn runtime(&self, name: &str) -> Result<(PathBuf, Vec<String>), ApiError> {
        let cfg = self.config();
        let entry = cfg
            .runtimes
            .get(name)
            .ok_or_else(|| ApiError::invalid(format!("unknown or invalid runtime name: {name}")))?;
        let p = Path::new(&entry.path);
        let path = if p.is_absolute() {
            p.to_path_buf()
        } else {
            find_binary(&entry.path, self.helpers.search_dir.as_deref())
                .unwrap_or_else(|| p.to_path_buf())
        };
        Ok((path, entry.runtime_args.clone()))
    }
}

/// Finds `name` in `first_dir`, then on `PATH`.
pub fn find_binary(name: &str, first_dir: Option<&Path>) -> Option<PathBuf> {
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    first_dir
        .map(Path::to_path_buf)
        .into_iter()
        .chain(std::env::split_paths(&path_var))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Docker's "is not running" conflict.
pub fn not_running(id: &str) -> ApiError {
    ApiError::new(
        ErrorKind::Conflict,
        format!("Container {id} is not running"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binaries_are_found_in_dir_then_path() {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::write(d.path().join("wharf-test-bin"), b"").expect("w");
        assert_eq!(
            find_binary("wharf-test-bin", Some(d.path())),
            Some(d.path().join("wharf-test-bin"))
        );
        assert_eq!(find_binary("wharf-no-such-binary", Some(d.path())), None);
        assert!(find_binary("sh", None).is_some());
    }
}
