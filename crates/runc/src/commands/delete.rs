use std::path::Path;

use anyhow::{Context, Result};
use wharf_libcontainer::{Container, LibcontainerError};

pub fn run(root: &Path, id: &str, force: bool) -> Result<()> {
    match Container::load(root, id) {
        Ok(c) => c
            .delete(force)
            .with_context(|| format!("delete container {id}")),
        // runc: `delete --force` of a missing container is not an error.
        Err(LibcontainerError::NotFound(_)) if force => Ok(()),
        Err(e) => Err(e.into()),
    }
}
