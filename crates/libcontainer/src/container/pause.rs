//! `pause`/`resume` through the freezer, plus the cgroup-backed `update` and `stats`.

use oci_spec::runtime::LinuxResources;
use wharf_cgroups::Stats;

use super::Container;
use crate::error::{LibcontainerError, Result};
use crate::state::ContainerStatus;

impl Container {
    fn require_cgroup(&self, op: &str) -> Result<wharf_cgroups::Manager> {
        self.cgroup()?.ok_or_else(|| {
            LibcontainerError::NotSupported(format!("{op}: container {} has no cgroup", self.id()))
        })
    }

    /// Freezes every process of a running container.
    pub fn pause(&mut self) -> Result<()> {
        if !self.status().can_pause() {
            return Err(self.refuse("pause"));
        }
        self.require_cgroup("pause")?.freeze()?;
        self.state.status = ContainerStatus::Paused;
        self.save()
    }

    /// Thaws a paused container.
    pub fn resume(&mut self) -> Result<()> {
        if !self.status().can_resume() {
            return Err(self.refuse("resume"));
        }
        self.require_cgroup("resume")?.thaw()?;
        self.state.status = ContainerStatus::Running;
        self.save()
    }

    /// Applies new resource limits (`update`).
    pub fn update(&self, resources: &LinuxResources) -> Result<()> {
        if self.status() == ContainerStatus::Stopped {
            return Err(self.refuse("update"));
        }
        Ok(self.require_cgroup("update")?.apply_resources(resources)?)
    }

    /// Current cgroup usage numbers.
    pub fn stats(&self) -> Result<Stats> {
        if self.status() == ContainerStatus::Stopped {
            return Err(self.refuse("read stats of"));
        }
        Ok(self.require_cgroup("stats")?.stats()?)
    }
}
