//! `wharf-init`: the init process `docker run --init` puts in front of the command, bind-mounted
//! as `/sbin/docker-init`. It runs as pid 1 inside images without a libc, so it is linked
//! statically (the workspace links every binary with `+crt-static`).
//!
//! Usage: `wharf-init [--] CMD [ARGS...]`. It spawns CMD in its own process group, forwards
//! every catchable signal to it, reaps every child (orphans re-parent to pid 1), and exits with
//! CMD's exit code, or 128 + signal when CMD was killed by a signal.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::process::exit;

use nix::errno::Errno;
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{execvp, fork, getpgrp, isatty, setpgid, tcsetpgrp, ForkResult, Pid};

/// Synchronous signals are about this process's own faults, and the tty job-control ones would
/// stop init; neither is forwarded (tini's rule).
const NOT_FORWARDED: [Signal; 9] = [
    Signal::SIGFPE,
    Signal::SIGILL,
    Signal::SIGSEGV,
    Signal::SIGBUS,
    Signal::SIGABRT,
    Signal::SIGTRAP,
    Signal::SIGSYS,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
];

fn main() {
    let mut args: Vec<CString> = Vec::new();
    for (i, a) in std::env::args_os().skip(1).enumerate() {
        if i == 0 && a == "--" {
            continue;
        }
        match CString::new(a.as_bytes()) {
            Ok(c) => args.push(c),
            Err(_) => fail("argument contains a NUL byte", 2),
        }
    }
    if args.is_empty() {
        fail("usage: wharf-init [--] CMD [ARGS...]", 2);
    }
    exit(run(&args));
}

fn fail(msg: &str, code: i32) -> ! {
    eprintln!("wharf-init: {msg}");
    exit(code)
}

fn waited_signals() -> SigSet {
    let mut set = SigSet::all();
    for s in NOT_FORWARDED {
        set.remove(s);
    }
    set
}

fn run(args: &[CString]) -> i32 {
    let waited = waited_signals();
    let mut old = SigSet::empty();
    if let Err(e) =
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&waited), Some(&mut old))
    {
        fail(&format!("blocking signals: {e}"), 1);
    }
    if std::process::id() != 1 {
        // Not pid 1 (e.g. run by hand): orphans must still come to us to be reaped.
        let _ = nix::sys::prctl::set_child_subreaper(true);
    }
    // SAFETY: this process is single-threaded (no threads were started), so the child may run
    // arbitrary code after fork; it only calls async-signal-safe functions before exec anyway.
    let child = match unsafe { fork() } {
        Ok(ForkResult::Child) => exec_child(args, &old),
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => fail(&format!("fork: {e}"), 1),
    };
    supervise(child, &waited)
}

fn exec_child(args: &[CString], old_mask: &SigSet) -> ! {
    // Own process group, made the terminal's foreground group, so ^C on a tty reaches the
    // command; done while signals are still blocked so SIGTTOU cannot stop us.
    let _ = setpgid(Pid::from_raw(0), Pid::from_raw(0));
    if isatty(std::io::stdin()).unwrap_or(false) {
        let _ = tcsetpgrp(std::io::stdin(), getpgrp());
    }
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(old_mask), None);
    let err = match execvp(&args[0], args) {
        Err(e) => e,
        Ok(never) => match never {},
    };
    let name = args[0].to_string_lossy();
    // Shell conventions: 127 = not found, 126 = found but not executable.
    let code = if err == Errno::ENOENT { 127 } else { 126 };
    fail(&format!("exec {name}: {err}"), code)
}

/// Waits for signals: forwards them to the child, reaps on SIGCHLD, returns the exit code once
/// the direct child is gone.
fn supervise(child: Pid, waited: &SigSet) -> i32 {
    loop {
        let sig = match waited.wait() {
            Ok(s) => s,
            Err(_) => continue,
        };
        if sig != Signal::SIGCHLD {
            let _ = kill(child, sig);
            continue;
        }
        if let Some(code) = reap_all(child) {
            return code;
        }
    }
}

/// Reaps every exited child; returns the exit code if `child` was among them.
fn reap_all(child: Pid) -> Option<i32> {
    let mut result = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == child => result = Some(code),
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == child => {
                result = Some(128 + sig as i32)
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return result,
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_control_and_fault_signals_are_not_waited_for() {
        let set = waited_signals();
        assert!(set.contains(Signal::SIGTERM));
        assert!(set.contains(Signal::SIGCHLD));
        assert!(set.contains(Signal::SIGINT));
        assert!(!set.contains(Signal::SIGTTOU));
        assert!(!set.contains(Signal::SIGSEGV));
    }
}
