//! One container's persisted record and its lifecycle state machine.

use serde::{Deserialize, Serialize};
use wharf_api_types::container::{ContainerConfig, Health, HostConfig};

/// Lifecycle status (Docker's `State.Status` strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Created, never started or reset.
    Created,
    /// Its init is running.
    Running,
    /// Frozen.
    Paused,
    /// Waiting to be restarted by its restart policy.
    Restarting,
    /// Being removed.
    Removing,
    /// Its init exited.
    Exited,
    /// Removal failed half-way.
    Dead,
}

impl Status {
    /// Docker's string.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }

    /// Whether `start` is allowed.
    pub fn can_start(self) -> bool {
        matches!(self, Status::Created | Status::Exited | Status::Restarting)
    }

    /// Whether a process is alive (running or paused).
    pub fn is_alive(self) -> bool {
        matches!(self, Status::Running | Status::Paused)
    }

    /// Whether `rm` without force is allowed.
    pub fn can_remove(self) -> bool {
        matches!(self, Status::Created | Status::Exited | Status::Dead)
    }
}

/// The runtime part of a container's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunState {
    /// Lifecycle status.
    pub status: Status,
    /// Init's host pid while alive.
    pub pid: i64,
    /// Last exit code.
    pub exit_code: i64,
    /// Last start error.
    #[serde(default)]
    pub error: String,
    /// RFC 3339; Docker's zero time when never started.
    pub started_at: String,
    /// RFC 3339; Docker's zero time when never finished.
    pub finished_at: String,
    /// The last exit was an OOM kill.
    #[serde(default)]
    pub oom_killed: bool,
    /// Health status when a healthcheck is configured.
    #[serde(default)]
    pub health: Option<Health>,
}

/// Go's zero `time.Time`, which Docker prints for "never".
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

impl Default for RunState {
    fn default() -> Self {
        RunState {
            status: Status::Created,
            pid: 0,
            exit_code: 0,
            error: String::new(),
            started_at: ZERO_TIME.to_string(),
            finished_at: ZERO_TIME.to_string(),
            oom_killed: false,
            health: None,
        }
    }
}

/// Everything the daemon keeps about a container (`config.v2.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Container {
    /// 64 hex.
    pub id: String,
    /// With the leading slash, as Docker shows it.
    pub name: String,
    /// RFC 3339 with nanoseconds.
    pub created: String,
    /// The resolved command: entrypoint + cmd, first element.
    pub path: String,
    /// The rest of the command.
    pub args: Vec<String>,
    /// Merged container config (user's over the image's).
    pub config: ContainerConfig,
    /// Host config as given.
    pub host_config: HostConfig,
    /// Image id ("sha256:...").
    pub image: String,
    /// The runtime name used (`HostConfig.Runtime` or the daemon default at create).
    pub runtime: String,
    /// Storage driver name.
    pub driver: String,
    /// Runtime state.
    pub state: RunState,
    /// How often the restart policy restarted it.
    #[serde(default)]
    pub restart_count: i64,
    /// Stopped by the user (unless-stopped must not restart it).
    #[serde(default)]
    pub manually_stopped: bool,
    /// Has run at least once.
    #[serde(default)]
    pub has_been_started: bool,
    /// Resolved binds, volumes and tmpfs mounts (dockerd's `MountPoints`).
    #[serde(default, rename = "MountPoints")]
    pub mount_points: Vec<wharf_volume::MountPoint>,
}

impl Container {
    /// The name without its slash.
    pub fn short_name(&self) -> &str {
        self.name.trim_start_matches('/')
    }

    /// `docker ps`'s COMMAND column value.
    pub fn command_line(&self) -> String {
        std::iter::once(self.path.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_predicates() {
        assert!(Status::Created.can_start() && Status::Exited.can_start());
        assert!(!Status::Running.can_start() && !Status::Paused.can_start());
        assert!(Status::Paused.is_alive() && !Status::Exited.is_alive());
        assert!(!Status::Running.can_remove() && Status::Dead.can_remove());
        assert_eq!(
            serde_json::to_string(&Status::Restarting).expect("ser"),
            "\"restarting\""
        );
    }
}
