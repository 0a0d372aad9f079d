//! A container's volumes at start: mounted (and filled from the image the first time) before
//! the spec is written.

use std::path::Path;

use wharf_volume::mounts::OciMount;

use super::{blocking, ContainerService};
use crate::server::error::ApiError;
use crate::state::{Container, Store};

impl ContainerService {
    /// Mounts `c`'s volumes over its mounted `rootfs`; returns the OCI mounts. A copy-up is
    /// marked done so that it happens only on first use, as dockerd does.
    pub(super) async fn mount_volumes(
        &self,
        c: &Container,
        rootfs: &Path,
    ) -> Result<Vec<OciMount>, ApiError> {
        if c.mount_points.is_empty() {
            return Ok(Vec::new());
        }
        let vols = self.volumes.clone();
        let (id, mps, root) = (c.id.clone(), c.mount_points.clone(), rootfs.to_path_buf());
        let (mounts, copied) = blocking(move || vols.mount_all(&id, &mps, &root)).await?;
        if copied || c.mount_points.iter().any(|m| m.copy_data) {
            // Not written here: the start's own record write, on success or failure, follows.
            // A crash before it only means the check runs again, and copy-up fills nothing
            // but an empty volume.
            let h = self.get(&c.id)?;
            for m in &mut Store::lock(&h).mount_points {
                m.copy_data = false;
            }
        }
        Ok(mounts)
    }
}
