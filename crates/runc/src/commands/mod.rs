//! One function per verb: load the container, call the library, add context.

mod create;
mod delete;
mod events;
mod exec;
mod features;
mod kill;
mod list;
mod pause;
mod ps;
mod run;
mod spec;
mod start;
mod state;
mod update;
mod wait;

use anyhow::{bail, Result};

use crate::args::{Cli, Command};

/// Runs the parsed command; returns the process exit code.
pub fn dispatch(cli: &Cli) -> Result<i32> {
    if cli.systemd_cgroup {
        bail!("--systemd-cgroup is not supported: wharf-runtime manages cgroups through cgroupfs only");
    }
    let root = &cli.root;
    if matches!(
        cli.command,
        Command::Create(_) | Command::Run { .. } | Command::Exec(_)
    ) {
        // These put runtime code inside the container: run it from a sealed copy first.
        wharf_libcontainer::reexec::ensure_sealed_exe(root)?;
    }
    match &cli.command {
        Command::Create(a) => create::run(root, a).map(|_| 0),
        Command::Start { id } => start::run(root, id).map(|_| 0),
        Command::Run {
            create,
            detach,
            keep,
        } => run::run(root, create, *detach, *keep),
        Command::State { id } => state::run(root, id).map(|_| 0),
        Command::Kill { all, id, signal } => kill::run(root, id, signal, *all).map(|_| 0),
        Command::Delete { force, id } => delete::run(root, id, *force).map(|_| 0),
        Command::Exec(a) => exec::run(root, a),
        Command::List { format, quiet } => list::run(root, *format, *quiet).map(|_| 0),
        Command::Ps {
            format,
            id,
            ps_args,
        } => ps::run(root, id, *format, ps_args).map(|_| 0),
        Command::Pause { id } => pause::pause(root, id).map(|_| 0),
        Command::Resume { id } => pause::resume(root, id).map(|_| 0),
        Command::Update(a) => update::run(root, a).map(|_| 0),
        Command::Events { stats, id, .. } => events::run(root, id, *stats).map(|_| 0),
        Command::Spec { bundle, rootless } => spec::run(bundle, *rootless).map(|_| 0),
        Command::Features => features::run().map(|_| 0),
    }
}
