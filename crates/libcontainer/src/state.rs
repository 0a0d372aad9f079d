//! Container lifecycle states and the persisted `state.json`.
//!
//! `state.json` lives in `<state root>/<id>/` and is always replaced atomically (temp file,
//! rename), so a crash leaves either the old or the new state, never a torn file.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{LibcontainerError, Result};

/// Name of the state file inside a container's directory.
pub const STATE_FILE: &str = "state.json";

/// Lifecycle of a container: `creating → created → running ⇄ paused → stopped`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerStatus {
    /// The init process is being set up.
    Creating,
    /// Init is waiting for `start`.
    Created,
    /// The user process runs.
    Running,
    /// All processes are frozen.
    Paused,
    /// The init process has exited.
    Stopped,
}

impl ContainerStatus {
    /// `start` only releases a created container.
    pub fn can_start(self) -> bool {
        self == ContainerStatus::Created
    }
    /// Signals go to any container with a live init.
    pub fn can_kill(self) -> bool {
        matches!(
            self,
            ContainerStatus::Created | ContainerStatus::Running | ContainerStatus::Paused
        )
    }
    /// Without `--force`, a container can be deleted once stopped, or before it ever ran (as runc).
    pub fn can_delete(self) -> bool {
        matches!(
            self,
            ContainerStatus::Stopped | ContainerStatus::Created | ContainerStatus::Creating
        )
    }
    /// New processes can join a created or running container.
    pub fn can_exec(self) -> bool {
        matches!(self, ContainerStatus::Created | ContainerStatus::Running)
    }
    /// Only a running container can be frozen.
    pub fn can_pause(self) -> bool {
        self == ContainerStatus::Running
    }
    /// Only a paused container can be thawed.
    pub fn can_resume(self) -> bool {
        self == ContainerStatus::Paused
    }
}

impl std::fmt::Display for ContainerStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            ContainerStatus::Creating => "creating",
            ContainerStatus::Created => "created",
            ContainerStatus::Running => "running",
            ContainerStatus::Paused => "paused",
            ContainerStatus::Stopped => "stopped",
        };
        f.write_str(s)
    }
}

/// What the runtime remembers about a container between invocations.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    /// OCI runtime spec version of the bundle.
    pub oci_version: String,
    /// Container id.
    pub id: String,
    /// Last known status; refreshed from the process table by [`crate::Container::refresh`].
    pub status: ContainerStatus,
    /// Host pid of the container's init (0 before it exists).
    pub pid: i32,
    /// Start time of init in clock ticks since boot, to detect pid reuse.
    pub pid_start_time: u64,
    /// Absolute bundle path.
    pub bundle: PathBuf,
    /// Absolute rootfs path.
    pub rootfs: PathBuf,
    /// When `create` ran.
    pub created: DateTime<Utc>,
    /// The spec's annotations.
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    /// The cgroup path relative to each hierarchy root, if the container has a cgroup.
    #[serde(default)]
    pub cgroup_path: Option<String>,
    /// Hooks from the spec, kept because `delete` must run poststop even if the bundle changed.
    #[serde(default)]
    pub hooks: Option<oci_spec::runtime::Hooks>,
}

/// The OCI `state` document (what `wharf-runtime state` prints and hooks read on stdin).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState {
    /// OCI runtime spec version.
    pub oci_version: String,
    /// Container id.
    pub id: String,
    /// Status string.
    pub status: ContainerStatus,
    /// Init pid; omitted once stopped, like runc.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// Bundle path.
    pub bundle: PathBuf,
    /// Rootfs path (runc extension).
    pub rootfs: PathBuf,
    /// Creation time (runc extension).
    pub created: DateTime<Utc>,
    /// Annotations.
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}

impl State {
    /// The OCI view of this state.
    pub fn oci(&self) -> OciState {
        OciState {
            oci_version: self.oci_version.clone(),
            id: self.id.clone(),
            status: self.status,
            pid: (self.status != ContainerStatus::Stopped && self.pid > 0).then_some(self.pid),
            bundle: self.bundle.clone(),
            rootfs: self.rootfs.clone(),
            created: self.created,
            annotations: self.annotations.clone(),
        }
    }

    /// Reads `<dir>/state.json`.
    pub fn load(dir: &Path) -> Result<State> {
        let path = dir.join(STATE_FILE);
        let data =
            fs::read(&path).map_err(LibcontainerError::io(format!("read {}", path.display())))?;
        serde_json::from_slice(&data).map_err(|e| LibcontainerError::Io {
            op: format!("parse {}", path.display()),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })
    }

    /// Atomically replaces `<dir>/state.json`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let data = serde_json::to_vec(self).map_err(|e| LibcontainerError::Io {
            op: "serialize state".into(),
            source: std::io::Error::other(e),
        })?;
        atomic_write(&dir.join(STATE_FILE), &data)
    }
}

/// Writes `data` to a temp file beside `path` and renames it over `path`. No fsync (as runc):
/// this state describes processes that a power loss kills anyway, and on a disk-backed state
/// root two fsyncs per write were the slowest part of create and start.
pub fn atomic_write(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let op = || format!("write {}", path.display());
    let write = || -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(data)?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        LibcontainerError::Io {
            op: op(),
            source: e,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions() {
        use ContainerStatus::*;
        assert!(Created.can_start());
        assert!(!Running.can_start());
        assert!(!Stopped.can_kill());
        assert!(Paused.can_kill());
        assert!(!Running.can_delete());
        assert!(Stopped.can_delete());
        assert!(Running.can_pause() && !Paused.can_pause());
        assert!(Paused.can_resume() && !Running.can_resume());
        assert!(!Stopped.can_exec());
    }

    #[test]
    fn save_load_round_trip_and_oci_view() {
        let dir = tempfile::tempdir().expect("tempdir");
        let st = State {
            oci_version: "1.0.2".into(),
            id: "c1".into(),
            status: ContainerStatus::Stopped,
            pid: 42,
            pid_start_time: 7,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: Utc::now(),
            annotations: HashMap::new(),
            cgroup_path: Some("/wharf/c1".into()),
            hooks: None,
        };
        st.save(dir.path()).expect("save");
        let back = State::load(dir.path()).expect("load");
        assert_eq!(back.pid, 42);
        assert_eq!(back.cgroup_path.as_deref(), Some("/wharf/c1"));
        let json = serde_json::to_value(back.oci()).expect("json");
        assert_eq!(json["status"], "stopped");
        assert!(
            json.get("pid").is_none(),
            "stopped containers report no pid"
        );
        assert_eq!(json["ociVersion"], "1.0.2");
    }
}
