use std::path::Path;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{Capability, Process};
use wharf_libcontainer::{set_child_subreaper, Container, ExecOptions};

use super::wait::wait_forwarding;
use crate::args::ExecArgs;

/// Builds the process from `--process` or from the container's spec plus flags.
fn process(c: &Container, a: &ExecArgs) -> Result<Process> {
    if let Some(p) = &a.process {
        let data = std::fs::read(p).with_context(|| format!("read {}", p.display()))?;
        return serde_json::from_slice(&data).with_context(|| format!("parse {}", p.display()));
    }
    if a.command.is_empty() {
        bail!("exec needs a command (or --process)");
    }
    let mut p = c.default_exec_process(a.command.clone())?;
    p.set_terminal(Some(a.tty));
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    let mut env = p.env().clone().unwrap_or_default();
    env.extend(a.env.iter().cloned());
    p.set_env(Some(env));
    if let Some(u) = &a.user {
        let (uid, gid) = u.split_once(':').unwrap_or((u, "0"));
        let mut user = p.user().clone();
        user.set_uid(
            uid.parse()
                .with_context(|| format!("invalid --user {u:?}"))?,
        );
        user.set_gid(
            gid.parse()
                .with_context(|| format!("invalid --user {u:?}"))?,
        );
        p.set_user(user);
    }
    if !a.additional_gids.is_empty() {
        let mut user = p.user().clone();
        user.set_additional_gids(Some(a.additional_gids.clone()));
        p.set_user(user);
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if !a.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        for name in &a.cap {
            let cap: Capability = serde_json::from_value(serde_json::Value::String(name.clone()))
                .with_context(|| format!("unknown capability {name}"))?;
            let add = |s: &Option<oci_spec::runtime::Capabilities>| {
                let mut s = s.clone().unwrap_or_default();
                s.insert(cap);
                Some(s)
            };
            caps.set_bounding(add(caps.bounding()));
            caps.set_effective(add(caps.effective()));
            caps.set_permitted(add(caps.permitted()));
        }
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}

pub fn run(root: &Path, a: &ExecArgs) -> Result<i32> {
    let c = Container::load(root, &a.id)?;
    let opts = ExecOptions {
        process: process(&c, a)?,
        console_socket: a.console_socket.clone(),
        pid_file: a.pid_file.clone(),
        preserve_fds: a.preserve_fds,
    };
    if !a.detach {
        set_child_subreaper()?;
    }
    let pid = c
        .exec(&opts)
        .with_context(|| format!("exec in container {}", a.id))?;
    if a.detach {
        return Ok(0);
    }
    wait_forwarding(pid)
}
