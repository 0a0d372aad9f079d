use std::path::Path;

use anyhow::{Context, Result};
use wharf_libcontainer::{parse_signal, Container};

pub fn run(root: &Path, id: &str, signal: &str, all: bool) -> Result<()> {
    let sig = parse_signal(signal)?;
    let c = Container::load(root, id)?;
    c.kill(sig, all)
        .with_context(|| format!("kill container {id}"))
}
