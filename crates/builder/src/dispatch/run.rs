//! RUN: the command line, the environment a build container gets (ENV plus ARGs in scope),
//! and the history text with Docker's `|N KEY=val` prefix for the ARGs it saw.

use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::{FsOp, StageRun};
use crate::context::confine;
use crate::dockerfile::{Command, RunArgs};
use crate::engine::{short, PROXY_ARGS};
use crate::worker::{MountSpec, RunSpec, SecretMount};
use crate::BuildError;

/// A RUN ready to execute.
pub(crate) struct Prepared {
    pub spec: RunSpec,
    /// The command as Docker names it in a failure.
    pub display: String,
    /// `--mount=type=bind,from=…`: (image, source, target, rw), mounted only when the step
    /// runs, through a throwaway container whose layer takes any writes.
    pub from_binds: Vec<(String, String, String, bool)>,
    /// `--mount=type=cache,from=…`: (index in the spec's cache mounts, image, source), whose
    /// path seeds a cache made by this step.
    pub cache_seeds: Vec<(usize, String, String)>,
}

/// `source` under `root` with its symlinks resolved as if `root` were `/` (an absolute link
/// starts again at `root`, `..` stops there), so the host path a bind mount gets never leaves
/// `root`. Missing paths are Docker's cache-key error.
pub(super) fn inside(root: &Path, source: &str) -> Result<PathBuf, BuildError> {
    use std::path::Component;
    let missing = || {
        BuildError::NotFound(format!(
            "failed to compute cache key: \"/{}\" not found",
            source.trim_start_matches('/')
        ))
    };
    let push = |todo: &mut Vec<std::ffi::OsString>, p: &Path| {
        for c in p.components().rev() {
            match c {
                Component::Normal(n) => todo.push(n.to_os_string()),
                Component::ParentDir => todo.push("..".into()),
                _ => {}
            }
        }
    };
    let mut todo = Vec::new();
    push(&mut todo, Path::new(source));
    let mut cur = PathBuf::new();
    let mut links = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            cur.pop();
            continue;
        }
        let next = cur.join(&c);
        let m = std::fs::symlink_metadata(root.join(&next)).map_err(|_| missing())?;
        if !m.file_type().is_symlink() {
            cur = next;
            continue;
        }
        links += 1;
        if links > 40 {
            return Err(missing());
        }
        let target = std::fs::read_link(root.join(&next)).map_err(|_| missing())?;
        if target.is_absolute() {
            cur = PathBuf::new();
        }
        push(&mut todo, &target);
    }
    Ok(root.join(cur))
}

/// Where a RUN's mounts go in the container.
pub(super) fn mount_targets(spec: &RunSpec) -> Vec<String> {
    let bind_target = |b: &String| b.split(':').nth(1).map(str::to_string);
    spec.cache_mounts
        .iter()
        .map(|m| m.target.clone())
        .chain(spec.binds.iter().filter_map(bind_target))
        .chain(spec.tmpfs.iter().map(|(t, _)| t.clone()))
        .chain(spec.secrets.iter().map(|s| s.target.clone()))
        .collect()
}

/// For each target, its topmost ancestor (or itself) that `root` lacks.
pub(super) fn missing_paths(root: &Path, targets: &[String]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for t in targets {
        let mut acc = PathBuf::new();
        for c in confine(t).unwrap_or_default().components() {
            acc.push(c);
            if std::fs::symlink_metadata(root.join(&acc)).is_err() {
                if !out.iter().any(|o| acc.starts_with(o)) {
                    out.push(acc.clone());
                }
                break;
            }
        }
    }
    out
}

/// Removes `paths` (relative) under `root`, never through a symlinked parent.
pub(super) fn remove_paths(root: &Path, paths: &[PathBuf]) -> Result<(), BuildError> {
    let real_root = root
        .canonicalize()
        .map_err(BuildError::io("resolve container root"))?;
    for p in paths {
        let abs = root.join(p);
        let parent_ok = abs
            .parent()
            .and_then(|d| d.canonicalize().ok())
            .is_some_and(|d| d.starts_with(&real_root));
        let Ok(m) = std::fs::symlink_metadata(&abs) else {
            continue;
        };
        if !parent_ok {
            continue;
        }
        let r = if m.is_dir() {
            std::fs::remove_dir_all(&abs)
        } else {
            std::fs::remove_file(&abs)
        };
        r.map_err(BuildError::io(format!(
            "remove mount point {}",
            p.display()
        )))?;
    }
    Ok(())
}

impl StageRun<'_, '_> {
    pub(super) fn run_step(&mut self, r: &RunArgs) -> Result<(), BuildError> {
        let mut spec = RunSpec::default();
        let mut from_binds = Vec::new();
        let mut cache_seeds = Vec::new();
        // `type=secret,env=`: variables of this step only, never in the image or history.
        let mut secret_env = Vec::new();
        // What the mounts bring in, for the cache key: context contents, source images.
        let mut inputs = Sha256::new();
        for m in &r.mounts {
            let m = self.expand_word(m)?;
            match MountSpec::parse(&m).map_err(BuildError::NotSupported)? {
                MountSpec::Cache(c) => {
                    if let Some(from) = &c.from {
                        let image = self.source_image(from)?;
                        inputs.update(format!("cache-from{image}\0"));
                        cache_seeds.push((spec.cache_mounts.len(), image, c.source.clone()));
                    }
                    spec.cache_mounts.push(c)
                }
                MountSpec::Bind {
                    target,
                    source,
                    from: None,
                    rw,
                } => {
                    let host = inside(self.sh.ctx.root(), &source)?;
                    super::copy::hash_tree(&host, &Default::default(), &mut inputs)?;
                    // A writable bind gets a copy, so later steps still see the context.
                    let (host, mode) = if rw {
                        (self.scratch_copy(&host)?, "rw")
                    } else {
                        (host, "ro")
                    };
                    spec.binds
                        .push(format!("{}:{target}:{mode}", host.display()));
                }
                MountSpec::Bind {
                    target,
                    source,
                    from: Some(from),
                    rw,
                } => {
                    let image = self.source_image(&from)?;
                    inputs.update(format!("image{image}\0"));
                    from_binds.push((image, source, target, rw));
                }
                MountSpec::Tmpfs { target, size } => spec.tmpfs.push((target, size)),
                MountSpec::Secret {
                    id,
                    target,
                    env,
                    required,
                    uid,
                    gid,
                    mode,
                } => match self.sh.opts.secrets.0.get(&id) {
                    Some(data) => {
                        if let Some(var) = env {
                            secret_env.push(format!("{var}={}", String::from_utf8_lossy(data)));
                        }
                        if !target.is_empty() {
                            spec.secrets.push(SecretMount {
                                target,
                                data: data.clone(),
                                uid,
                                gid,
                                mode,
                            });
                        }
                    }
                    None if required => {
                        return Err(BuildError::InvalidArgument(format!(
                            "secret {id}: not found"
                        )))
                    }
                    None => {}
                },
            }
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
        env.extend(secret_env);
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
                resources: self.sh.opts.resources.clone(),
                shm_size: self.sh.opts.shm_size,
                ..spec
            },
            display,
            from_binds,
            cache_seeds,
        };
        // Which mounts a step has matters to it; of their contents only those of binds do
        // (BuildKit's rule: caches and secrets do not).
        let extra = format!(
            "network={network} mounts={:?} inputs={}",
            r.mounts,
            hex::encode(inputs.finalize())
        );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_resolves_links_within_the_root() {
        let t = tempfile::tempdir().expect("tmp");
        let r = t.path();
        std::fs::create_dir_all(r.join("bin")).expect("mkdir");
        std::fs::write(r.join("bin/busybox"), "x").expect("write");
        std::os::unix::fs::symlink("/bin/busybox", r.join("bin/sh")).expect("link");
        std::os::unix::fs::symlink("../../../etc", r.join("bin/up")).expect("link");
        std::os::unix::fs::symlink("loop", r.join("loop")).expect("link");
        assert_eq!(inside(r, "/bin/sh").expect("sh"), r.join("bin/busybox"));
        assert_eq!(
            inside(r, "bin/../bin/sh").expect("sh"),
            r.join("bin/busybox")
        );
        assert!(inside(r, "bin/up/passwd").is_err(), "stays under the root");
        assert!(inside(r, "loop").is_err());
        assert_eq!(inside(r, "").expect("root"), r.to_path_buf());
    }
}
