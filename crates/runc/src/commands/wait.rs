//! Waiting for a container process while passing on the signals the caller receives.

use anyhow::{Context, Result};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// Blocks the usual job-control signals, forwards them to `pid`, and reaps children (we are
/// their subreaper) until `pid` exits. Returns its status shell-style (code or 128+signal).
/// Call only after every container process is forked: the mask would be inherited.
pub fn wait_forwarding(pid: i32) -> Result<i32> {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
        Signal::SIGCHLD,
    ] {
        set.add(s);
    }
    set.thread_block().context("block signals")?;
    let target = Pid::from_raw(pid);
    loop {
        loop {
            match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, code)) if p == target => return Ok(code),
                Ok(WaitStatus::Signaled(p, sig, _)) if p == target => return Ok(128 + sig as i32),
                Ok(WaitStatus::StillAlive) => break,
                Ok(_) | Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(e).with_context(|| format!("wait for process {pid}")),
            }
        }
        let sig = set.wait().context("wait for signals")?;
        if sig != Signal::SIGCHLD {
            let _ = kill(target, sig);
        }
    }
}
