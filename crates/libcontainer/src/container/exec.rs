//! `exec`: start another process inside a created or running container.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, Process};

use super::{Container, PROC};
use crate::channel::{self, Message};
use crate::error::{LibcontainerError, Result};
use crate::init::fork_with;
use crate::namespaces::{join_all, proc_name};
use crate::process::ProcessPlan;
use crate::state::atomic_write;
use crate::{console, spec};

/// Inputs of `exec`.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// The process to run (runc builds it from `--process` or from args plus the spec).
    pub process: Process,
    /// Socket that receives the pty master when `process.terminal` is true.
    pub console_socket: Option<PathBuf>,
    /// Where to write the new process's pid.
    pub pid_file: Option<PathBuf>,
    /// Extra descriptors (3..3+N) passed to the process.
    pub preserve_fds: i32,
}

/// Namespace types in the order they must be entered: user first (it grants the rights for
/// the rest), mount last among those that change paths.
const JOIN_ORDER: [LinuxNamespaceType; 8] = [
    LinuxNamespaceType::User,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::Time,
    LinuxNamespaceType::Mount,
];

/// Opens init's namespaces that differ from ours.
fn open_namespaces(proc: &Path, pid: i32) -> Result<Vec<(LinuxNamespaceType, OwnedFd)>> {
    let mut out = Vec::new();
    for t in JOIN_ORDER {
        let theirs = proc.join(pid.to_string()).join("ns").join(proc_name(t));
        let ours = proc.join("self/ns").join(proc_name(t));
        let (Ok(a), Ok(b)) = (std::fs::metadata(&theirs), std::fs::metadata(&ours)) else {
            continue;
        };
        if std::os::unix::fs::MetadataExt::ino(&a) != std::os::unix::fs::MetadataExt::ino(&b) {
            let f = std::fs::File::open(&theirs)
                .map_err(LibcontainerError::io(format!("open {}", theirs.display())))?;
            out.push((t, OwnedFd::from(f)));
        }
    }
    Ok(out)
}

impl Container {
    /// The spec's process with `args` in place of its own (runc `exec ID ARGS...`).
    pub fn default_exec_process(&self, args: Vec<String>) -> Result<Process> {
        let bundle = spec::load_bundle(&self.state.bundle)?;
        let mut p = bundle.spec.process().clone().unwrap_or_default();
        p.set_args(Some(args));
        p.set_terminal(Some(false));
        Ok(p)
    }

    /// Starts the process and returns its host pid once it has exec'd. To wait for it, call
    /// [`super::set_child_subreaper`] first: its parent, an intermediate, exits at once.
    pub fn exec(&self, opts: &ExecOptions) -> Result<i32> {
        if !self.status().can_exec() {
            return Err(self.refuse("exec"));
        }
        let args = opts.process.args().as_deref().unwrap_or_default();
        if args.is_empty() {
            return Err(LibcontainerError::InvalidSpec(
                "exec needs a command".into(),
            ));
        }
        let terminal = opts.process.terminal().unwrap_or(false);
        let console = match (&opts.console_socket, terminal) {
            (Some(p), true) => Some(console::connect(p)?),
            (None, true) => {
                return Err(LibcontainerError::InvalidSpec(
                    "--tty needs --console-socket".into(),
                ))
            }
            _ => None,
        };
        let bundle = spec::load_bundle(&self.state.bundle)?;
        let seccomp = bundle
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.seccomp().as_ref())
            .map(wharf_seccomp::compile)
            .transpose()?;
        let plan = ProcessPlan {
            process: opts.process.clone(),
            seccomp,
            preserve_fds: opts.preserve_fds,
        };
        let ns = open_namespaces(Path::new(PROC), self.pid())?;
        let (parent, child) = channel::pair()?;
        let mut keep: Vec<i32> = ns.iter().map(|(_, fd)| fd.as_raw_fd()).collect();
        keep.push(child.raw());
        keep.extend(console.as_ref().map(|c| c.as_raw_fd()));
        keep.extend(3..3 + opts.preserve_fds.max(0));
        let tenant = || -> Result<()> {
            crate::process::close_fds_except(&keep)?;
            join_all(&ns)?;
            let pid = fork_with(&child, || {
                child.wait_for_proceed()?;
                if let Some(sock) = &console {
                    console::setup(sock, plan.process.user().uid())?;
                }
                let exec = plan.apply()?;
                child.send(&Message::Ready)?;
                Err(exec.exec())
            })?;
            child.send(&Message::Pid(pid.as_raw()))
        };
        let intermediate = fork_with(&child, tenant)?;
        drop(child);
        let pid = parent.wait_for_pid();
        let _ = nix::sys::wait::waitpid(intermediate, None);
        let pid = pid?;
        if let Some(cg) = self.cgroup()? {
            if let Err(e) = cg.add_process(pid) {
                let _ =
                    nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
                return Err(e.into());
            }
        }
        parent.send(&Message::Proceed(Vec::new()))?;
        let outcome = parent
            .wait_for(&Message::Ready, "the process to finish setup")
            .and_then(|()| match parent.recv()? {
                // End of stream: the close-on-exec channel vanished in a successful execve.
                None => Ok(()),
                Some(Message::Failed(m)) => Err(LibcontainerError::Init(m)),
                Some(m) => Err(LibcontainerError::Init(format!(
                    "unexpected {m:?} after ready"
                ))),
            });
        if let Err(e) = outcome {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            return Err(e);
        }
        if let Some(pf) = &opts.pid_file {
            atomic_write(pf, pid.to_string().as_bytes())?;
        }
        Ok(pid)
    }
}
