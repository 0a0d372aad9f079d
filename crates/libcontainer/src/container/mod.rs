//! A container on disk (`<state root>/<id>/`) and the verbs that act on it, one file each.

mod create;
mod delete;
mod exec;
mod kill;
mod pause;
mod start;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use create::CreateOptions;
pub use exec::ExecOptions;
pub use kill::parse_signal;

use crate::error::{LibcontainerError, Result};
use crate::procfs;
use crate::state::{ContainerStatus, OciState, State};

/// The kernel's process table; the one place the runtime names /proc.
pub(crate) const PROC: &str = "/proc";

/// The fifo `start` opens to release init.
pub(crate) const EXEC_FIFO: &str = "exec.fifo";

/// A container known to the runtime.
#[derive(Debug)]
pub struct Container {
    state: State,
    dir: PathBuf,
    /// What `create` ignored of the spec (deprecated settings runc also ignores), for the
    /// caller to show; not persisted.
    warnings: Vec<String>,
}

impl Container {
    /// Loads `<state_root>/<id>` and refreshes its status from the process table.
    pub fn load(state_root: &Path, id: &str) -> Result<Container> {
        crate::spec::validate_id(id)?;
        let dir = state_root.join(id);
        if !dir.join(crate::state::STATE_FILE).exists() {
            return Err(LibcontainerError::NotFound(id.to_string()));
        }
        let state = State::load(&dir)?;
        let mut c = Container {
            state,
            dir,
            warnings: Vec::new(),
        };
        c.refresh();
        Ok(c)
    }

    /// All containers under `state_root`, sorted by id; unreadable entries are skipped.
    pub fn list(state_root: &Path) -> Result<Vec<Container>> {
        let entries = match fs::read_dir(state_root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(LibcontainerError::Io {
                    op: format!("read {}", state_root.display()),
                    source: e,
                })
            }
        };
        let mut out: Vec<Container> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| Container::load(state_root, &e.file_name().to_string_lossy()).ok())
            .collect();
        out.sort_by(|a, b| a.state.id.cmp(&b.state.id));
        Ok(out)
    }

    /// Settings of the spec `create` ignored, one sentence each.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The persisted state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The container's id.
    pub fn id(&self) -> &str {
        &self.state.id
    }

    /// Current status.
    pub fn status(&self) -> ContainerStatus {
        self.state.status
    }

    /// The OCI state document.
    pub fn oci_state(&self) -> OciState {
        self.state.oci()
    }

    /// The container's cgroup manager, if it has a cgroup.
    pub fn cgroup(&self) -> Result<Option<wharf_cgroups::Manager>> {
        self.state
            .cgroup_path
            .as_deref()
            .map(|p| crate::cgroup::manager(p, &self.state.id))
            .transpose()
    }

    /// Host pid of init.
    pub fn pid(&self) -> i32 {
        self.state.pid
    }

    fn init_alive(&self) -> bool {
        procfs::alive(Path::new(PROC), self.state.pid, self.state.pid_start_time)
    }

    /// Re-derives the status: a dead init means stopped; a created container whose fifo is
    /// gone has been started.
    pub fn refresh(&mut self) {
        let st = &mut self.state;
        if st.pid <= 0 {
            return;
        }
        if !procfs::alive(Path::new(PROC), st.pid, st.pid_start_time) {
            st.status = ContainerStatus::Stopped;
        } else if matches!(
            st.status,
            ContainerStatus::Created | ContainerStatus::Creating
        ) && !self.dir.join(EXEC_FIFO).exists()
        {
            st.status = ContainerStatus::Running;
        }
    }

    fn save(&self) -> Result<()> {
        self.state.save(&self.dir)
    }

    fn refuse(&self, op: &'static str) -> LibcontainerError {
        LibcontainerError::InvalidState {
            id: self.state.id.clone(),
            status: self.state.status.to_string(),
            op,
        }
    }

    /// Waits up to `timeout` for init to be gone.
    fn wait_gone(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.init_alive() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        true
    }
}

/// Makes the caller adopt orphaned descendants, so `run` and `exec` can wait for a container
/// process whose parent (the intermediate) has exited.
#[allow(unsafe_code)]
pub fn set_child_subreaper() -> Result<()> {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer and touches no memory.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(LibcontainerError::Sys {
            op: "PR_SET_CHILD_SUBREAPER".into(),
            source: nix::Error::last(),
        });
    }
    Ok(())
}

/// Waits for child `pid` and returns a shell-style status (code, or 128 + signal).
pub fn wait_exit(pid: i32) -> Result<i32> {
    use nix::sys::wait::{waitpid, WaitStatus};
    loop {
        match waitpid(nix::unistd::Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) | Err(nix::Error::EINTR) => continue,
            Err(e) => {
                return Err(LibcontainerError::Sys {
                    op: format!("wait for {pid}"),
                    source: e,
                })
            }
        }
    }
}
