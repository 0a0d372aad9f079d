//! `delete`: stop what is left, run poststop hooks, and remove the state directory.

use std::time::Duration;

use nix::sys::signal::Signal;

use super::Container;
use crate::error::{LibcontainerError, Result};
use crate::hooks;
use crate::state::ContainerStatus;

impl Container {
    /// Deletes the container. A running or paused one needs `force` (it is killed first).
    pub fn delete(self, force: bool) -> Result<()> {
        let st = self.status();
        if !st.can_delete() && !force {
            return Err(self.refuse("delete without --force"));
        }
        let cgroup = self.cgroup()?;
        if let Some(cg) = &cgroup {
            // Frozen tasks cannot act on SIGKILL; and without a pid namespace, processes may
            // outlive init, so the whole cgroup is killed even for a stopped container.
            if st == ContainerStatus::Paused {
                cg.thaw()?;
            }
            cg.kill_all(libc::SIGKILL)?;
        } else if st != ContainerStatus::Stopped {
            let _ = self.kill(Signal::SIGKILL, false);
        }
        if !self.wait_gone(Duration::from_secs(10)) {
            return Err(LibcontainerError::Init(format!(
                "container {} did not die after SIGKILL",
                self.id()
            )));
        }
        let mut oci = self.oci_state();
        oci.status = ContainerStatus::Stopped;
        // Poststop failures must not leave a container that can never be deleted.
        let poststop = hooks::run(
            "poststop",
            self.state
                .hooks
                .as_ref()
                .and_then(|h| h.poststop().as_ref()),
            &oci,
        );
        if let Some(cg) = &cgroup {
            wait_empty(cg);
            cg.destroy()?;
        }
        std::fs::remove_dir_all(&self.dir).map_err(LibcontainerError::io(format!(
            "remove {}",
            self.dir.display()
        )))?;
        poststop
    }
}

/// Waits (bounded) for the kernel to move exited tasks out of the cgroup, so rmdir succeeds.
fn wait_empty(cg: &wharf_cgroups::Manager) {
    for _ in 0..5000 {
        if cg.pids().map(|p| p.is_empty()).unwrap_or(true) {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
