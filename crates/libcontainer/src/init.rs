//! The processes the runtime forks: an intermediate that enters/creates namespaces, and the
//! container process itself (init for `create`, a tenant for `exec`).
//!
//! ```text
//! runtime ──fork──▶ intermediate: setns(joined), unshare(user) ⇄ id maps, unshare(rest)
//!                     └─fork──▶ container process (pid 1 of a new pid ns); intermediate exits
//! ```
//! The intermediate is needed because a new pid or time namespace only applies to children.

use std::convert::Infallible;
use std::fs::File;
use std::io::Write;
use std::os::fd::{OwnedFd, RawFd};
use std::path::Path;

use nix::sched::CloneFlags;
use nix::unistd::{ForkResult, Gid, Pid, Uid};
use oci_spec::runtime::LinuxNamespaceType;
use rustix::fs::{Mode, OFlags};

use crate::channel::{Channel, Message};
use crate::error::{LibcontainerError, Result};
use crate::fsroot::{fd_path, sys};
use crate::namespaces::{join_all, NamespacePlan};
use crate::process::ProcessPlan;
use crate::spec::Bundle;
use crate::state::{ContainerStatus, OciState};
use crate::{console, hooks, rootfs};

/// What the container init process needs.
#[derive(Debug)]
pub struct InitConfig<'a> {
    /// The validated bundle.
    pub bundle: &'a Bundle,
    /// O_PATH handle on `<state>/<id>/exec.fifo`, which `start` opens. Opened by the runtime:
    /// the state dir may be unreachable for init's (user-namespaced) credentials.
    pub fifo: OwnedFd,
    /// Connected console socket when the process wants a terminal.
    pub console: Option<OwnedFd>,
    /// chroot instead of pivot_root.
    pub no_pivot: bool,
    /// The process to run.
    pub process: ProcessPlan,
    /// The container's OCI state for the hooks init runs (status and pid are set then).
    pub state: OciState,
}

/// Forks `f` in a child that reports its error on `chan` and exits; returns the child pid.
#[allow(unsafe_code)]
pub fn fork_with(chan: &Channel, f: impl FnOnce() -> Result<()>) -> Result<Pid> {
    // SAFETY: the runtime is single-threaded when it forks (no tokio, no helper threads), so
    // the child may run arbitrary code; it leaves through _exit and never returns.
    match unsafe { nix::unistd::fork() }.map_err(LibcontainerError::sys("fork"))? {
        ForkResult::Parent { child } => Ok(child),
        ForkResult::Child => {
            let code = match f() {
                Ok(()) => 0,
                Err(e) => {
                    chan.report_failure(&e);
                    1
                }
            };
            // SAFETY: _exit skips atexit handlers and stdio flushing that belong to the parent.
            unsafe { libc::_exit(code) }
        }
    }
}

/// Intermediate for `create`: namespaces, then forks init and reports its pid.
pub fn intermediate(
    plan: &NamespacePlan,
    chan: &Channel,
    keep: &[RawFd],
    init: impl FnOnce() -> Result<Infallible>,
) -> Result<()> {
    crate::process::close_fds_except(keep)?;
    let fds = plan.open_joins()?;
    join_all(&fds)?;
    drop(fds);
    if plan.new_user() {
        nix::sched::unshare(CloneFlags::CLONE_NEWUSER)
            .map_err(LibcontainerError::sys("unshare user namespace"))?;
        chan.send(&Message::NeedIdMaps)?;
        chan.wait_for(&Message::IdMapsWritten, "id maps")?;
        become_root()?;
    }
    // A cgroup namespace is rooted where its creator sits: init makes it once it has joined
    // the container's cgroup (as runc does).
    let rest = plan.new - CloneFlags::CLONE_NEWUSER - CloneFlags::CLONE_NEWCGROUP;
    nix::sched::unshare(rest).map_err(LibcontainerError::sys(format!(
        "unshare namespaces {rest:?}"
    )))?;
    let pid = fork_with(chan, || init().map(|_| ()))?;
    chan.send(&Message::Pid(pid.as_raw()))
}

/// Takes uid/gid 0 in a user namespace the process just entered.
pub fn become_root() -> Result<()> {
    nix::unistd::setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
        .map_err(LibcontainerError::sys("setgid 0 in user namespace"))?;
    nix::unistd::setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
        .map_err(LibcontainerError::sys("setuid 0 in user namespace"))
}

/// Writes the id maps of a process that unshared a user namespace.
pub fn write_id_maps(proc: &Path, pid: Pid, bundle: &Bundle) -> Result<()> {
    let linux = bundle.spec.linux().as_ref();
    let fmt = |maps: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>| {
        maps.into_iter()
            .flatten()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect::<String>()
    };
    let dir = proc.join(pid.as_raw().to_string());
    for (file, data) in [
        (
            "uid_map",
            fmt(linux.and_then(|l| l.uid_mappings().as_ref())),
        ),
        (
            "gid_map",
            fmt(linux.and_then(|l| l.gid_mappings().as_ref())),
        ),
    ] {
        std::fs::write(dir.join(file), data)
            .map_err(LibcontainerError::io(format!("write {file}")))?;
    }
    Ok(())
}

/// The container's init: builds the rootfs, drops privileges, waits for `start`, execs.
pub fn container_init(cfg: InitConfig<'_>, chan: &Channel) -> Result<Infallible> {
    let cgroups = chan.wait_for_proceed()?;
    // Mode bits of created nodes and directories must be exactly the spec's.
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    let spec = &cfg.bundle.spec;
    let plan = NamespacePlan::from_spec(
        spec.linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_deref())
            .unwrap_or_default(),
    );
    // Without one we mount in the caller's namespace and chroot (validated in `spec`).
    let own_mounts = plan.has(LinuxNamespaceType::Mount);
    // Opened while the state dir is still reachable; reopened for writing via /proc/self/fd.
    let in_userns = plan.has(LinuxNamespaceType::User);
    let new_cgroupns = plan.new.contains(CloneFlags::CLONE_NEWCGROUP);
    if new_cgroupns {
        // The namespace and the cgroup mounts in it must be rooted at our own cgroup.
        chan.wait_for(&Message::CgroupJoined, "the cgroup")?;
        nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP)
            .map_err(LibcontainerError::sys("unshare cgroup namespace"))?;
    }
    rootfs::prepare(
        spec,
        &cfg.bundle.rootfs,
        &cfg.bundle.path,
        in_userns,
        own_mounts,
        &cgroups,
    )?;
    if !new_cgroupns {
        // The runtime moved us into the cgroup while we mounted (a cgroup migration waits for
        // an RCU grace period, the longest step of create); nothing we fork or exec may run outside.
        chan.wait_for(&Message::CgroupJoined, "the cgroup")?;
    }
    // Hooks run with the old root still reachable, so they can manipulate mounts (as runc).
    let spec_hooks = spec.hooks().as_ref();
    if hooks::has_runtime_hooks(spec_hooks) {
        chan.send(&Message::RunHooks)?;
        chan.wait_for(&Message::HooksDone, "the prestart and createRuntime hooks")?;
    }
    let create_hooks = spec_hooks.and_then(|h| h.create_container().as_ref());
    hooks::run(
        "createContainer",
        create_hooks,
        &hook_state(&cfg.state, ContainerStatus::Creating),
    )?;
    let switch = match (own_mounts, cfg.no_pivot) {
        (false, _) => rootfs::RootSwitch::Chroot,
        (true, true) => rootfs::RootSwitch::MoveRoot,
        (true, false) => rootfs::RootSwitch::PivotRoot,
    };
    rootfs::pivot(&cfg.bundle.rootfs, switch)?;
    // Before finish(): a read-only root would refuse the directory.
    cfg.process.ensure_cwd()?;
    rootfs::finish(spec, own_mounts)?;
    if plan.new.contains(CloneFlags::CLONE_NEWUTS) {
        set_names(spec.hostname().as_deref(), spec.domainname().as_deref())?;
    }
    if let Some(sock) = &cfg.console {
        console::setup(sock, cfg.process.process.user().uid())?;
    }
    drop(cfg.console);
    let exec = cfg.process.apply()?;
    chan.send(&Message::Ready)?;
    let mut start = wait_for_start(&fd_path(&cfg.fifo))?;
    let start_hooks = spec_hooks.and_then(|h| h.start_container().as_ref());
    let started = hooks::run(
        "startContainer",
        start_hooks,
        &hook_state(&cfg.state, ContainerStatus::Created),
    );
    report_start(&mut start, started.as_ref().err())?;
    started?;
    Err(exec.exec())
}

/// The state hooks inside the container read: `pid` as the container sees itself (as runc).
fn hook_state(state: &OciState, status: ContainerStatus) -> OciState {
    OciState {
        status,
        pid: Some(nix::unistd::getpid().as_raw()),
        ..state.clone()
    }
}

/// Blocks until `start` opens the fifo's read side; returns the write side.
fn wait_for_start(fifo: &Path) -> Result<File> {
    let fd = rustix::fs::open(fifo, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| sys("open exec fifo for start", e))?;
    Ok(File::from(fd))
}

/// Tells `start` the outcome of its part: [`START_OK`] when the process is about to exec,
/// otherwise the error text, which `start` reports.
fn report_start(fifo: &mut File, failed: Option<&LibcontainerError>) -> Result<()> {
    let msg = failed.map_or_else(
        || START_OK.to_vec(),
        |e| format!("{START_FAILED}{e}").into_bytes(),
    );
    fifo.write_all(&msg)
        .map_err(LibcontainerError::io("write exec fifo"))
}

/// First byte init writes to the exec fifo when the user process is about to be exec'd.
pub const START_OK: &[u8; 1] = b"0";

/// Prefix of what init writes to the exec fifo when the startContainer hooks failed.
pub const START_FAILED: char = '!';

#[allow(unsafe_code)]
fn set_names(hostname: Option<&str>, domainname: Option<&str>) -> Result<()> {
    if let Some(h) = hostname.filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(h).map_err(LibcontainerError::sys("sethostname"))?;
    }
    if let Some(d) = domainname.filter(|d| !d.is_empty()) {
        // SAFETY: the pointer and length describe the live `d` buffer.
        if unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) } != 0 {
            return Err(LibcontainerError::Sys {
                op: "setdomainname".into(),
                source: nix::Error::last(),
            });
        }
    }
    Ok(())
}
