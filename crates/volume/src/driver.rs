//! The two-level contract every volume driver implements (moby's `volume.Driver`/`Volume`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::error::Result;

/// One volume of a driver.
pub trait Volume: Send + Sync {
    /// Its name.
    fn name(&self) -> &str;
    /// The driver that owns it.
    fn driver_name(&self) -> &str;
    /// Where it is (or will be) mounted on the host.
    fn path(&self) -> PathBuf;
    /// Makes it usable for reference `id` (a container); returns the host path.
    fn mount(&self, id: &str) -> Result<PathBuf>;
    /// Drops reference `id`'s use; the last one out unmounts. Returns whether `id` used it.
    fn unmount(&self, id: &str) -> Result<bool>;
    /// RFC 3339 creation time.
    fn created_at(&self) -> String;
    /// The options it was created with.
    fn options(&self) -> BTreeMap<String, String>;
    /// Driver-specific status for inspect (`Status`), if any.
    fn status(&self) -> Option<BTreeMap<String, serde_json::Value>>;
}

/// A volume driver.
pub trait VolumeDriver: Send + Sync {
    /// Its name (`local`).
    fn name(&self) -> &str;
    /// Creates `name` with `opts`, or returns it when it exists.
    fn create(&self, name: &str, opts: &BTreeMap<String, String>) -> Result<Arc<dyn Volume>>;
    /// Removes a volume and its data.
    fn remove(&self, name: &str) -> Result<()>;
    /// Every volume the driver has.
    fn list(&self) -> Vec<Arc<dyn Volume>>;
    /// One volume.
    fn get(&self, name: &str) -> Result<Arc<dyn Volume>>;
    /// `local` or `global`.
    fn scope(&self) -> &'static str;
}
