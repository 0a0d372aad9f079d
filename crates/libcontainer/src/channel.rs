//! Typed messages between the runtime and the processes it forks.
//!
//! One `SOCK_SEQPACKET` datagram carries one JSON-encoded [`Message`]; callers use the
//! intent-named methods and never touch bytes. Both ends are close-on-exec, so a successful
//! `execve` in the child shows up as end-of-stream on the runtime side.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use serde::{Deserialize, Serialize};

use crate::cgroup::CgroupDir;
use crate::error::{LibcontainerError, Result};

/// What forked processes tell each other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Intermediate → runtime: it unshared a user namespace and waits for id maps.
    NeedIdMaps,
    /// Runtime → intermediate: uid_map and gid_map are written.
    IdMapsWritten,
    /// Intermediate → runtime: host pid of the container process it forked.
    Pid(i32),
    /// Runtime → container process: set up and continue; these are the directories of its
    /// cgroup to bind into the container.
    Proceed(Vec<CgroupDir>),
    /// Runtime → container init: it now sits in its cgroup, with the resources applied.
    CgroupJoined,
    /// Container process → runtime: the mounts are in place (before pivot_root); run the
    /// prestart and createRuntime hooks.
    RunHooks,
    /// Runtime → container process: those hooks succeeded.
    HooksDone,
    /// Container process → runtime: setup finished, about to wait for start or exec.
    Ready,
    /// Any child → runtime: setup failed with this message.
    Failed(String),
}

/// One end of the channel.
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

/// A connected pair: (runtime end, child end).
pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(LibcontainerError::sys("socketpair"))?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl Channel {
    /// Sends one message.
    pub fn send(&self, m: &Message) -> Result<()> {
        let data = serde_json::to_vec(m).map_err(|e| LibcontainerError::Io {
            op: "encode message".into(),
            source: std::io::Error::other(e),
        })?;
        match send(self.fd.as_raw_fd(), &data, MsgFlags::MSG_NOSIGNAL) {
            Ok(_) => Ok(()),
            // The other side is gone; it usually said why before it went.
            Err(e @ (nix::Error::EPIPE | nix::Error::ECONNRESET)) => Err(self.why_gone(e)),
            Err(e) => Err(LibcontainerError::Sys {
                op: "send message".into(),
                source: e,
            }),
        }
    }

    /// The error to report when the peer closed its end: its `Failed` report if one is still
    /// queued, else a plain note naming `cause`.
    fn why_gone(&self, cause: nix::Error) -> LibcontainerError {
        self.queued_failure().unwrap_or_else(|| {
            LibcontainerError::Init(format!(
                "the container process exited without a report ({cause})"
            ))
        })
    }

    /// A `Failed` report waiting in the channel, without blocking. A step of the runtime that
    /// failed because the child died (EPIPE, ESRCH) uses it to report the child's own cause.
    pub fn queued_failure(&self) -> Option<LibcontainerError> {
        loop {
            match self.recv_flags(MsgFlags::MSG_DONTWAIT) {
                Ok(Some(Message::Failed(msg))) => return Some(LibcontainerError::Init(msg)),
                Ok(Some(_)) => continue,
                _ => return None,
            }
        }
    }

    /// Receives one message; `None` when the other side closed (exited or exec'd).
    pub fn recv(&self) -> Result<Option<Message>> {
        self.recv_flags(MsgFlags::empty())
    }

    fn recv_flags(&self, flags: MsgFlags) -> Result<Option<Message>> {
        let mut buf = vec![0u8; 64 * 1024];
        let n = loop {
            match recv(self.fd.as_raw_fd(), &mut buf, flags) {
                Err(nix::Error::EINTR) => continue,
                r => break r.map_err(LibcontainerError::sys("receive message"))?,
            }
        };
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_slice(&buf[..n])
            .map(Some)
            .map_err(|e| LibcontainerError::Io {
                op: "decode message".into(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            })
    }

    /// Receives the next message, treating end-of-stream and `Failed` as errors.
    pub fn expect(&self, what: &str) -> Result<Message> {
        match self.recv()? {
            None => Err(LibcontainerError::Init(format!(
                "child exited while the runtime waited for {what}"
            ))),
            Some(Message::Failed(msg)) => Err(LibcontainerError::Init(msg)),
            Some(m) => Ok(m),
        }
    }

    /// Waits for a specific message.
    pub fn wait_for(&self, want: &Message, what: &str) -> Result<()> {
        match self.expect(what)? {
            m if &m == want => Ok(()),
            m => Err(LibcontainerError::Init(format!(
                "unexpected {m:?} while waiting for {what}"
            ))),
        }
    }

    /// Waits for the runtime's go-ahead and the cgroup directories.
    pub fn wait_for_proceed(&self) -> Result<Vec<CgroupDir>> {
        match self.expect("cgroup setup")? {
            Message::Proceed(dirs) => Ok(dirs),
            m => Err(LibcontainerError::Init(format!(
                "unexpected {m:?} while waiting for cgroup setup"
            ))),
        }
    }

    /// Waits for the child to report the container process's pid.
    pub fn wait_for_pid(&self) -> Result<i32> {
        match self.expect("the container pid")? {
            Message::Pid(p) => Ok(p),
            m => Err(LibcontainerError::Init(format!(
                "unexpected {m:?} while waiting for the pid"
            ))),
        }
    }

    /// Reports a failure; best effort because the runtime may already be gone.
    pub fn report_failure(&self, e: &LibcontainerError) {
        let _ = self.send(&Message::Failed(e.to_string()));
    }

    /// The raw descriptor, for keeping it across fd cleanup.
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_eof() {
        let (a, b) = pair().expect("pair");
        b.send(&Message::Pid(42)).expect("send");
        assert_eq!(a.wait_for_pid().expect("pid"), 42);
        b.send(&Message::Failed("boom".into())).expect("send");
        assert!(a.expect("x").unwrap_err().to_string().contains("boom"));
        b.send(&Message::Ready).expect("send");
        assert!(a.wait_for_proceed().is_err());
        drop(b);
        assert_eq!(a.recv().expect("recv"), None);
    }

    #[test]
    fn sending_to_a_failed_child_reports_its_error() {
        let (a, b) = pair().expect("pair");
        b.send(&Message::Failed("mount /x: EINVAL".into()))
            .expect("send");
        drop(b);
        let err = a.send(&Message::CgroupJoined).unwrap_err().to_string();
        assert!(err.contains("mount /x: EINVAL"), "{err}");
        let (a, b) = pair().expect("pair");
        drop(b);
        let err = a.send(&Message::CgroupJoined).unwrap_err().to_string();
        assert!(err.contains("exited without a report"), "{err}");
    }
}
