use std::path::Path;

use anyhow::{Context, Result};
use wharf_libcontainer::Container;

pub fn run(root: &Path, id: &str) -> Result<()> {
    let mut c = Container::load(root, id)?;
    c.start().with_context(|| format!("start container {id}"))
}
