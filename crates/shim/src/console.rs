//! The runtime's `--console-socket` handshake: the runtime connects and passes the pty master
//! with SCM_RIGHTS; and terminal resizing.

use std::fs;
use std::io::{self, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Child;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use wharf_shim_proto::sockpath::SocketPath;
use wharf_shim_proto::WindowSize;

/// A listening console socket, removed again on drop.
#[derive(Debug)]
pub struct ConsoleSocket {
    listener: UnixListener,
    path: PathBuf,
    /// What the runtime connects to: `path`, or a short form of it when `path` is too long.
    connect: SocketPath,
}

impl ConsoleSocket {
    /// Listens at `path` (a stale socket file there is replaced).
    pub fn bind(path: &Path) -> io::Result<ConsoleSocket> {
        let _ = fs::remove_file(path);
        let connect = SocketPath::for_children(path)?;
        let listener = UnixListener::bind(connect.path())?;
        listener.set_nonblocking(true)?;
        Ok(ConsoleSocket {
            listener,
            path: path.to_path_buf(),
            connect,
        })
    }

    /// The socket path to hand to the runtime.
    pub fn path(&self) -> &Path {
        self.connect.path()
    }

    /// Receives the pty master from the runtime process `child`; `None` when the runtime exited
    /// without sending one (its exit status then says why).
    pub fn receive(&self, child: &mut Child) -> io::Result<Option<OwnedFd>> {
        loop {
            match self.listener.accept() {
                Ok((conn, _)) => {
                    conn.set_nonblocking(false)?;
                    return recv_fd(&conn).map(Some);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if child.try_wait()?.is_some() {
                // It may have connected just before exiting: the connection is still queued.
                return match self.listener.accept() {
                    Ok((conn, _)) => {
                        conn.set_nonblocking(false)?;
                        recv_fd(&conn).map(Some)
                    }
                    Err(_) => Ok(None),
                };
            }
            let mut fds = [PollFd::new(self.listener.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(100u16)) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

fn recv_fd(conn: &impl AsRawFd) -> io::Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 4]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut received = Vec::new();
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            for fd in fds {
                // SAFETY: the kernel just installed `fd` in our table for this message; nothing
                // else refers to it, so we take sole ownership (extras are closed on drop).
                received.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    received
        .into_iter()
        .next()
        .ok_or_else(|| io::Error::other("console socket message carried no file descriptor"))
}

/// Sets the window size of the terminal whose master is `fd` (TIOCSWINSZ).
pub fn set_size(fd: impl AsFd, size: WindowSize) -> io::Result<()> {
    let ws = rustix::termios::Winsize {
        ws_row: size.height,
        ws_col: size.width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    rustix::termios::tcsetwinsize(fd, ws)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::IoSlice;
    use std::os::unix::net::UnixStream;
    use std::process::Command;

    use nix::sys::socket::{sendmsg, ControlMessage};

    use super::*;

    #[test]
    fn receives_a_passed_fd_and_resizes_a_pty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = ConsoleSocket::bind(&dir.path().join("console.sock")).expect("bind");
        let master =
            rustix::pty::openpt(rustix::pty::OpenptFlags::RDWR | rustix::pty::OpenptFlags::NOCTTY)
                .expect("openpt");
        let conn = UnixStream::connect(sock.path()).expect("connect");
        let fds = [master.as_raw_fd()];
        sendmsg::<()>(
            conn.as_raw_fd(),
            &[IoSlice::new(b"x")],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .expect("send");
        let mut child = Command::new("sleep").arg("5").spawn().expect("spawn");
        let got = sock.receive(&mut child).expect("receive").expect("an fd");
        let _ = child.kill();
        let _ = child.wait();
        set_size(
            &got,
            WindowSize {
                height: 33,
                width: 77,
            },
        )
        .expect("resize");
        let ws = rustix::termios::tcgetwinsize(&master).expect("get size");
        assert_eq!((ws.ws_row, ws.ws_col), (33, 77));
    }

    #[test]
    fn runtime_exit_without_connecting_yields_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = ConsoleSocket::bind(&dir.path().join("c.sock")).expect("bind");
        let mut child = Command::new("true").spawn().expect("spawn");
        assert!(sock.receive(&mut child).expect("receive").is_none());
        let path = sock.path().to_path_buf();
        drop(sock);
        assert!(!path.exists());
    }
}
