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
        if st != ContainerStatus::Stopped {
            // SIGKILL to a pid-namespace init takes the whole namespace with it.
            let _ = self.kill(Signal::SIGKILL, true);
            if !self.wait_gone(Duration::from_secs(10)) {
                return Err(LibcontainerError::Init(format!("container {} did not die after SIGKILL", self.id())));
            }
        }
        let mut oci = self.oci_state();
        oci.status = ContainerStatus::Stopped;
        // Poststop failures must not leave a container that can never be deleted.
        let poststop = hooks::run("poststop", self.state.hooks.as_ref().and_then(|h| h.poststop().as_ref()), &oci);
        std::fs::remove_dir_all(&self.dir).map_err(LibcontainerError::io(format!("remove {}", self.dir.display())))?;
        poststop
    }
}
