//! Detaching from the launching process (the daemon): double fork with `setsid` so the shim is
//! in its own session and process group, not a child of the daemon, with stdio on /dev/null and
//! no inherited fds. The launcher waits on a pipe until the shim reports ready or failed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::wait::waitpid;
use nix::unistd::{fork, setsid, ForkResult, Pid};
use rustix::pipe::{pipe_with, PipeFlags};

/// Which side of the fork this process is.
#[derive(Debug)]
pub enum Role {
    /// The original process: wait for the outcome and exit with it.
    Launcher(Launcher),
    /// The detached shim: report readiness through [`Ready`].
    Shim(Ready),
}

/// The launching side of the readiness pipe.
#[derive(Debug)]
pub struct Launcher {
    pipe: File,
    child: Pid,
}

/// The shim's side of the readiness pipe.
#[derive(Debug)]
pub struct Ready {
    pipe: File,
}

const OK: &str = "ok\n";
const ERR: &str = "err ";

impl Launcher {
    /// Blocks until the shim reported; `Err` carries its one-line error.
    pub fn outcome(mut self) -> Result<(), String> {
        let mut report = String::new();
        let read = self.pipe.read_to_string(&mut report);
        // Reap the intermediate child (it exits right after the second fork).
        let _ = waitpid(self.child, None);
        match read {
            Ok(_) if report == OK => Ok(()),
            Ok(_) => match report.strip_prefix(ERR) {
                Some(msg) => Err(msg.trim().to_string()),
                None => Err("wharf-shim died during start-up".into()),
            },
            Err(e) => Err(format!("reading the shim's start-up report: {e}")),
        }
    }
}

impl Ready {
    /// Tells the launcher that the shim is serving.
    pub fn ok(mut self) {
        let _ = self.pipe.write_all(OK.as_bytes());
    }

    /// Tells the launcher that start-up failed, with one line of explanation.
    pub fn fail(mut self, message: &str) {
        let line = message.replace('\n', " ");
        let _ = self.pipe.write_all(format!("{ERR}{line}\n").as_bytes());
    }
}

/// Forks the detached shim. Must be called while the process is single-threaded.
pub fn detach() -> io::Result<Role> {
    let (r, w) = pipe_with(PipeFlags::CLOEXEC)?;
    // SAFETY: the shim has not started any thread yet, so the child may run arbitrary code.
    match unsafe { fork() }? {
        ForkResult::Parent { child } => {
            drop(w);
            return Ok(Role::Launcher(Launcher {
                pipe: File::from(r),
                child,
            }));
        }
        ForkResult::Child => {}
    }
    drop(r);
    setsid()?;
    // SAFETY: still single-threaded (fork copies only the calling thread).
    if let ForkResult::Parent { .. } = unsafe { fork() }? {
        // The session leader leaves so the shim can never reacquire a controlling terminal and
        // is reparented away from the daemon.
        // SAFETY: _exit skips atexit handlers and destructors, which belong to the launcher.
        unsafe { libc::_exit(0) };
    }
    null_stdio()?;
    close_inherited_fds(&w);
    std::env::set_current_dir("/")?;
    Ok(Role::Shim(Ready {
        pipe: File::from(w),
    }))
}

fn null_stdio() -> io::Result<()> {
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    nix::unistd::dup2_stdin(&null)?;
    nix::unistd::dup2_stdout(&null)?;
    nix::unistd::dup2_stderr(&null)?;
    Ok(())
}

/// Closes every fd above stderr except `keep`: the daemon's pipes and sockets must not be held
/// open by a long-lived shim (a caller waiting for EOF on them would hang).
fn close_inherited_fds(keep: &OwnedFd) {
    let fds: Vec<i32> = match fs::read_dir("/proc/self/fd") {
        Ok(dir) => dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect(),
        Err(_) => return,
    };
    for fd in fds {
        if fd > 2 && fd != keep.as_raw_fd() {
            // SAFETY: these fds were inherited from the launcher and no object in this fresh
            // process owns them (the read_dir fd is already closed; EBADF is harmless).
            unsafe { libc::close(fd) };
        }
    }
}
