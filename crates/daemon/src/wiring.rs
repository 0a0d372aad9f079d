//! The composition root: builds every service from the [`Config`] with explicit choices, and
//! owns the daemon's lifetime (listeners, signals, shutdown).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use tokio::sync::watch;

use crate::config::{Config, ConfigError};
use crate::events::Events;
use crate::server::listen;
use crate::service::containers::{find_binary, ContainerService, Helpers};
use crate::service::system::HostInfo;
use crate::service::volumes::Volumes;
use crate::state::{Status, Store};

/// Start-up failures.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listener.
    #[error(transparent)]
    Listen(#[from] listen::ListenError),
    /// State.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// The storage driver.
    #[error(transparent)]
    Storage(#[from] wharf_storage::StorageError),
    /// The image store.
    #[error(transparent)]
    Image(#[from] wharf_image::ImageError),
    /// The volume store.
    #[error(transparent)]
    Volume(#[from] wharf_volume::VolumeError),
    /// The build cache.
    #[error(transparent)]
    Build(#[from] wharf_builder::BuildError),
    /// Networking.
    #[error("network: {0}")]
    Network(#[from] wharf_network::NetworkError),
    /// A helper binary is missing.
    #[error("{0} not found beside wharfd or on PATH")]
    MissingHelper(&'static str),
    /// Filesystem set-up.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The running daemon: every service, shared by all connections.
pub struct Daemon {
    config: Arc<RwLock<Config>>,
    /// Stable engine id (`/info` ID).
    pub id: String,
    /// The event bus.
    pub events: Arc<Events>,
    /// Host facts.
    pub host: HostInfo,
    /// Containers (and, through it, the image store).
    pub containers: Arc<ContainerService>,
    /// Dockerfile builds and their cache.
    pub builds: Arc<crate::service::build::BuildService>,
    /// The registry client (pull), with its token cache.
    pub registry: Arc<wharf_distribution::Registry>,
}

impl Daemon {
    /// A snapshot of the current configuration.
    pub fn config(&self) -> Config {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether experimental features are on.
    pub fn experimental(&self) -> bool {
        self.config.read().map(|c| c.experimental).unwrap_or(false)
    }

    /// [running, paused, stopped] container counts.
    pub fn container_counts(&self) -> [i64; 3] {
        let mut n = [0; 3];
        for h in self.containers.store.all() {
            match Store::lock(&h).state.status {
                Status::Running | Status::Restarting => n[0] += 1,
                Status::Paused => n[1] += 1,
                _ => n[2] += 1,
            }
        }
        n
    }

    /// SIGHUP: re-reads the config file and applies what can change at run time.
    pub fn reload(&self, flags: &crate::config::Flags) -> Result<(), ConfigError> {
        let new = Config::load(flags)?;
        let mut cur = self.config.write().unwrap_or_else(|p| p.into_inner());
        cur.reload_from(&new);
        let attrs = [("live-restore".to_string(), cur.live_restore.to_string())]
            .into_iter()
            .collect();
        drop(cur);
        self.events.publish("daemon", "reload", &self.id, attrs);
        Ok(())
    }
}

fn mkdir(what: &'static str, p: &Path) -> Result<(), StartError> {
    std::fs::create_dir_all(p).map_err(|source| StartError::Io {
        what,
        path: p.to_path_buf(),
        source,
    })
}

/// A stable engine id, created on first start under the data root.
fn engine_id(data_root: &Path) -> Result<String, StartError> {
    let p = data_root.join("engine-id");
    if let Ok(s) = std::fs::read_to_string(&p) {
        if !s.trim().is_empty() {
            return Ok(s.trim().to_string());
        }
    }
    let id = crate::ids::new_id();
    std::fs::write(&p, &id).map_err(|source| StartError::Io {
        what: "writing",
        path: p,
        source,
    })?;
    Ok(id)
}

/// Finds the helper binaries: `--helpers-dir`, then beside wharfd, then PATH.
fn helpers(config: &Config) -> Result<Helpers, StartError> {
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    let first = config.helpers_dir.clone().or(exe_dir);
    let shim = find_binary("wharf-shim", first.as_deref())
        .ok_or(StartError::MissingHelper("wharf-shim"))?;
    let init = find_binary("wharf-init", first.as_deref());
    if init.is_none() {
        tracing::warn!("wharf-init not found: containers with --init will fail to start");
    }
    Ok(Helpers {
        shim,
        init,
        search_dir: first,
    })
}

/// The network service: predefined networks and the default bridge set up.
fn network(config: &Config) -> Result<wharf_network::NetworkService, StartError> {
    let n = &config.network;
    let cfg = wharf_network::Config {
        state_dir: config.data_root.join("network"),
        netns_dir: config.exec_root.join("netns"),
        bridge: n.bridge.clone(),
        bip: n.bip,
        mtu: n.mtu,
        pools: n.pools.clone(),
        default_ip: n.ip,
        dns: if n.dns.is_empty() {
            wharf_network::dns::nameservers(
                &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
            )
        } else {
            n.dns
                .iter()
                .map(|ip| std::net::SocketAddr::new(*ip, 53))
                .collect()
        },
        firewall: n.firewall.clone(),
    };
    let kernel = Arc::new(wharf_network::sys::netns::Linux::new(Path::new("/proc")));
    let svc = wharf_network::NetworkService::open(cfg, kernel)?;
    if let Some(e) = svc.firewall_error() {
        tracing::warn!(
            "nftables unavailable ({e}): bridges do not forward, containers have no outbound NAT"
        );
    }
    Ok(svc)
}

/// Builds the daemon from its configuration: the storage driver and image store chosen by
/// an explicit match, the container store, and the containers backend.
pub fn build(config: Config) -> Result<Daemon, StartError> {
    mkdir("creating data root", &config.data_root)?;
    mkdir("creating exec root", &config.exec_root)?;
    let kind = match config.storage_driver.as_str() {
        "vfs" => wharf_storage::DriverKind::Vfs,
        _ => wharf_storage::DriverKind::Overlay2,
    };
    let driver = wharf_storage::Driver::new(
        kind,
        &config.data_root.join(&config.storage_driver),
        &config.storage_opts,
    )?;
    let images = Arc::new(wharf_image::ImageService::open(
        &config.data_root.join("image"),
        driver,
    )?);
    let (store, bad) = Store::open(&config.data_root.join("containers"))?;
    for b in bad {
        tracing::warn!(path = %b.display(), "ignoring unreadable container record");
    }
    let known: Vec<String> = store
        .all()
        .iter()
        .map(|h| Store::lock(h).id.clone())
        .collect();
    if let Err(e) = images.reconcile_rw_layers(&known) {
        tracing::warn!("reconciling container layers: {e}");
    }
    let registry = Arc::new(
        wharf_distribution::Registry::new(
            config.registry.clone(),
            config.data_root.join("image").join("downloads"),
        )
        .map_err(|e| ConfigError::Invalid {
            name: "registry",
            message: e.to_string(),
        })?,
    );
    let helpers = helpers(&config)?;
    let events = Arc::new(Events::default());
    let volumes = Arc::new(Volumes::open(
        &config.data_root.join("volumes"),
        events.clone(),
    )?);
    volumes.restore_refs(
        &store
            .all()
            .iter()
            .map(|h| {
                let c = Store::lock(h);
                (c.id.clone(), c.mount_points.clone())
            })
            .collect(),
    );
    let id = engine_id(&config.data_root)?;
    let exec_root = config.exec_root.clone();
    let data_root = config.data_root.clone();
    let network = Arc::new(network(&config)?);
    if let Err(e) = wharf_network::NetworkService::watch_firewall(&network) {
        tracing::warn!("not watching nftables, a host ruleset flush removes Wharf's rules: {e}");
    }
    let config = Arc::new(RwLock::new(config));
    let containers = Arc::new(ContainerService::new(
        store,
        images,
        volumes,
        events.clone(),
        config.clone(),
        &exec_root,
        helpers,
        network,
    ));
    let builds = Arc::new(crate::service::build::BuildService::open(
        &data_root.join("builder"),
        containers.clone(),
        registry.clone(),
    )?);
    Ok(Daemon {
        id,
        events,
        host: HostInfo::probe(Path::new("/proc"), Path::new("/etc")),
        containers,
        builds,
        config,
        registry,
    })
}

/// Runs the daemon until SIGTERM/SIGINT: binds every `-H`, writes the pidfile, reloads on
/// SIGHUP, and cleans up on the way out.
pub async fn run(flags: crate::config::Flags, config: Config) -> Result<(), StartError> {
    let mut listeners = Vec::new();
    for host in &config.hosts {
        listeners.push(listen::bind(
            host,
            &config.group,
            config.tls.as_ref(),
            config.insecure_tcp,
        )?);
    }
    let pidfile = config.pidfile.clone();
    if let Some(dir) = pidfile.parent() {
        mkdir("creating pidfile dir", dir)?;
    }
    std::fs::write(&pidfile, std::process::id().to_string()).map_err(|source| StartError::Io {
        what: "writing pidfile",
        path: pidfile.clone(),
        source,
    })?;
    let daemon = Arc::new(build(config)?);
    let live_restore = daemon.config().live_restore;
    daemon.containers.restore(live_restore).await;
    daemon.builds.reconcile().await;
    let (stop_tx, stop_rx) = watch::channel(false);
    let tracker =
        crate::server::conns::Tracker::new(crate::server::conns::max_connections(nofile_limit()));
    let mut tasks = Vec::new();
    for l in listeners {
        tasks.push(tokio::spawn(listen::serve(
            l,
            daemon.clone(),
            tracker.clone(),
            stop_rx.clone(),
        )));
    }
    tracing::info!("wharfd ready");
    wait_for_shutdown(&daemon, &flags).await;
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    if !daemon.config().live_restore {
        daemon.containers.shutdown().await;
    }
    let _ = std::fs::remove_file(&pidfile);
    tracing::info!("wharfd stopped");
    Ok(())
}

/// The soft descriptor limit (children inherit it, so it is left as the caller set it).
fn nofile_limit() -> u64 {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| soft)
}

async fn wait_for_shutdown(daemon: &Daemon, flags: &crate::config::Flags) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = int.recv() => return,
            _ = hup.recv() => match daemon.reload(flags) {
                Ok(()) => tracing::info!("configuration reloaded"),
                Err(e) => tracing::error!("reload failed, keeping the old configuration: {e}"),
            },
        }
    }
}
