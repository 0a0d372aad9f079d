//! start / stop / kill / restart / pause / unpause / wait / rm / rename / update, and what
//! happens when a container exits (state, cleanup, restart policy with Docker's back-off).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use wharf_api_types::container::{UpdateRequest, WaitResponse};
use wharf_errdefs::ErrorKind;
use wharf_shim_proto::{
    ExitStatus, LogConfig, LogDriver, Request, Response, RuntimeConfig, ShimConfig, StdioConfig,
    WindowSize, PROTOCOL_VERSION,
};

use super::health;
use super::reconcile::lost_exit;
use super::spec::{self, Seccomp, SpecInputs};
use super::{blocking, not_running, ContainerService};
use crate::server::error::ApiError;
use crate::state::{Container, Status, Store};

/// How long `kill` with SIGKILL waits for the exit to be recorded (dockerd waits up to 10 s
/// before it answers anyway).
const KILL_WAIT: Duration = Duration::from_secs(10);

/// `wait` conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    /// Return at once when not running, else at the next exit.
    NotRunning,
    /// The next exit.
    NextExit,
    /// Removal.
    Removed,
}

impl WaitCondition {
    /// Parses the `condition` parameter.
    pub fn parse(s: Option<&str>) -> Result<WaitCondition, ApiError> {
        match s.unwrap_or("") {
            "" | "not-running" => Ok(WaitCondition::NotRunning),
            "next-exit" => Ok(WaitCondition::NextExit),
            "removed" => Ok(WaitCondition::Removed),
            other => Err(ApiError::invalid(format!("invalid condition: \"{other}\""))),
        }
    }
}

/// Docker's signal names (with or without SIG) or numbers.
pub fn parse_signal(s: &str) -> Result<i32, ApiError> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|sig| sig as i32)
        .map_err(|_| ApiError::invalid(format!("Invalid signal: {s}")))
}

/// Docker's restart back-off: 100ms doubling per restart, capped at one minute.
pub fn backoff(restart_count: i64) -> Duration {
    let ms = 100u64.saturating_mul(1u64 << restart_count.clamp(0, 20));
    Duration::from_millis(ms.min(60_000))
}

/// Whether the restart policy restarts a container that exited with `code`.
pub fn should_restart(c: &Container, code: i64) -> bool {
    if c.manually_stopped || c.host_config.auto_remove {
        return false;
    }
    let rp = &c.host_config.restart_policy;
    match rp.name.as_str() {
        "always" | "unless-stopped" => true,
        "on-failure" => {
            code != 0 && (rp.maximum_retry_count == 0 || c.restart_count < rp.maximum_retry_count)
        }
        _ => false,
    }
}

/// Whether a stopped container comes back when the daemon starts.
pub fn restarts_at_boot(c: &Container) -> bool {
    if !c.has_been_started || c.host_config.auto_remove {
        return false;
    }
    let rp = &c.host_config.restart_policy;
    match rp.name.as_str() {
        "always" => true,
        "unless-stopped" => !c.manually_stopped,
        "on-failure" => {
            !c.manually_stopped
                && c.state.exit_code != 0
                && (rp.maximum_retry_count == 0 || c.restart_count < rp.maximum_retry_count)
        }
        _ => false,
    }
}

pub(super) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Reads a regular file of the container's image (empty when absent or not regular). Symlinks,
/// also in parent directories, resolve inside `rootfs` as in the container, never on the host.
pub(super) fn read_rootfs_file(rootfs: &Path, rel: &str) -> String {
    use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
    use std::io::Read;
    let read = || -> std::io::Result<String> {
        let root = std::fs::File::open(rootfs)?;
        // O_NONBLOCK: a fifo planted in the image must not hang the daemon.
        let how = OpenHow::new()
            .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        let f = std::fs::File::from(openat2(&root, rel, how)?);
        if !f.metadata()?.is_file() {
            return Ok(String::new());
        }
        let mut s = String::new();
        f.take(16 << 20).read_to_string(&mut s)?;
        Ok(s)
    };
    read().unwrap_or_default()
}

/// `/etc/resolv.conf` for a container: the host's minus loopback nameservers (unreachable from
/// the container), Docker's public fallback when none is left; `--dns*` override.
pub fn resolv_conf(host: &str, dns: &[String], search: &[String], opts: &[String]) -> String {
    let mut out = String::new();
    let mut ns: Vec<String> = dns.to_vec();
    if ns.is_empty() {
        ns = host
            .lines()
            .filter_map(|l| l.trim().strip_prefix("nameserver"))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.starts_with("127.") && v != "::1")
            .collect();
    }
    if ns.is_empty() {
        ns = vec!["8.8.8.8".into(), "8.8.4.4".into()];
    }
    let host_search: Vec<&str> = host
        .lines()
        .filter(|l| l.starts_with("search ") || l.starts_with("options "))
        .collect();
    if search.is_empty() {
        for l in host_search.iter().filter(|l| l.starts_with("search ")) {
            out.push_str(l);
            out.push('\n');
        }
    } else {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    for n in ns {
        out.push_str(&format!("nameserver {n}\n"));
    }
    if opts.is_empty() {
        for l in host_search.iter().filter(|l| l.starts_with("options ")) {
            out.push_str(l);
            out.push('\n');
        }
    } else {
        out.push_str(&format!("options {}\n", opts.join(" ")));
    }
    out
}

/// `c` with its links' variables before its own (which win on a clash), as dockerd sets them
/// at each start without storing them.
fn with_link_env(c: &Container, links: &[super::links::Resolved]) -> Container {
    let mut c = c.clone();
    let own = c.config.env.take().unwrap_or_default();
    let key = |e: &str| e.split('=').next().unwrap_or("").to_string();
    let own_keys: std::collections::HashSet<String> = own.iter().map(|e| key(e)).collect();
    let mut env: Vec<String> = links
        .iter()
        .flat_map(|l| l.env.iter())
        .filter(|e| !own_keys.contains(&key(e)))
        .cloned()
        .collect();
    env.extend(own);
    c.config.env = Some(env);
    c
}

/// `/etc/hosts` for a container.
pub fn hosts_file(hostname: &str, extra: &[String]) -> String {
    let mut s = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n");
    s.push_str(&format!("127.0.1.1\t{hostname}\n"));
    for e in extra {
        if let Some((h, ip)) = e.split_once(':') {
            s.push_str(&format!("{ip}\t{h}\n"));
        }
    }
    s
}

fn log_config(c: &Container, path: &Path) -> Result<LogConfig, ApiError> {
    let lc = &c.host_config.log_config;
    let driver = match lc.kind.as_str() {
        "" | "json-file" => LogDriver::JsonFile,
        "local" => LogDriver::Local,
        "none" => LogDriver::None,
        other => {
            return Err(ApiError::new(
                ErrorKind::NotImplemented,
                format!("log driver {other:?} is not supported"),
            ))
        }
    };
    let max_size = match lc.config.get("max-size") {
        Some(s) => Some(
            parse_size(s).ok_or_else(|| ApiError::invalid(format!("invalid max-size {s:?}")))?,
        ),
        None => None,
    };
    let max_file = match lc.config.get("max-file") {
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| ApiError::invalid(format!("invalid max-file {s:?}")))?,
        None => 1,
    };
    Ok(LogConfig {
        driver,
        path: path.to_path_buf(),
        max_size,
        max_file,
    })
}

/// `10m`, `1g`, `512k`, `100` (bytes).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.strip_suffix('b').unwrap_or(&s);
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1u64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mult)
}

impl ContainerService {
    /// Starts a created or exited container.
    pub async fn start(self: &Arc<Self>, key: &str) -> Result<(), ApiError> {
        let id = self.snapshot(key)?.id;
        let op = self.op_lock(&id);
        let _g = op.lock().await;
        self.start_locked(&id).await
    }

    async fn start_locked(self: &Arc<Self>, id: &str) -> Result<(), ApiError> {
        let h = self.get(id)?;
        let c = Store::lock(&h).clone();
        match c.state.status {
            Status::Running => {
                return Err(ApiError::new(
                    ErrorKind::NotModified,
                    "container already started",
                ))
            }
            Status::Paused => {
                return Err(ApiError::conflict(
                    "cannot start a paused container, try unpause instead",
                ))
            }
            Status::Removing | Status::Dead => {
                return Err(ApiError::conflict(format!(
                    "container {id} is marked for removal and cannot be started"
                )))
            }
            _ => {}
        }
        match self.launch(&c).await {
            Ok(pid) => {
                crate::fault::point("start:after-shim-start");
                let c = self.update(&h, |c| {
                    c.state.status = Status::Running;
                    c.state.pid = i64::from(pid);
                    c.state.started_at = now();
                    c.state.error.clear();
                    c.state.oom_killed = false;
                    c.state.exit_code = 0;
                    c.has_been_started = true;
                    c.manually_stopped = false;
                    c.state.health = health::at_start(&c.config, c.state.health.take());
                    c.clone()
                })?;
                self.emit(&c, "start", &[]);
                self.spawn_monitor(id.to_string());
                self.start_health(id);
                Ok(())
            }
            Err(e) => {
                self.cleanup_after_exit(id).await;
                let msg = e.message.clone();
                let _ = self.update(&h, |c| {
                    c.state.error = msg;
                    c.state.exit_code = if e.message.contains("executable file not found")
                        || e.message.contains("no such file")
                    {
                        127
                    } else if e.message.contains("permission denied") {
                        126
                    } else {
                        128
                    };
                    if c.state.status == Status::Restarting {
                        c.state.status = Status::Exited;
                    }
                });
                // Clients attached for this start get EOF instead of waiting forever.
                self.drop_pending_attaches(id);
                if c.host_config.auto_remove {
                    // After our op lock is released: `--rm` removes even a failed start.
                    let me = self.clone();
                    let id = id.to_string();
                    tokio::spawn(async move {
                        let _ = me.remove(&id, true).await;
                    });
                }
                Err(e)
            }
        }
    }

    /// Mounts the rootfs, writes the bundle, launches the shim, connects pending attaches and
    /// starts the process. Returns init's pid.
    async fn launch(self: &Arc<Self>, c: &Container) -> Result<i32, ApiError> {
        let cfg = self.config();
        let id = c.id.clone();
        let images = self.images.clone();
        let cid = id.clone();
        let mount = blocking(move || images.mount_rw_layer(&cid));
        let dir = self.store.dir(&id);
        let hc = &c.host_config;
        let hostname = spec::hostname(c);
        let links = self.resolve_links(c)?;
        let mut extra_hosts = self.extra_hosts(hc)?;
        extra_hosts.extend(links.iter().map(|l| l.host.clone()));
        let files = [
            ("hostname", format!("{hostname}\n")),
            (
                "hosts",
                if spec::is_host_network(hc) {
                    std::fs::read_to_string("/etc/hosts").unwrap_or_default()
                } else {
                    hosts_file(&hostname, &extra_hosts)
                },
            ),
            ("resolv.conf", self.resolv_conf_of(c)),
        ];
        let write_files = async {
            for (name, text) in &files {
                tokio::fs::write(dir.join(name), text)
                    .await
                    .map_err(|e| ApiError::internal(format!("writing {name}: {e}")))?;
            }
            Ok(())
        };
        let netns = self.network_up(c);
        // Independent steps, run together; all are awaited so a failure leaves nothing in flight
        // for the caller's cleanup to miss.
        let (rootfs, written, netns): (_, Result<(), ApiError>, _) =
            tokio::join!(mount, write_files, netns);
        let (rootfs, netns) = (rootfs?, netns?);
        written?;
        let user_mounts = self.mount_volumes(c, &rootfs).await?;
        let seccomp = match cfg.seccomp_profile.as_deref() {
            Some("unconfined") => Seccomp::Unconfined,
            Some(path) if !path.is_empty() && path != "builtin" => {
                Seccomp::Profile(tokio::fs::read(path).await.map_err(|e| {
                    ApiError::internal(format!("reading seccomp profile {path}: {e}"))
                })?)
            }
            _ => Seccomp::Profile(wharf_seccomp::default_docker_profile().to_vec()),
        };
        let inputs = SpecInputs {
            passwd: read_rootfs_file(&rootfs, "etc/passwd"),
            group: read_rootfs_file(&rootfs, "etc/group"),
            rootfs,
            hosts_path: dir.join("hosts"),
            hostname_path: dir.join("hostname"),
            resolv_conf_path: dir.join("resolv.conf"),
            netns,
            init_binary: self.helpers.init.clone(),
            seccomp,
            cgroup_parent: cfg.cgroup_parent.clone(),
            default_ulimits: cfg.default_ulimits.clone(),
            user_mounts,
        };
        let spec =
            spec::build(&with_link_env(c, &links), &inputs).map_err(|e| ApiError::from_err(&e))?;
        let shim_dir = self.shim_dir(&id);
        let _ = tokio::fs::remove_dir_all(&shim_dir).await;
        tokio::fs::create_dir_all(&shim_dir)
            .await
            .map_err(|e| ApiError::internal(format!("creating {}: {e}", shim_dir.display())))?;
        let spec_bytes =
            serde_json::to_vec_pretty(&spec).map_err(|e| ApiError::internal(e.to_string()))?;
        tokio::fs::write(shim_dir.join("config.json"), spec_bytes)
            .await
            .map_err(|e| ApiError::internal(format!("writing config.json: {e}")))?;
        let (runtime_path, runtime_args) = self.runtime(&c.runtime)?;
        let shim_cfg = ShimConfig {
            version: PROTOCOL_VERSION,
            id: id.clone(),
            bundle: shim_dir.clone(),
            runtime: RuntimeConfig {
                path: runtime_path,
                root: self.exec_root.join("runtime").join(&c.runtime),
                args: runtime_args,
            },
            stdio: StdioConfig {
                tty: c.config.tty,
                stdin: c.config.open_stdin,
                stdin_once: c.config.stdin_once,
                initial_size: hc
                    .console_size
                    .filter(|s| s[0] > 0 && s[1] > 0)
                    .map(|[h, w]| WindowSize {
                        height: h.min(u16::MAX as u32) as u16,
                        width: w.min(u16::MAX as u32) as u16,
                    }),
            },
            log: log_config(c, &self.log_path(&id))?,
        };
        let shim = self.shim(&id);
        shim.launch(&self.helpers.shim, &shim_cfg)
            .await
            .map_err(|e| ApiError::from_err(&e))?;
        self.connect_pending_attaches(&id).await;
        match shim.call(&Request::Start).await {
            Ok(Response::Started { pid }) => Ok(pid),
            Ok(other) => Err(ApiError::internal(format!(
                "unexpected shim answer {other:?}"
            ))),
            Err(e) => {
                let _ = shim.call_ok(&Request::Shutdown).await;
                Err(ApiError::from_err(&e))
            }
        }
    }

    /// Follows a running container until it exits, then records the exit.
    pub fn spawn_monitor(self: &Arc<Self>, id: String) {
        let me = self.clone();
        tokio::spawn(async move {
            let shim = me.shim(&id);
            let exit = match shim.wait().await {
                Ok(e) => e,
                // The shim died without answering: exit.json may still tell what happened, and
                // on_exit's cleanup kills an init that outlived its shim.
                Err(_) => shim.exit_file().unwrap_or_else(lost_exit),
            };
            me.on_exit(&id, exit).await;
        });
    }

    /// Releases a stopped container's host state (see [`super::reconcile`]); what fails is
    /// logged and retried by the next reconciliation.
    async fn cleanup_after_exit(&self, id: &str) {
        let Ok(c) = self.snapshot(id) else { return };
        if let Err(e) = self.release_host_state(&c).await {
            tracing::warn!(id, "releasing the container's host state: {e}");
        }
    }

    async fn on_exit(self: &Arc<Self>, id: &str, exit: ExitStatus) {
        let Ok(h) = self.get(id) else { return };
        self.stop_health(id);
        self.cleanup_after_exit(id).await;
        let code = i64::from(exit.exit_code);
        let exited = |c: &mut Container| {
            c.state.status = Status::Exited;
            c.state.pid = 0;
            c.state.exit_code = code;
            c.state.finished_at = exit.exited_at.clone();
            c.state.oom_killed = exit.oom_killed;
            c.clone()
        };
        // A `--rm` container is marked Removing (persisted) right below; a crash before that
        // leaves it Running on disk, which restore() settles the same way (exit.json, then
        // removal), so the Exited state need not be written first.
        let auto_remove = Store::lock(&h).host_config.auto_remove;
        let updated = if auto_remove {
            Ok(exited(&mut Store::lock(&h)))
        } else {
            self.update(&h, exited)
        };
        let Ok(c) = updated else {
            return;
        };
        if exit.oom_killed {
            self.emit(&c, "oom", &[]);
        }
        self.emit(&c, "die", &[("exitCode", code.to_string())]);
        let restart = should_restart(&c, code);
        self.lifecycle_tx(id).send_modify(|l| {
            l.exits += 1;
            l.exit_code = code;
        });
        if c.host_config.auto_remove {
            let _ = self.remove(id, true).await;
            return;
        }
        if restart {
            let delay = backoff(c.restart_count);
            let _ = self.update(&h, |c| c.state.status = Status::Restarting);
            let me = self.clone();
            let id = id.to_string();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let op = me.op_lock(&id);
                let _g = op.lock().await;
                let Ok(h) = me.get(&id) else { return };
                let still = {
                    let c = Store::lock(&h);
                    c.state.status == Status::Restarting && !c.manually_stopped
                };
                if !still {
                    return;
                }
                let _ = me.update(&h, |c| c.restart_count += 1);
                if let Err(e) = me.start_locked(&id).await {
                    tracing::warn!(id, "restart failed: {e}");
                }
            });
        }
    }

    /// Sends a signal through the shim.
    pub async fn kill(&self, key: &str, signal: Option<&str>) -> Result<(), ApiError> {
        let c = self.snapshot(key)?;
        let sig = match signal.filter(|s| !s.is_empty()) {
            Some(s) => parse_signal(s)?,
            None => 9,
        };
        if !c.state.status.is_alive() {
            return Err(not_running(&c.id));
        }
        if sig == 9 || sig == 15 {
            // A kill the user asked for counts as a manual stop for restart policies.
            let h = self.get(&c.id)?;
            self.update(&h, |c| c.manually_stopped = true)?;
        }
        let mut rx = self.watch(&c.id);
        let seen = rx.borrow().exits;
        self.shim(&c.id)
            .call_ok(&Request::Kill {
                signal: sig,
                all: false,
            })
            .await
            .map_err(|e| ApiError::from_err(&e))?;
        self.emit(&c, "kill", &[("signal", sig.to_string())]);
        if sig == 9 && c.state.status == Status::Paused {
            // A frozen process dies only once thawed (dockerd resumes it too).
            let _ = self.shim(&c.id).call_ok(&Request::Resume).await;
        }
        if sig == 9 {
            // As dockerd: SIGKILL returns once the exit is recorded, so an inspect right after
            // sees it. Bounded, as a process stuck in the kernel (D state) may not die at once.
            let _ =
                tokio::time::timeout(KILL_WAIT, rx.wait_for(|l| l.exits > seen || l.removed)).await;
        }
        Ok(())
    }

    /// Stops with the stop signal, then SIGKILL after `timeout` seconds (Docker's default 10).
    pub async fn stop(
        self: &Arc<Self>,
        key: &str,
        signal: Option<&str>,
        timeout: Option<i64>,
    ) -> Result<(), ApiError> {
        let id = self.snapshot(key)?.id;
        let op = self.op_lock(&id);
        let _g = op.lock().await;
        self.stop_locked(&id, signal, timeout).await
    }

    async fn stop_locked(
        &self,
        id: &str,
        signal: Option<&str>,
        timeout: Option<i64>,
    ) -> Result<(), ApiError> {
        let h = self.get(id)?;
        let c = self.update(&h, |c| {
            c.manually_stopped = true;
            if c.state.status == Status::Restarting {
                c.state.status = Status::Exited;
            }
            c.clone()
        })?;
        if !c.state.status.is_alive() {
            return Err(ApiError::new(
                ErrorKind::NotModified,
                "container already stopped",
            ));
        }
        let sig = match signal
            .filter(|s| !s.is_empty())
            .or(c.config.stop_signal.as_deref())
        {
            Some(s) => parse_signal(s)?,
            None => 15,
        };
        let secs = timeout.or(c.config.stop_timeout).unwrap_or(10);
        let mut rx = self.watch(id);
        let seen = rx.borrow().exits;
        let shim = self.shim(id);
        if c.state.status == Status::Paused {
            let _ = shim.call_ok(&Request::Resume).await;
        }
        let _ = shim
            .call_ok(&Request::Kill {
                signal: sig,
                all: false,
            })
            .await;
        self.emit(&c, "kill", &[("signal", sig.to_string())]);
        let exited = |rx: &mut tokio::sync::watch::Receiver<super::Lifecycle>| {
            let mut rx = rx.clone();
            async move {
                let ok = rx.wait_for(|l| l.exits > seen || l.removed).await.is_ok();
                ok
            }
        };
        let graceful = secs < 0
            || tokio::time::timeout(Duration::from_secs(secs as u64), exited(&mut rx))
                .await
                .is_ok();
        if !graceful {
            let _ = shim
                .call_ok(&Request::Kill {
                    signal: 9,
                    all: true,
                })
                .await;
            self.emit(&c, "kill", &[("signal", "9".into())]);
            if tokio::time::timeout(Duration::from_secs(30), exited(&mut rx))
                .await
                .is_err()
            {
                return Err(ApiError::internal(format!(
                    "container {id} did not exit after SIGKILL"
                )));
            }
        }
        self.emit(&c, "stop", &[]);
        Ok(())
    }

    /// Stops (if running) and starts again.
    pub async fn restart(
        self: &Arc<Self>,
        key: &str,
        signal: Option<&str>,
        timeout: Option<i64>,
    ) -> Result<(), ApiError> {
        let id = self.snapshot(key)?.id;
        let op = self.op_lock(&id);
        let _g = op.lock().await;
        match self.stop_locked(&id, signal, timeout).await {
            Ok(()) => {}
            Err(e) if e.kind == ErrorKind::NotModified => {}
            Err(e) => return Err(e),
        }
        self.start_locked(&id).await?;
        let c = self.snapshot(&id)?;
        self.emit(&c, "restart", &[]);
        Ok(())
    }

    /// Freezes or thaws.
    pub async fn pause(self: &Arc<Self>, key: &str, pause: bool) -> Result<(), ApiError> {
        let c = self.snapshot(key)?;
        match (pause, c.state.status) {
            (true, Status::Paused) => {
                return Err(ApiError::conflict(format!(
                    "Container {} is already paused",
                    c.id
                )))
            }
            (false, Status::Running) => {
                return Err(ApiError::conflict(format!(
                    "Container {} is not paused",
                    c.id
                )))
            }
            (_, s) if !s.is_alive() => return Err(not_running(&c.id)),
            _ => {}
        }
        let req = if pause {
            Request::Pause
        } else {
            Request::Resume
        };
        // Docker skips probes while paused; stopped first so a probe in flight is not frozen.
        if pause {
            self.stop_health(&c.id);
        }
        let res = self
            .shim(&c.id)
            .call_ok(&req)
            .await
            .map_err(|e| ApiError::from_err(&e));
        let h = self.get(&c.id)?;
        if res.is_ok() {
            self.update(&h, |c| {
                c.state.status = if pause {
                    Status::Paused
                } else {
                    Status::Running
                }
            })?;
        }
        // A no-op while paused: this resumes probes after an unpause or a failed pause.
        self.start_health(&c.id);
        res?;
        self.emit(&c, if pause { "pause" } else { "unpause" }, &[]);
        Ok(())
    }

    /// Blocks until `cond` holds; the answer carries the exit code.
    pub async fn wait(&self, key: &str, cond: WaitCondition) -> Result<WaitResponse, ApiError> {
        let c = self.snapshot(key)?;
        let mut rx = self.watch(&c.id);
        let seen = rx.borrow().exits;
        let alive = c.state.status.is_alive() || c.state.status == Status::Restarting;
        if cond == WaitCondition::NotRunning && !alive {
            return Ok(WaitResponse {
                status_code: c.state.exit_code,
                error: None,
            });
        }
        let l = rx
            .wait_for(|l| match cond {
                WaitCondition::Removed => l.removed,
                _ => l.exits > seen || l.removed,
            })
            .await
            .map(|l| *l)
            .map_err(|_| ApiError::internal("daemon shutting down"))?;
        Ok(WaitResponse {
            status_code: l.exit_code,
            error: None,
        })
    }

    /// Removes a container (killing it first with `force`); an `--rm` one takes its anonymous
    /// volumes along. Journaled: once the intent is written the removal is finished even
    /// across a crash; success is reported only when the record is gone, and a record whose
    /// host state is partly gone can always be removed.
    pub async fn remove(self: &Arc<Self>, key: &str, force: bool) -> Result<(), ApiError> {
        self.remove_with_volumes(key, force, false).await
    }

    /// `rm [-f] [-v]`: `volumes` also removes the container's anonymous volumes.
    pub async fn remove_with_volumes(
        self: &Arc<Self>,
        key: &str,
        force: bool,
        volumes: bool,
    ) -> Result<(), ApiError> {
        let id = self.snapshot(key)?.id;
        let op = self.op_lock(&id);
        let _g = op.lock().await;
        let h = self.get(&id)?;
        let c = Store::lock(&h).clone();
        if c.state.status.is_alive() || c.state.status == Status::Restarting {
            if !force {
                let what = if c.state.status == Status::Paused {
                    "paused"
                } else {
                    "running"
                };
                return Err(ApiError::conflict(format!("cannot remove container \"{}\": container is {what}: stop the container before removing or force remove", c.name)));
            }
            let _ = self.update(&h, |c| c.manually_stopped = true);
            if c.state.status.is_alive() {
                let mut rx = self.watch(&id);
                let seen = rx.borrow().exits;
                let shim = self.shim(&id);
                let _ = shim.call_ok(&Request::Resume).await;
                let killed = shim
                    .call_ok(&Request::Kill {
                        signal: 9,
                        all: true,
                    })
                    .await;
                // Without a shim there is no exit to wait for: the teardown kills by cgroup.
                if killed.is_ok() {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(30),
                        rx.wait_for(|l| l.exits > seen),
                    )
                    .await;
                }
            }
        }
        let intent = self
            .journal()
            .begin(
                super::reconcile::REMOVE,
                &id,
                &super::reconcile::ContainerIntent {
                    name: c.name.clone(),
                },
            )
            .map_err(|e| ApiError::from_err(&e))?;
        let _ = self.update(&h, |c| c.state.status = Status::Removing);
        crate::fault::point("remove:after-intent");
        self.stop_health(&id);
        let released = self.release_host_state(&c).await;
        let images = self.images.clone();
        let cid = id.clone();
        let layer = match blocking(move || images.remove_rw_layer(&cid)).await {
            // Already gone (a removal cut short after this step).
            Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
            other => other,
        };
        if let Err(e) = released.and(layer) {
            // The intent stays: the next start (or `rm -f`) finishes the removal.
            let _ = self.update(&h, |c| c.state.status = Status::Dead);
            return Err(e);
        }
        crate::fault::point("remove:after-layer");
        self.store.remove(&id).map_err(|e| ApiError::from_err(&e))?;
        let vols = self.volumes.clone();
        let (cid, mps) = (id.clone(), c.mount_points.clone());
        let anonymous = volumes || c.host_config.auto_remove;
        let _ = blocking(move || {
            vols.release(&cid, &mps, anonymous);
            Ok::<_, ApiError>(())
        })
        .await;
        self.network_forget(&id);
        let _ = intent.commit();
        self.drop_execs(&id);
        self.emit(&c, "destroy", &[]);
        self.lifecycle_tx(&id).send_modify(|l| l.removed = true);
        if let Ok(mut m) = self.lifecycle.lock() {
            m.remove(&id);
        }
        Ok(())
    }

    /// Renames.
    pub fn rename(&self, key: &str, new_name: &str) -> Result<(), ApiError> {
        let c = self.snapshot(key)?;
        self.store
            .rename(&c.id, new_name)
            .map_err(|e| ApiError::from_err(&e))?;
        let new = self.snapshot(&c.id)?;
        self.emit(&new, "rename", &[("oldName", c.name.clone())]);
        Ok(())
    }

    /// `docker update`: new resources and restart policy; applied live when running.
    pub async fn update_resources(
        &self,
        key: &str,
        req: UpdateRequest,
    ) -> Result<Vec<String>, ApiError> {
        let c = self.snapshot(key)?;
        let mut hc = c.host_config.clone();
        let r = &req.resources;
        let mut nr = hc.resources.clone();
        let unset = wharf_api_types::container::Resources::default();
        // Docker's update only changes the fields the client set (non-zero).
        macro_rules! set_nonzero { ($($f:ident),*) => { $( if r.$f != unset.$f { nr.$f = r.$f.clone(); } )* } }
        set_nonzero!(
            cpu_shares,
            memory,
            nano_cpus,
            blkio_weight,
            cpu_period,
            cpu_quota,
            cpu_realtime_period,
            cpu_realtime_runtime,
            cpuset_cpus,
            cpuset_mems,
            memory_reservation,
            memory_swap
        );
        if r.pids_limit.is_some() {
            nr.pids_limit = r.pids_limit;
        }
        hc.resources = nr;
        if let Some(rp) = req.restart_policy.clone() {
            hc.restart_policy = rp;
        }
        super::create::validate_host_config(&hc)?;
        if c.state.status.is_alive() {
            let res = spec::resources(&hc.resources, hc.privileged)
                .map_err(|e| ApiError::from_err(&e))?;
            self.shim(&c.id)
                .call_ok(&Request::Update { resources: res })
                .await
                .map_err(|e| ApiError::from_err(&e))?;
        }
        let h = self.get(&c.id)?;
        self.update(&h, |x| x.host_config = hc)?;
        self.emit(&c, "update", &[]);
        Ok(Vec::new())
    }

    /// Daemon start: settles the journal, reconciles every container with what exists (see
    /// [`super::reconcile`]: live shims adopted, orphans killed, exits recorded), and restarts
    /// by policy (Docker's boot rule: `always` even after a manual stop). Without
    /// `live_restore`, containers that outlived a crashed daemon are stopped first, as a clean
    /// shutdown would have done.
    pub async fn restore(self: &Arc<Self>, live_restore: bool) {
        self.settle_journal().await;
        let mut adopted = Vec::new();
        for h in self.store.all() {
            adopted.extend(self.reconcile_at_start(&h).await);
        }
        self.reconcile_network(&adopted).await;
        if !live_restore {
            self.stop_for_shutdown(adopted).await;
        }
        let boot: Vec<String> = self
            .store
            .all()
            .iter()
            .filter_map(|h| {
                let c = Store::lock(h);
                (c.state.status == Status::Exited && restarts_at_boot(&c)).then(|| c.id.clone())
            })
            .collect();
        for id in boot {
            if let Err(e) = self.start(&id).await {
                tracing::warn!(id, "restart at daemon start failed: {e}");
            }
        }
    }

    /// Daemon shutdown without live-restore: stops every running container (restart policies
    /// bring them back at the next start).
    pub async fn shutdown(self: &Arc<Self>) {
        let ids: Vec<String> = self
            .store
            .all()
            .iter()
            .filter_map(|h| {
                let c = Store::lock(h);
                c.state.status.is_alive().then(|| c.id.clone())
            })
            .collect();
        self.stop_for_shutdown(ids).await;
    }

    /// Stops `ids` in parallel, each with its own stop timeout, leaving restart policies armed.
    async fn stop_for_shutdown(self: &Arc<Self>, ids: Vec<String>) {
        let mut tasks = Vec::new();
        for id in ids {
            let me = self.clone();
            tasks.push(tokio::spawn(async move {
                let Ok(h) = me.get(&id) else { return };
                let _ = me.stop_locked(&id, None, None).await;
                // Not a user stop: restart policies apply when the daemon comes back.
                let _ = me.update(&h, |c| c.manually_stopped = false);
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rootfs_files_resolve_inside_the_rootfs() {
        let d = tempfile::tempdir().expect("tempdir");
        let (root, host) = (d.path().join("root"), d.path().join("host"));
        std::fs::create_dir_all(root.join("real")).expect("mkdir");
        std::fs::create_dir_all(&host).expect("mkdir");
        std::fs::write(root.join("real/passwd"), "inside\n").expect("write");
        std::fs::write(host.join("passwd"), "host\n").expect("write");
        // Absolute links, as an image would carry them: `/etc -> <host dir>` must stay inside.
        std::os::unix::fs::symlink(&host, root.join("etc")).expect("symlink");
        std::os::unix::fs::symlink("/real/passwd", root.join("pw")).expect("symlink");
        assert_eq!(read_rootfs_file(&root, "etc/passwd"), "");
        assert_eq!(read_rootfs_file(&root, "pw"), "inside\n");
        assert_eq!(read_rootfs_file(&root, "real"), "");
        assert_eq!(read_rootfs_file(&root, "nope"), "");
    }

    #[test]
    fn signals() {
        assert_eq!(parse_signal("SIGTERM").expect("term"), 15);
        assert_eq!(parse_signal("kill").expect("kill"), 9);
        assert_eq!(parse_signal("10").expect("num"), 10);
        assert!(parse_signal("SIGNOPE").is_err());
        assert!(parse_signal("0").is_err());
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(0), Duration::from_millis(100));
        assert_eq!(backoff(3), Duration::from_millis(800));
        assert_eq!(backoff(50), Duration::from_secs(60));
    }

    #[test]
    fn sizes_and_conditions() {
        assert_eq!(parse_size("10m"), Some(10 << 20));
        assert_eq!(parse_size("1k"), Some(1024));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("x"), None);
        assert_eq!(
            WaitCondition::parse(Some("removed")).expect("ok"),
            WaitCondition::Removed
        );
        assert!(WaitCondition::parse(Some("bogus")).is_err());
    }

    #[test]
    fn resolv_and_hosts() {
        let r = resolv_conf(
            "nameserver 127.0.0.53\nsearch lan\noptions edns0\n",
            &[],
            &[],
            &[],
        );
        assert_eq!(
            r,
            "search lan\nnameserver 8.8.8.8\nnameserver 8.8.4.4\noptions edns0\n"
        );
        let r = resolv_conf(
            "nameserver 10.0.0.1\n",
            &["1.1.1.1".into()],
            &["x".into()],
            &[],
        );
        assert_eq!(r, "search x\nnameserver 1.1.1.1\n");
        let h = hosts_file("abc", &["db:10.0.0.2".into()]);
        assert!(h.contains("127.0.1.1\tabc\n") && h.contains("10.0.0.2\tdb\n"));
    }
}
