use std::path::Path;

use anyhow::{Context, Result};
use wharf_libcontainer::{set_child_subreaper, Container};

use super::create::create;
use super::wait::wait_forwarding;
use crate::args::CreateArgs;

/// create + start; unless detached, wait for the container, delete it, and return its status.
pub fn run(root: &Path, a: &CreateArgs, detach: bool, keep: bool) -> Result<i32> {
    if !detach {
        // init's parent (our intermediate) exits at once; adopt init so we can wait for it.
        set_child_subreaper()?;
    }
    let mut c = create(root, a)?;
    if let Err(e) = c.start() {
        let _ = c.delete(true);
        return Err(e).with_context(|| format!("start container {}", a.id));
    }
    if detach {
        return Ok(0);
    }
    let code = wait_forwarding(c.pid())?;
    if !keep {
        Container::load(root, &a.id)?
            .delete(true)
            .with_context(|| format!("delete container {}", a.id))?;
    }
    Ok(code)
}
