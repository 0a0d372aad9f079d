//! `create`: fork the container's init, set it up, and leave it waiting for `start`.

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chrono::Utc;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{Container, EXEC_FIFO, PROC};
use crate::cgroup::CgroupDir;
use crate::channel::{self, Message};
use crate::error::{LibcontainerError, Result};
use crate::init::{container_init, fork_with, intermediate, write_id_maps, InitConfig};
use crate::namespaces::NamespacePlan;
use crate::process::ProcessPlan;
use crate::spec::{load_bundle, validate_id, Bundle};
use crate::state::{atomic_write, ContainerStatus, OciState, State};
use crate::{cgroup, console, hooks, procfs, rlimit};
use wharf_cgroups::Manager;

/// Inputs of `create`.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Container id (a directory name under `state_root`).
    pub id: String,
    /// Bundle directory holding config.json.
    pub bundle: PathBuf,
    /// The runtime's state root (runc's `--root`).
    pub state_root: PathBuf,
    /// Socket that receives the pty master when `process.terminal` is true.
    pub console_socket: Option<PathBuf>,
    /// Where to write init's pid.
    pub pid_file: Option<PathBuf>,
    /// Use chroot instead of pivot_root.
    pub no_pivot: bool,
    /// Extra descriptors (3..3+N) passed to the container.
    pub preserve_fds: i32,
}

/// Removes a half-created container (init, cgroup, state dir) unless disarmed.
struct Cleanup {
    dir: PathBuf,
    pid: Option<Pid>,
    cgroup: Option<Manager>,
    armed: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(pid) = self.pid {
            let _ = kill(pid, Signal::SIGKILL);
        }
        if let Some(cg) = &self.cgroup {
            let _ = cg.kill_all(libc::SIGKILL);
            // A cgroup can only be removed once its tasks have exited.
            for _ in 0..1000 {
                if cg.pids().map(|p| p.is_empty()).unwrap_or(true) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            let _ = cg.destroy();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl CreateOptions {
    /// Creates the container; on return init waits in the new namespaces for `start`.
    pub fn create(&self) -> Result<Container> {
        validate_id(&self.id)?;
        let bundle = load_bundle(&self.bundle)?;
        let process = bundle
            .spec
            .process()
            .clone()
            .ok_or_else(|| LibcontainerError::InvalidSpec("no process".into()))?;
        rlimit::check(process.rlimits().as_deref().unwrap_or_default())?;
        if process.terminal().unwrap_or(false) && self.console_socket.is_none() {
            return Err(LibcontainerError::InvalidSpec(
                "process.terminal is true but no --console-socket was given".into(),
            ));
        }
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.state_root)
            .map_err(LibcontainerError::io(format!(
                "create state root {}",
                self.state_root.display()
            )))?;
        let dir = self.state_root.join(&self.id);
        match fs::DirBuilder::new().mode(0o711).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(LibcontainerError::AlreadyExists(self.id.clone()))
            }
            Err(e) => {
                return Err(LibcontainerError::Io {
                    op: format!("create {}", dir.display()),
                    source: e,
                })
            }
        }
        let mut cleanup = Cleanup {
            dir: dir.clone(),
            pid: None,
            cgroup: None,
            armed: true,
        };
        let fifo = dir.join(EXEC_FIFO);
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o622))
            .map_err(LibcontainerError::sys("mkfifo exec.fifo"))?;
        // Writable by whatever uid init ends up as, regardless of our umask.
        fs::set_permissions(&fifo, fs::Permissions::from_mode(0o622))
            .map_err(LibcontainerError::io("chmod exec.fifo"))?;
        let terminal = process.terminal().unwrap_or(false);
        let console = match (&self.console_socket, terminal) {
            (Some(p), true) => Some(console::connect(p)?),
            _ => None,
        };
        let linux = bundle.spec.linux().as_ref();
        let plan = NamespacePlan::from_spec(
            linux
                .and_then(|l| l.namespaces().as_deref())
                .unwrap_or_default(),
        );
        let mut state = State {
            oci_version: bundle.spec.version().clone(),
            id: self.id.clone(),
            status: ContainerStatus::Creating,
            pid: 0,
            pid_start_time: 0,
            bundle: bundle.path.clone(),
            rootfs: bundle.rootfs.clone(),
            created: Utc::now(),
            annotations: bundle.spec.annotations().clone().unwrap_or_default(),
            cgroup_path: Some(cgroup::path_of(&bundle.spec)),
            hooks: bundle.spec.hooks().clone(),
        };
        let cfg = InitConfig {
            state: state.oci(),
            bundle: &bundle,
            fifo: rustix::fs::open(
                &fifo,
                rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(|e| crate::fsroot::sys("open exec fifo", e))?,
            console,
            no_pivot: self.no_pivot,
            process: ProcessPlan {
                process,
                seccomp: linux
                    .and_then(|l| l.seccomp().as_ref())
                    .map(wharf_seccomp::compile)
                    .transpose()?,
                preserve_fds: self.preserve_fds,
            },
        };
        let resources = cgroup::resources_of(&bundle.spec);
        let cgroup_path = state.cgroup_path.clone().unwrap_or_default();
        let runtime_hooks = |pid: Pid| {
            let oci = OciState {
                pid: Some(pid.as_raw()),
                ..state.oci()
            };
            hooks::run_runtime_hooks(state.hooks.as_ref(), &oci)
        };
        let (cg, dirs) = cgroup::create(&cgroup_path, &self.id)?;
        let cg = &*cleanup.cgroup.insert(cg);
        // Limits go on the empty cgroup: init mounts and makes device nodes while it is moved
        // in, so rules written after the move (a device list being rebuilt) would race it.
        if let Some(r) = &resources {
            cg.apply_resources(r)?;
        }
        let pid = spawn(&bundle, &plan, cfg, dirs, runtime_hooks, |pid| {
            cleanup.pid = Some(pid);
            Ok(cg.add_process(pid.as_raw())?)
        })?;
        let (_, start_time) = procfs::stat(Path::new(PROC), pid.as_raw())
            .ok_or_else(|| LibcontainerError::Init("init exited during setup".into()))?;
        state.status = ContainerStatus::Created;
        state.pid = pid.as_raw();
        state.pid_start_time = start_time;
        let container = Container {
            state,
            dir,
            warnings: resources
                .as_ref()
                .map(wharf_cgroups::ignored_settings)
                .unwrap_or_default(),
        };
        container.save()?;
        if let Some(pf) = &self.pid_file {
            atomic_write(pf, pid.as_raw().to_string().as_bytes())?;
        }
        cleanup.armed = false;
        Ok(container)
    }
}

/// Forks the intermediate and drives the setup conversation until init is ready. Init starts
/// mounting (binding the cgroup `dirs`) while `join_cgroup` places it in its cgroup; it waits
/// for that before anything runs. `run_hooks` runs the runtime's hooks when init asks (its
/// mounts exist, pivot_root has not happened).
fn spawn(
    bundle: &Bundle,
    plan: &NamespacePlan,
    cfg: InitConfig<'_>,
    dirs: Vec<CgroupDir>,
    run_hooks: impl Fn(Pid) -> Result<()>,
    join_cgroup: impl FnOnce(Pid) -> Result<()>,
) -> Result<Pid> {
    let (parent, child) = channel::pair()?;
    let mut keep = vec![child.raw(), cfg.fifo.as_raw_fd()];
    keep.extend(cfg.console.as_ref().map(|c| c.as_raw_fd()));
    keep.extend(3..3 + cfg.process.preserve_fds.max(0));
    let intermediate_pid = fork_with(&child, || {
        intermediate(plan, &child, &keep, || container_init(cfg, &child))
    })?;
    drop(child);
    let result = (|| {
        let pid = loop {
            match parent.expect("the container pid")? {
                Message::NeedIdMaps => {
                    write_id_maps(Path::new(PROC), intermediate_pid, bundle)?;
                    parent.send(&Message::IdMapsWritten)?;
                }
                Message::Pid(p) => break Pid::from_raw(p),
                m => {
                    return Err(LibcontainerError::Init(format!(
                        "unexpected {m:?} from the intermediate"
                    )))
                }
            }
        };
        Ok(pid)
    })();
    let _ = nix::sys::wait::waitpid(intermediate_pid, None);
    let pid = result?;
    // Init runs on while we work: when a step of ours fails because init died (a cgroup
    // write ESRCH, a send EPIPE), init's own report is the cause to give.
    (|| {
        parent.send(&Message::Proceed(dirs))?;
        join_cgroup(pid)?;
        parent.send(&Message::CgroupJoined)?;
        loop {
            match parent.expect("init to finish setup")? {
                Message::Ready => return Ok(pid),
                Message::RunHooks => {
                    run_hooks(pid)?;
                    parent.send(&Message::HooksDone)?;
                }
                m => {
                    return Err(LibcontainerError::Init(format!(
                        "unexpected {m:?} while init finished setup"
                    )))
                }
            }
        }
    })()
    .map_err(|e| parent.queued_failure().unwrap_or(e))
}
