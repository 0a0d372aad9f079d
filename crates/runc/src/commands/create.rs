use std::path::Path;

use anyhow::{Context, Result};
use wharf_libcontainer::{Container, CreateOptions};

use crate::args::CreateArgs;

/// Shared by `create` and `run`.
pub fn create(root: &Path, a: &CreateArgs) -> Result<Container> {
    let opts = CreateOptions {
        id: a.id.clone(),
        bundle: a.bundle.clone(),
        state_root: root.to_path_buf(),
        console_socket: a.console_socket.clone(),
        pid_file: a.pid_file.clone(),
        no_pivot: a.no_pivot,
        preserve_fds: a.preserve_fds,
    };
    let c = opts
        .create()
        .with_context(|| format!("create container {}", a.id))?;
    for w in c.warnings() {
        eprintln!("wharf-runtime: warning: {w}");
    }
    Ok(c)
}

pub fn run(root: &Path, a: &CreateArgs) -> Result<()> {
    create(root, a).map(|_| ())
}
