use std::path::Path;

use anyhow::{Context, Result};
use wharf_libcontainer::Container;

pub fn pause(root: &Path, id: &str) -> Result<()> {
    Container::load(root, id)?
        .pause()
        .with_context(|| format!("pause container {id}"))
}

pub fn resume(root: &Path, id: &str) -> Result<()> {
    Container::load(root, id)?
        .resume()
        .with_context(|| format!("resume container {id}"))
}
