use std::path::Path;

use anyhow::Result;
use wharf_libcontainer::Container;

pub fn run(root: &Path, id: &str) -> Result<()> {
    let c = Container::load(root, id)?;
    println!("{}", serde_json::to_string_pretty(&c.oci_state())?);
    Ok(())
}
