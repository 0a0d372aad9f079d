use std::path::Path;

use anyhow::{bail, Context, Result};

pub fn run(bundle: &Path, rootless: bool) -> Result<()> {
    let path = bundle.join("config.json");
    if path.exists() {
        bail!("File {} exists. Remove it first", path.display());
    }
    let spec = wharf_libcontainer::spec::default_spec(rootless);
    let json = serde_json::to_string_pretty(&spec)?;
    std::fs::write(&path, json + "\n").with_context(|| format!("write {}", path.display()))
}
