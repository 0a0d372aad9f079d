//! RUN: the command line, the environment a build container gets (ENV plus ARGs in scope),
//! and the history text with Docker's `|N KEY=val` prefix for the ARGs it saw.

use super::{FsOp, StageRun};
use crate::dockerfile::{Command, RunArgs};
use crate::engine::{short, PROXY_ARGS};
use crate::worker::{CacheMount, RunSpec};
use crate::BuildError;

/// A RUN ready to execute.
pub(crate) struct Prepared {
    pub spec: RunSpec,
    /// The command as Docker names it in a failure.
    pub display: String,
}

impl StageRun<'_, '_> {
    pub(super) fn run_step(&mut self, r: &RunArgs) -> Result<(), BuildError> {
        let mut cache_mounts = Vec::new();
        for m in &r.mounts {
            let m = self.expand_word(m)?;
            cache_mounts.push(CacheMount::parse(&m).map_err(BuildError::NotSupported)?);
        }
        if r.security.as_deref().is_some_and(|s| s != "sandbox") {
            return Err(BuildError::NotSupported(
                "RUN --security=insecure is not supported by Wharf's builder".into(),
            ));
        }
        let cmd = match &r.command {
            Command::Exec(v) => v.clone(),
            Command::Shell(s) => {
                let script = match r.heredocs.as_slice() {
                    [h] if s.trim() == format!("<<{}", h.name)
                        || s.trim() == format!("<<-{}", h.name) =>
                    {
                        h.content.clone()
                    }
                    [] => s.clone(),
                    docs => {
                        let mut t = format!("{s}\n");
                        for h in docs {
                            t.push_str(&h.content);
                            t.push_str(&h.name);
                            t.push('\n');
                        }
                        t
                    }
                };
                [self.shell(), vec![script]].concat()
            }
        };
        // ARGs in scope that ENV does not override go into the environment and the history.
        let env_names: Vec<String> = self
            .config
            .env
            .iter()
            .flatten()
            .map(|e| e.split('=').next().unwrap_or("").to_string())
            .collect();
        let mut args: Vec<(String, String)> = self
            .args
            .iter()
            .filter(|(k, _)| !env_names.contains(k))
            .cloned()
            .collect();
        args.sort();
        let mut env = self.config.env.clone().unwrap_or_default();
        env.extend(args.iter().map(|(k, v)| format!("{k}={v}")));
        for p in PROXY_ARGS {
            if let Some(v) = self.sh.build_arg(p) {
                if !args.iter().any(|(k, _)| k == p) {
                    env.push(format!("{p}={v}"));
                }
            }
        }
        let display = cmd.join(" ");
        let created_by = if args.is_empty() {
            display.clone()
        } else {
            let kv: Vec<String> = args.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("|{} {} {display}", args.len(), kv.join(" "))
        };
        let network = r
            .network
            .clone()
            .unwrap_or_else(|| self.sh.opts.network.clone());
        let prepared = Prepared {
            spec: RunSpec {
                cmd,
                env,
                user: self.config.user.clone(),
                workdir: self.config.working_dir.clone(),
                network: network.clone(),
                extra_hosts: self.sh.opts.extra_hosts.clone(),
                cache_mounts,
                resources: self.sh.opts.resources.clone(),
                shm_size: self.sh.opts.shm_size,
            },
            display,
        };
        // Which cache mounts a step has matters to it; their contents do not (BuildKit's rule).
        let extra = format!("network={network} mounts={:?}", r.mounts);
        self.commit_step(&created_by, &extra, Some(FsOp::Run(&prepared)))
    }

    /// Runs the prepared command in container `cid`, streaming its output.
    pub(super) fn exec(&self, cid: &str, p: &Prepared) -> Result<(), BuildError> {
        self.sh.say(format!(" ---> Running in {}\n", short(cid)));
        let sh = self.sh;
        let code = sh.worker.run(cid, &mut |b: &[u8]| {
            sh.say(String::from_utf8_lossy(b).to_string())
        })?;
        if code != 0 {
            return Err(BuildError::RunFailed {
                command: p.display.clone(),
                code,
            });
        }
        Ok(())
    }
}
