//! `wharf-shim <dir>`: the per-container monitor. Reads `<dir>/shim.json`, detaches from the
//! daemon, creates the container through the runtime and serves the shim protocol on
//! `<dir>/shim.sock` until the container has exited (see `wharf_shim_proto`).
//!
//! Besides the protocol's files, `<dir>` holds the shim's working files: `init.pid` (from
//! `runtime create`), `runtime.log` (the runtime's `--log`, JSON; its last error becomes the
//! failure message), `console.sock`/`exec-tty.sock` (transient console sockets), and transient
//! `exec-<id>.json`/`.pid` and `update.json`. After the container exited the shim keeps
//! answering for a short linger period; `Shutdown` ends it at once.
#![deny(unsafe_code)]

mod atomic;
#[allow(unsafe_code)]
mod console;
#[allow(unsafe_code)]
mod detach;
mod logger;
mod oom;
mod runtime;
mod server;
mod stdio;
mod timefmt;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use wharf_shim_proto::{files, ShimConfig, PROTOCOL_VERSION};

use crate::detach::Role;
use crate::server::Shim;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), None) = (args.next(), args.next()) else {
        eprintln!("usage: wharf-shim <dir>");
        return ExitCode::from(2);
    };
    let (dir, cfg) = match load(Path::new(&dir)) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("wharf-shim: {e}");
            return ExitCode::FAILURE;
        }
    };
    match detach::detach() {
        Err(e) => {
            eprintln!("wharf-shim: detaching: {e}");
            ExitCode::FAILURE
        }
        Ok(Role::Launcher(launcher)) => match launcher.outcome() {
            Ok(()) => ExitCode::SUCCESS,
            Err(msg) => {
                eprintln!("{msg}");
                ExitCode::FAILURE
            }
        },
        Ok(Role::Shim(ready)) => match Shim::start(&dir, cfg, Path::new("/proc")) {
            Ok(shim) => {
                ready.ok();
                shim.run();
                ExitCode::SUCCESS
            }
            Err(e) => {
                ready.fail(&e.to_string());
                ExitCode::FAILURE
            }
        },
    }
}

/// Reads the config, with every path made absolute (the shim later runs from `/`).
fn load(dir: &Path) -> Result<(PathBuf, ShimConfig), String> {
    let dir = std::path::absolute(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join(files::CONFIG);
    let text = std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let mut cfg: ShimConfig =
        serde_json::from_slice(&text).map_err(|e| format!("parsing {}: {e}", path.display()))?;
    if cfg.version > PROTOCOL_VERSION {
        return Err(format!(
            "{} has protocol version {}, this shim speaks {PROTOCOL_VERSION}",
            path.display(),
            cfg.version
        ));
    }
    let abs = |p: &Path| std::path::absolute(p).map_err(|e| format!("{}: {e}", p.display()));
    cfg.bundle = abs(&cfg.bundle)?;
    cfg.runtime.root = abs(&cfg.runtime.root)?;
    cfg.log.path = abs(&cfg.log.path)?;
    Ok((dir, cfg))
}
