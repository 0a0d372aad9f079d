//! The composition root: builds every service from the [`Config`] with explicit choices, and
//! owns the daemon's lifetime (listeners, signals, shutdown).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use tokio::sync::watch;

use crate::config::{Config, ConfigError};
use crate::events::Events;
use crate::server::listen;
use crate::service::system::HostInfo;
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
    config: RwLock<Config>,
    /// Stable engine id (`/info` ID).
    pub id: String,
    /// The event bus.
    pub events: Events,
    /// Host facts.
    pub host: HostInfo,
    /// Containers.
    pub store: Store,
}

impl Daemon {
    /// A snapshot of the current configuration.
    pub fn config(&self) -> Config {
        self.config.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether experimental features are on.
    pub fn experimental(&self) -> bool {
        self.config.read().map(|c| c.experimental).unwrap_or(false)
    }

    /// [running, paused, stopped] container counts.
    pub fn container_counts(&self) -> [i64; 3] {
        let mut n = [0; 3];
        for h in self.store.all() {
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
        let attrs = [("live-restore".to_string(), cur.live_restore.to_string())].into_iter().collect();
        drop(cur);
        self.events.publish("daemon", "reload", &self.id, attrs);
        Ok(())
    }
}

fn mkdir(what: &'static str, p: &Path) -> Result<(), StartError> {
    std::fs::create_dir_all(p).map_err(|source| StartError::Io { what, path: p.to_path_buf(), source })
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
    std::fs::write(&p, &id).map_err(|source| StartError::Io { what: "writing", path: p, source })?;
    Ok(id)
}

/// Builds the daemon from its configuration (paths, state, services).
pub fn build(config: Config) -> Result<Daemon, StartError> {
    mkdir("creating data root", &config.data_root)?;
    mkdir("creating exec root", &config.exec_root)?;
    let (store, bad) = Store::open(&config.data_root.join("containers"))?;
    for b in bad {
        tracing::warn!(path = %b.display(), "ignoring unreadable container record");
    }
    Ok(Daemon {
        id: engine_id(&config.data_root)?,
        events: Events::default(),
        host: HostInfo::probe(Path::new("/proc"), Path::new("/etc")),
        store,
        config: RwLock::new(config),
    })
}

/// Runs the daemon until SIGTERM/SIGINT: binds every `-H`, writes the pidfile, reloads on
/// SIGHUP, and cleans up on the way out.
pub async fn run(flags: crate::config::Flags, config: Config) -> Result<(), StartError> {
    let mut listeners = Vec::new();
    for host in &config.hosts {
        listeners.push(listen::bind(host, &config.group, config.tls.as_ref(), config.insecure_tcp)?);
    }
    let pidfile = config.pidfile.clone();
    if let Some(dir) = pidfile.parent() {
        mkdir("creating pidfile dir", dir)?;
    }
    std::fs::write(&pidfile, std::process::id().to_string())
        .map_err(|source| StartError::Io { what: "writing pidfile", path: pidfile.clone(), source })?;
    let daemon = Arc::new(build(config)?);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    for l in listeners {
        tasks.push(tokio::spawn(listen::serve(l, daemon.clone(), stop_rx.clone())));
    }
    tracing::info!("wharfd ready");
    wait_for_shutdown(&daemon, &flags).await;
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    let _ = std::fs::remove_file(&pidfile);
    tracing::info!("wharfd stopped");
    Ok(())
}

async fn wait_for_shutdown(daemon: &Daemon, flags: &crate::config::Flags) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) =
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup()))
    else {
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
