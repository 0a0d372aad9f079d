//! `start`: release the waiting init by opening the exec fifo.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use rustix::fs::{Mode, OFlags};

use super::{Container, EXEC_FIFO};
use crate::error::{LibcontainerError, Result};
use crate::fsroot::sys;
use crate::hooks;
use crate::init::START_OK;
use crate::state::ContainerStatus;

impl Container {
    /// Lets init run the startContainer hooks and exec the user process, then runs the
    /// poststart hooks. When a startContainer hook fails, init exits and so does the rest of
    /// the container, leaving it stopped for `delete`.
    pub fn start(&mut self) -> Result<()> {
        if !self.status().can_start() {
            return Err(self.refuse("start"));
        }
        let fifo_path = self.dir.join(EXEC_FIFO);
        // Non-blocking so a dead init cannot hang us on open; poll until it writes.
        let fifo = rustix::fs::open(
            &fifo_path,
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| sys("open exec fifo", e))?;
        loop {
            let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(100u16)) {
                Ok(_) | Err(nix::Error::EINTR) => {}
                Err(e) => {
                    return Err(LibcontainerError::Sys {
                        op: "poll exec fifo".into(),
                        source: e,
                    })
                }
            }
            let mut b = [0u8; 1];
            match rustix::io::read(&fifo, &mut b) {
                Ok(1) if &b == START_OK => break,
                Ok(1) => return Err(self.failed_start(fifo)),
                Ok(_) | Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(sys("read exec fifo", e)),
            }
            if !self.init_alive() {
                return Err(LibcontainerError::Init(format!(
                    "container {} init exited before start",
                    self.id()
                )));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = std::fs::remove_file(&fifo_path);
        self.state.status = ContainerStatus::Running;
        self.save()?;
        hooks::run(
            "poststart",
            self.state
                .hooks
                .as_ref()
                .and_then(|h| h.poststart().as_ref()),
            &self.oci_state(),
        )
    }

    /// Reads init's failure report (the rest of the fifo), makes sure nothing of the container
    /// survives, and turns the report into the error.
    fn failed_start(&self, fifo: OwnedFd) -> LibcontainerError {
        let _ = std::fs::remove_file(self.dir.join(EXEC_FIFO));
        // Init writes the whole report and exits: read it to end-of-file, blocking.
        let mut report = String::new();
        let read = rustix::fs::fcntl_setfl(&fifo, OFlags::empty())
            .map_err(std::io::Error::from)
            .and_then(|()| File::from(fifo).read_to_string(&mut report));
        if let Ok(Some(cg)) = self.cgroup() {
            let _ = cg.kill_all(libc::SIGKILL);
        }
        self.wait_gone(Duration::from_secs(10));
        match read {
            Ok(_) => LibcontainerError::Init(report.trim().to_string()),
            Err(e) => LibcontainerError::Io {
                op: "read init's start report".into(),
                source: e,
            },
        }
    }
}
