//! Reconciliation: making each container's record agree with what exists on the host.
//!
//! # The model
//!
//! A container is, on the daemon's side, its **record** (`config.v2.json`: the desired state
//! — created, running, stopped by the user, being removed — and the last observed one), and
//! on the host whatever its record caused to exist:
//!
//! - the **rw layer** (image store) and, while started, its **rootfs mount**;
//! - the **shim dir** (`<exec-root>/containers/<id>`: bundle, `shim.sock`, `exit.json`) and
//!   the **shim** process serving it;
//! - the **runtime state** (`<exec-root>/runtime/<runtime>/<id>`);
//! - the **init process** and everything else in its **cgroup**;
//! - the **netns pin** (`<exec-root>/netns/<id>`) and its **volume mounts**.
//!
//! The record is the truth about *intent*; the host is the truth about *what runs*. They are
//! reconciled at daemon start (every container, whatever its status) and whenever a shim's
//! connection drops:
//!
//! - a live shim whose init runs, for a record that says running/paused/restarting, is
//!   adopted (live restore);
//! - anything else that runs is an orphan: a start the record never committed, or an init
//!   whose shim died. It is killed through its cgroup (v2 `cgroup.kill`; v1 freeze, SIGKILL
//!   every member, thaw: see `wharf_cgroups::Manager::kill_all`), reaped (by the shim, or by
//!   pid 1 once the shim is gone), its runtime state deleted (`runtime delete --force`, or
//!   removed by hand when the runtime cannot), the cgroup removed; then the netns pin, the
//!   rootfs mount and the shim dir go ([`ContainerService::release_host_state`]);
//! - a record that said running gets the exit: `exit.json` when the shim wrote it, else 255
//!   (Docker's code for a lost task); then the restart policy applies as for any exit.
//!
//! A dying shim is not tethered to its container (`PR_SET_PDEATHSIG` cannot be: init's parent
//! is the runtime's short-lived `create` process, so the signal would fire at once, and a
//! subreaper's death does not reach grandchildren). Instead the daemon's monitor, which holds
//! a `Wait` connection to every shim, sees the connection drop and kills the orphan through
//! its cgroup at once (measured: init is gone about 0.1 s after its shim's SIGKILL, as
//! `tests/crash.rs` prints); while the daemon itself is down, the orphan runs until the next
//! start reconciles it.
//!
//! Multi-step changes of the record's own existence (create, remove) are journaled
//! ([`crate::state::journal`]): an intent is written before the first effect and committed
//! after the last, and [`ContainerService::settle_journal`] finishes or undoes whatever a
//! crash interrupted before anything else runs. Other areas (networks, volumes) add their
//! host state to [`ContainerService::release_host_state`] and their intents to the journal.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use wharf_cgroups::{Hierarchy, Manager};
use wharf_shim_proto::{ExitStatus, Request, Response};

use super::lifecycle::now;
use super::{blocking, health, spec, ContainerService};
use crate::server::error::ApiError;
use crate::state::journal::Journal;
use crate::state::{Container, Handle, Status, Store};

/// Journal area of container creations (key: id).
pub const CREATE: &str = "container-create";
/// Journal area of container removals (key: id).
pub const REMOVE: &str = "container-remove";

/// What a container journal intent carries: enough to undo or finish without the record.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContainerIntent {
    /// The container's name (released with the record).
    pub name: String,
}

/// How long an orphan may take to leave its cgroup after SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(10);

/// How long a shim caught starting by a crash may take to answer.
const SHIM_START_GRACE: Duration = Duration::from_secs(10);

/// Pids of the `wharf-shim <dir>` processes alive (launcher and detached shim).
fn shim_processes(dir: &Path) -> Vec<i32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let want = dir.as_os_str().as_encoded_bytes();
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let mut args = cmd.split(|b| *b == 0);
            args.next().is_some_and(|a| a.ends_with(b"wharf-shim")) && args.next() == Some(want)
        })
        .collect()
}

/// Where a container's processes and runtime state live.
#[derive(Debug, Clone)]
struct HostRefs {
    id: String,
    cgroups_path: String,
    runtime: Option<(PathBuf, Vec<String>)>,
    runtime_root: PathBuf,
}

/// Kills every process of the container through its cgroup, waits for the cgroup to empty,
/// deletes the runtime state and the cgroup. Idempotent; blocking.
fn kill_orphans(r: &HostRefs) -> Result<(), String> {
    let cg = Hierarchy::probe()
        .and_then(|h| Manager::new(&h, &r.cgroups_path, &r.id))
        .map_err(|e| format!("cgroup {}: {e}", r.cgroups_path))?;
    if cg.pids().map(|p| !p.is_empty()).unwrap_or(false) {
        cg.kill_all(libc::SIGKILL)
            .map_err(|e| format!("killing cgroup {}: {e}", r.cgroups_path))?;
        let deadline = Instant::now() + KILL_GRACE;
        while cg.pids().map(|p| !p.is_empty()).unwrap_or(false) {
            if Instant::now() > deadline {
                return Err(format!(
                    "cgroup {} did not empty after SIGKILL",
                    r.cgroups_path
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let state = r.runtime_root.join(&r.id);
    if state.exists() {
        if let Some((bin, args)) = &r.runtime {
            let _ = std::process::Command::new(bin)
                .arg("--root")
                .arg(&r.runtime_root)
                .args(args)
                .args(["delete", "--force", &r.id])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
        // The runtime may be gone or refuse a half-written state: nothing runs any more.
        if state.exists() {
            std::fs::remove_dir_all(&state)
                .map_err(|e| format!("removing runtime state {}: {e}", state.display()))?;
        }
    }
    cg.destroy()
        .map_err(|e| format!("removing cgroup {}: {e}", r.cgroups_path))
}

/// The cgroup the bundle gave the container (the daemon's parent may have changed since).
fn bundle_cgroups_path(shim_dir: &Path) -> Option<String> {
    let b = std::fs::read(shim_dir.join("config.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&b).ok()?;
    v["linux"]["cgroupsPath"].as_str().map(String::from)
}

impl ContainerService {
    /// The container journal (`<data-root>/journal`).
    pub(super) fn journal(&self) -> Journal {
        Journal::new(&self.journal_root)
    }

    fn host_refs(&self, c: &Container) -> HostRefs {
        let cfg = self.config();
        HostRefs {
            id: c.id.clone(),
            cgroups_path: bundle_cgroups_path(&self.shim_dir(&c.id))
                .unwrap_or_else(|| spec::cgroups_path(c, &cfg.cgroup_parent)),
            runtime: self.runtime(&c.runtime).ok(),
            runtime_root: self.exec_root.join("runtime").join(&c.runtime),
        }
    }

    /// Releases everything on the host a container's start created: kills what still runs in
    /// its cgroup, deletes runtime state and cgroup, unmounts its volumes, the netns pin, the
    /// rootfs mount, the shim and its dir. Idempotent; every step runs even if an earlier one failed, and the first
    /// failure is returned (what is left is retried by the next call).
    pub(super) async fn release_host_state(&self, c: &Container) -> Result<(), ApiError> {
        let refs = self.host_refs(c);
        let killed = blocking(move || kill_orphans(&refs).map_err(ApiError::internal)).await;
        let vols = self.volumes.clone();
        let (cid, mps) = (c.id.clone(), c.mount_points.clone());
        let _ = blocking(move || {
            vols.unmount_all(&cid, &mps);
            Ok::<_, ApiError>(())
        })
        .await;
        // Ports, veth, netns pin and lease; failures are logged and retried at the next start.
        self.network_down(&c.id).await;
        let images = self.images.clone();
        let cid = c.id.clone();
        let unmounted = blocking(move || images.unmount_rw_layer(&cid)).await;
        // The shim would linger to hand the exit to a restarted daemon; we have it, so let it
        // go as soon as its attached clients are served.
        let _ = self.shim(&c.id).call_ok(&Request::Shutdown).await;
        let dir = match tokio::fs::remove_dir_all(self.shim_dir(&c.id)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(ApiError::internal(format!(
                "removing {}: {e}",
                self.shim_dir(&c.id).display()
            ))),
            _ => Ok(()),
        };
        let unmounted = match unmounted {
            Err(e) if e.kind == wharf_errdefs::ErrorKind::NotFound => Ok(()),
            other => other,
        };
        killed.and(unmounted).and(dir)
    }

    /// Settles what a crash interrupted: creations without a record are undone, removals are
    /// finished. Runs at start, before containers are reconciled.
    pub(super) async fn settle_journal(self: &Arc<Self>) {
        let j = self.journal();
        for (id, _, intent) in j.pending::<ContainerIntent>(CREATE) {
            if self.store.get(&id).is_err() {
                self.network_forget(&id);
                let images = self.images.clone();
                let cid = id.clone();
                if let Err(e) = blocking(move || images.remove_rw_layer(&cid)).await {
                    if e.kind != wharf_errdefs::ErrorKind::NotFound {
                        tracing::warn!(id, "undoing an interrupted create: {e}");
                        continue;
                    }
                }
            }
            let _ = intent.commit();
        }
        for (id, _, intent) in j.pending::<ContainerIntent>(REMOVE) {
            let done = match self.store.get(&id) {
                Ok(h) => {
                    // Straight to the teardown: no monitor runs yet to see a kill's exit.
                    let _ = self.update(&h, |c| c.state.status = Status::Removing);
                    self.remove(&id, true).await.is_ok()
                }
                Err(_) => true,
            };
            if done {
                let _ = intent.commit();
            }
        }
    }

    /// Reconciles one container at daemon start; returns its id when a live container was
    /// adopted.
    pub(super) async fn reconcile_at_start(self: &Arc<Self>, h: &Handle) -> Option<String> {
        let c = Store::lock(h).clone();
        if c.state.status == Status::Removing {
            let _ = self.remove(&c.id, true).await;
            return None;
        }
        let was_alive = c.state.status.is_alive() || c.state.status == Status::Restarting;
        let shim = self.shim(&c.id);
        let mut state = match shim.dir().exists() {
            true => shim.call(&Request::State).await.ok(),
            false => None,
        };
        // A shim the crash caught starting has no socket yet: let it finish (or fail) rather
        // than release its container under it.
        let deadline = Instant::now() + SHIM_START_GRACE;
        while state.is_none() && shim.dir().exists() && Instant::now() < deadline {
            let dir = shim.dir().to_path_buf();
            let starting = blocking(move || Ok::<_, ApiError>(!shim_processes(&dir).is_empty()))
                .await
                .unwrap_or(false);
            if !starting {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            state = shim.call(&Request::State).await.ok();
        }
        if let Some(Response::State(st)) = &state {
            let live = st.exit.is_none()
                && matches!(
                    st.status,
                    wharf_shim_proto::Status::Running | wharf_shim_proto::Status::Paused
                );
            if live && was_alive {
                self.adopt(h, &c, st).await;
                return Some(c.id.clone());
            }
        }
        // Read before the release deletes the shim dir that holds it.
        let exit = shim.exit_file();
        if let Err(e) = self.release_host_state(&c).await {
            tracing::warn!(id = c.id, "releasing a stopped container's leftovers: {e}");
        }
        if was_alive {
            let exit = exit.unwrap_or_else(lost_exit);
            let _ = self.update(h, |x| {
                x.state.status = Status::Exited;
                x.state.pid = 0;
                x.state.exit_code = i64::from(exit.exit_code);
                x.state.finished_at = exit.exited_at.clone();
                x.state.oom_killed = exit.oom_killed;
            });
            if c.host_config.auto_remove {
                let _ = self.remove(&c.id, true).await;
            }
        }
        None
    }

    async fn adopt(
        self: &Arc<Self>,
        h: &Handle,
        c: &Container,
        st: &wharf_shim_proto::ContainerState,
    ) {
        // Take back the rootfs reference launch() held (the mount itself survived), so cp,
        // export or commit do not unmount it under the running container.
        let (images, cid) = (self.images.clone(), c.id.clone());
        if let Err(e) = blocking(move || images.mount_rw_layer(&cid)).await {
            tracing::warn!(id = c.id, "re-taking the rootfs mount: {e}");
        }
        let status = if st.status == wharf_shim_proto::Status::Paused {
            Status::Paused
        } else {
            Status::Running
        };
        let pid = st.pid;
        let _ = self.update(h, |x| {
            x.state.status = status;
            x.state.pid = i64::from(pid);
            x.state.health = health::at_start(&x.config, x.state.health.take());
        });
        self.spawn_monitor(c.id.clone());
        self.start_health(&c.id);
    }
}

/// The exit recorded when neither the shim nor `exit.json` can tell (Docker's 255).
pub(super) fn lost_exit() -> ExitStatus {
    ExitStatus {
        exit_code: 255,
        exited_at: now(),
        oom_killed: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundle_names_the_cgroup() {
        let d = tempfile::tempdir().expect("tempdir");
        assert_eq!(bundle_cgroups_path(d.path()), None);
        std::fs::write(
            d.path().join("config.json"),
            br#"{"linux":{"cgroupsPath":"/old-parent/abc"}}"#,
        )
        .expect("write");
        assert_eq!(
            bundle_cgroups_path(d.path()).as_deref(),
            Some("/old-parent/abc")
        );
    }

    #[test]
    fn no_shim_process_serves_an_unknown_dir() {
        let d = tempfile::tempdir().expect("tempdir");
        assert!(shim_processes(d.path()).is_empty());
    }

    #[test]
    fn a_lost_exit_is_dockers_255() {
        assert_eq!(lost_exit().exit_code, 255);
    }

    #[test]
    fn intents_round_trip() {
        let d = tempfile::tempdir().expect("tempdir");
        let j = Journal::new(d.path());
        let i = j
            .begin(
                REMOVE,
                "abc",
                &ContainerIntent {
                    name: "/web".into(),
                },
            )
            .expect("begin");
        drop(i);
        let p = j.pending::<ContainerIntent>(REMOVE);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].0, "abc");
        assert_eq!(p[0].1.as_ref().map(|c| c.name.as_str()), Some("/web"));
        assert!(j.pending::<ContainerIntent>(CREATE).is_empty());
    }
}
