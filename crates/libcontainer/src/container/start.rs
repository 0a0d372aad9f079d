//! `start`: release the waiting init by opening the exec fifo.

use std::os::fd::AsFd;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use rustix::fs::{Mode, OFlags};

use super::{Container, EXEC_FIFO};
use crate::error::{LibcontainerError, Result};
use crate::fsroot::sys;
use crate::hooks;
use crate::state::ContainerStatus;

impl Container {
    /// Lets init exec the user process, then runs the poststart hooks.
    pub fn start(&mut self) -> Result<()> {
        if !self.status().can_start() {
            return Err(self.refuse("start"));
        }
        let fifo_path = self.dir.join(EXEC_FIFO);
        // Non-blocking so a dead init cannot hang us on open; poll until it writes.
        let fifo = rustix::fs::open(&fifo_path, OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| sys("open exec fifo", e))?;
        loop {
            let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(100u16)) {
                Ok(_) | Err(nix::Error::EINTR) => {}
                Err(e) => return Err(LibcontainerError::Sys { op: "poll exec fifo".into(), source: e }),
            }
            let mut b = [0u8; 1];
            match rustix::io::read(&fifo, &mut b) {
                Ok(1) => break,
                Ok(_) | Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(sys("read exec fifo", e)),
            }
            if !self.init_alive() {
                return Err(LibcontainerError::Init(format!("container {} init exited before start", self.id())));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = std::fs::remove_file(&fifo_path);
        self.state.status = ContainerStatus::Running;
        self.save()?;
        hooks::run("poststart", self.state.hooks.as_ref().and_then(|h| h.poststart().as_ref()), &self.oci_state())
    }
}
