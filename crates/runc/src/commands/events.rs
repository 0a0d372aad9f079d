use std::path::Path;

use anyhow::{bail, Result};
use wharf_libcontainer::Container;

/// runc's `events --stats` shape: `{"type":"stats","id":…,"data":{…}}`.
pub fn run(root: &Path, id: &str, stats: bool) -> Result<()> {
    if !stats {
        bail!("events: only --stats is supported (streaming OOM and exit events is not)");
    }
    let c = Container::load(root, id)?;
    let data = c.stats()?;
    println!(
        "{}",
        serde_json::json!({"type": "stats", "id": id, "data": data})
    );
    Ok(())
}
