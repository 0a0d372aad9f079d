//! Runs a runtime verb that gives the new process (container init or exec) stdio owned by the
//! shim: pipes, or a pty whose master arrives on the console socket.

use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::process::Stdio;

use rustix::pipe::{pipe_with, PipeFlags};

use crate::console::ConsoleSocket;
use crate::logger::Stream;
use crate::runtime::{Runtime, RuntimeError};

/// One readable output fd of a process; `fd` is `None` once it reached end of file.
#[derive(Debug)]
pub struct Source {
    /// The shim's read end (non-blocking).
    pub fd: Option<OwnedFd>,
    /// Which stream it carries.
    pub stream: Stream,
}

/// The shim's ends of a process's stdio.
#[derive(Debug)]
pub struct ProcStdio {
    /// Output fds: stdout and stderr pipes, or the pty master (as stdout).
    pub sources: Vec<Source>,
    /// Where stdin goes (pipe write end or a dup of the pty master), if stdin is open.
    pub stdin: Option<OwnedFd>,
    /// The pty master, for resizing.
    pub pty: Option<OwnedFd>,
}

/// Why a process could not be launched.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The runtime failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// Setting up pipes or the console failed.
    #[error("setting up the process's stdio: {0}")]
    Io(#[from] io::Error),
    /// A pipe or fd-flag syscall failed.
    #[error("setting up the process's stdio: {0}")]
    Sys(#[from] rustix::io::Errno),
    /// The runtime succeeded but never sent the terminal.
    #[error("the runtime did not send a terminal on the console socket")]
    NoConsole,
}

/// Runs the runtime with `args` (which must name `console`'s path when a tty is wanted) and
/// returns the shim's ends of the new process's stdio.
pub fn launch(
    runtime: &Runtime,
    args: Vec<OsString>,
    console: Option<&ConsoleSocket>,
    with_stdin: bool,
) -> Result<ProcStdio, LaunchError> {
    match console {
        Some(console) => launch_tty(runtime, args, console, with_stdin),
        None => launch_pipes(runtime, args, with_stdin),
    }
}

fn launch_tty(
    runtime: &Runtime,
    args: Vec<OsString>,
    console: &ConsoleSocket,
    with_stdin: bool,
) -> Result<ProcStdio, LaunchError> {
    let mut running = runtime.spawn(args, Stdio::null(), Stdio::null(), Stdio::null())?;
    let master = console.receive(&mut running.child);
    let status = running.child.wait()?;
    runtime.check(&running, status)?;
    let master = master?.ok_or(LaunchError::NoConsole)?;
    rustix::io::ioctl_fionbio(&master, true)?;
    let stdin = if with_stdin {
        Some(master.try_clone()?)
    } else {
        None
    };
    let pty = Some(master.try_clone()?);
    Ok(ProcStdio {
        sources: vec![Source {
            fd: Some(master),
            stream: Stream::Stdout,
        }],
        stdin,
        pty,
    })
}

fn launch_pipes(
    runtime: &Runtime,
    args: Vec<OsString>,
    with_stdin: bool,
) -> Result<ProcStdio, LaunchError> {
    let (stdin_r, stdin_w) = match with_stdin {
        true => {
            let (r, w) = pipe_with(PipeFlags::CLOEXEC)?;
            (Stdio::from(r), Some(w))
        }
        false => (Stdio::null(), None),
    };
    let (out_r, out_w) = pipe_with(PipeFlags::CLOEXEC)?;
    let (err_r, err_w) = pipe_with(PipeFlags::CLOEXEC)?;
    // The child's ends are moved into the command and closed in the shim when spawn returns,
    // so end of file on our read ends means the process side really closed them.
    let running = runtime.spawn(args, stdin_r, Stdio::from(out_w), Stdio::from(err_w))?;
    runtime.wait(running)?;
    for fd in [Some(&out_r), Some(&err_r), stdin_w.as_ref()]
        .into_iter()
        .flatten()
    {
        rustix::io::ioctl_fionbio(fd, true)?;
    }
    Ok(ProcStdio {
        sources: vec![
            Source {
                fd: Some(out_r),
                stream: Stream::Stdout,
            },
            Source {
                fd: Some(err_r),
                stream: Stream::Stderr,
            },
        ],
        stdin: stdin_w,
        pty: None,
    })
}
