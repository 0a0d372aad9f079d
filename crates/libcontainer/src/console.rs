//! `--console-socket`: the container's pty master goes to the caller over SCM_RIGHTS and the
//! slave becomes the process's controlling terminal and stdio.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};

use crate::error::{LibcontainerError, Result};

/// Connects to the caller's console socket (in the runtime, before forking).
pub fn connect(path: &Path) -> Result<OwnedFd> {
    let s = UnixStream::connect(path).map_err(LibcontainerError::io(format!(
        "connect console socket {}",
        path.display()
    )))?;
    Ok(OwnedFd::from(s))
}

/// Opens a pty in the container's devpts, sends the master over `socket`, and makes the slave
/// this process's controlling terminal and stdio, owned by `uid`.
#[allow(unsafe_code)]
pub fn setup(socket: &OwnedFd, uid: u32) -> Result<()> {
    let pty = nix::pty::openpty(None, None).map_err(LibcontainerError::sys("openpty"))?;
    let name = nix::unistd::ttyname(&pty.slave)
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let fds = [pty.master.as_raw_fd()];
    sendmsg::<UnixAddr>(
        socket.as_raw_fd(),
        &[IoSlice::new(name.as_bytes())],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(LibcontainerError::sys("send pty master"))?;
    drop(pty.master);
    nix::unistd::fchown(&pty.slave, Some(nix::unistd::Uid::from_raw(uid)), None)
        .map_err(LibcontainerError::sys("chown pty"))?;
    nix::unistd::setsid().map_err(LibcontainerError::sys("setsid"))?;
    // SAFETY: TIOCSCTTY takes an integer argument and the slave fd is open.
    if unsafe { libc::ioctl(pty.slave.as_raw_fd(), libc::TIOCSCTTY, 0) } != 0 {
        return Err(LibcontainerError::Sys {
            op: "set controlling terminal".into(),
            source: nix::Error::last(),
        });
    }
    for target in 0..=2 {
        // SAFETY: dup2 onto stdio numbers; the source fd is open for the whole call.
        if unsafe { libc::dup2(pty.slave.as_raw_fd(), target) } < 0 {
            return Err(LibcontainerError::Sys {
                op: "dup pty onto stdio".into(),
                source: nix::Error::last(),
            });
        }
    }
    Ok(())
}
