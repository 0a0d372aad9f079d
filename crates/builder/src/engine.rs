//! The build engine: picks the stages the target needs, runs independent ones in parallel
//! (one wave of ready stages at a time), tags the result and reports progress as Docker's
//! classic builder words it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use wharf_api_types::container::Resources;

use crate::cache::CacheStore;
use crate::context::Context;
use crate::dispatch::{StageResult, StageRun};
use crate::dockerfile::{self, expand, Dockerfile, Instruction};
use crate::worker::{ImageInfo, MountSpec, Worker};
use crate::BuildError;

/// What the client asked for (`POST /build` query parameters).
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Path of the Dockerfile inside the context.
    pub dockerfile: String,
    /// `name[:tag]` references to point at the result.
    pub tags: Vec<String>,
    /// `--build-arg`; a `None` value means "take it from the client's environment", which
    /// the client already did, so it counts as unset.
    pub build_args: BTreeMap<String, Option<String>>,
    pub target: Option<String>,
    pub no_cache: bool,
    /// Labels set on the final image.
    pub labels: BTreeMap<String, String>,
    /// Network mode for RUN (`default`, `none`, `host`).
    pub network: String,
    /// Remove intermediate containers after a successful step.
    pub remove: bool,
    /// Remove them even when the step failed.
    pub force_remove: bool,
    /// Only the final image id is reported.
    pub quiet: bool,
    pub extra_hosts: Vec<String>,
    /// Pull every FROM image even when it is local (`--pull`).
    pub pull: bool,
    /// Stages (names or indices) built without the cache (`--no-cache-filter`).
    pub no_cache_filter: Vec<String>,
    /// Limits for RUN containers (`--memory`, `--cpu-shares`, `--cpuset-cpus`, `--ulimit`…).
    pub resources: Resources,
    /// Size of RUN containers' /dev/shm in bytes (`--shm-size`); 0: the daemon's default.
    pub shm_size: i64,
    /// Secrets `RUN --mount=type=secret` can mount, by id.
    pub secrets: Secrets,
    /// Local images whose history may stand in for steps (`--cache-from`).
    pub cache_from: Vec<String>,
}

/// Build secrets by id; `Debug` shows only the ids.
#[derive(Clone, Default)]
pub struct Secrets(pub BTreeMap<String, Vec<u8>>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            dockerfile: "Dockerfile".into(),
            tags: Vec::new(),
            build_args: BTreeMap::new(),
            target: None,
            no_cache: false,
            labels: BTreeMap::new(),
            network: "default".into(),
            remove: true,
            force_remove: false,
            quiet: false,
            extra_hosts: Vec::new(),
            pull: false,
            no_cache_filter: Vec::new(),
            resources: Resources::default(),
            shm_size: 0,
            secrets: Secrets::default(),
            cache_from: Vec::new(),
        }
    }
}

/// Progress as the API streams it; the daemon renders each as one JSON message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Text for the client's terminal (`{"stream": …}`).
    Stream(String),
    /// The built image's id (`{"aux": {"ID": …}}`).
    Aux(String),
}

/// Args every build knows without an ARG before FROM (Docker's automatic platform args).
pub fn platform_args() -> Vec<(String, String)> {
    let arch = wharf_image::host_arch();
    let platform = format!("linux/{arch}");
    [
        ("TARGETPLATFORM", platform.as_str()),
        ("TARGETOS", "linux"),
        ("TARGETARCH", arch),
        ("TARGETVARIANT", ""),
        ("BUILDPLATFORM", platform.as_str()),
        ("BUILDOS", "linux"),
        ("BUILDARCH", arch),
        ("BUILDVARIANT", ""),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Build args usable in RUN without an ARG (Docker's predefined proxy args).
pub const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Shared by the stages of one build.
pub(crate) struct Shared<'a> {
    pub worker: &'a dyn Worker,
    pub cache: &'a CacheStore,
    pub ctx: &'a Context,
    pub opts: &'a BuildOptions,
    pub df: &'a Dockerfile,
    pub out: &'a (dyn Fn(Event) + Sync),
    pub cancel: &'a AtomicBool,
    /// Global (meta) ARGs with their values.
    pub meta: Vec<(String, String)>,
    /// Build args some ARG consumed.
    pub consumed: Mutex<BTreeSet<String>>,
    /// The `--cache-from` images that exist locally (others are skipped, as dockerd does).
    pub cache_sources: Vec<ImageInfo>,
    /// Results of finished stages, by index.
    pub done: Mutex<HashMap<usize, StageResult>>,
    pub total_steps: usize,
}

impl Shared<'_> {
    pub fn say(&self, text: impl Into<String>) {
        if !self.opts.quiet {
            (self.out)(Event::Stream(text.into()));
        }
    }

    pub fn check_cancel(&self) -> Result<(), BuildError> {
        if self.cancel.load(Ordering::Relaxed) {
            Err(BuildError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Whether stage `index` must not use the cache (`--no-cache`, `--no-cache-filter`).
    pub fn no_cache(&self, index: usize) -> bool {
        let stage = &self.df.stages[index];
        self.opts.no_cache
            || self.opts.no_cache_filter.iter().any(|f| {
                stage.name.as_deref() == Some(f.to_ascii_lowercase().as_str())
                    || f.parse::<usize>() == Ok(index)
            })
    }

    pub fn build_arg(&self, name: &str) -> Option<String> {
        let v = self.opts.build_args.get(name).cloned().flatten()?;
        self.consumed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string());
        Some(v)
    }
}

/// Values of the ARGs before the first FROM, and the build args they consumed.
type MetaArgs = (Vec<(String, String)>, BTreeSet<String>);

/// Evaluates the ARGs before the first FROM.
fn meta_args(df: &Dockerfile, opts: &BuildOptions) -> Result<MetaArgs, BuildError> {
    let mut vals = platform_args();
    let mut consumed = BTreeSet::new();
    for a in &df.meta_args {
        let Instruction::Arg(pairs) = &a.instruction else {
            continue;
        };
        for (name, default) in pairs {
            let v = match opts.build_args.get(name).cloned().flatten() {
                Some(v) => {
                    consumed.insert(name.clone());
                    Some(v)
                }
                None => default
                    .as_deref()
                    .map(|d| expand::word(d, &vals, df.escape).map(|r| r.0))
                    .transpose()
                    .map_err(|e| {
                        BuildError::Parse(dockerfile::ParseError {
                            line: a.span.start,
                            message: e.to_string(),
                        })
                    })?,
            };
            vals.retain(|(k, _)| k != name);
            vals.push((name.clone(), v.unwrap_or_default()));
        }
    }
    Ok((vals, consumed))
}

/// The stage indices `target` needs, with each stage's dependencies.
fn plan(
    df: &Dockerfile,
    meta: &dyn expand::Vars,
    target: usize,
) -> Result<BTreeMap<usize, BTreeSet<usize>>, BuildError> {
    let mut deps: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        if deps.contains_key(&i) {
            continue;
        }
        let stage = &df.stages[i];
        let mut d = BTreeSet::new();
        let base = expand::word(&stage.base, meta, df.escape)
            .map(|r| r.0)
            .unwrap_or_else(|_| stage.base.clone());
        if let Some(j) = df
            .stage_index(&base)
            .filter(|j| *j < i && !base.chars().all(|c| c.is_ascii_digit()))
        {
            d.insert(j);
        }
        // Stages named by COPY --from and RUN --mount=…,from= (bind and cache).
        let froms = stage.commands.iter().flat_map(|c| match &c.instruction {
            Instruction::Copy(a) => a.from.iter().cloned().collect::<Vec<_>>(),
            Instruction::Run(r) => r
                .mounts
                .iter()
                .filter_map(|m| match MountSpec::parse(m) {
                    Ok(MountSpec::Bind { from, .. }) => from,
                    Ok(MountSpec::Cache(c)) => c.from,
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        });
        for from in froms {
            match df.stage_index(&from) {
                Some(j) if j < i => {
                    d.insert(j);
                }
                Some(j) if j >= i && from.chars().all(|c| c.is_ascii_digit()) => {
                    return Err(BuildError::InvalidArgument(format!(
                        "invalid from flag value {from}: refers to current or future build stage"
                    )))
                }
                _ => {}
            }
        }
        todo.extend(d.iter().copied());
        deps.insert(i, d);
    }
    Ok(deps)
}

/// Runs builds against one worker and cache.
pub struct Engine<'w> {
    worker: &'w dyn Worker,
    cache: CacheStore,
}

impl<'w> Engine<'w> {
    pub fn new(worker: &'w dyn Worker, cache: CacheStore) -> Self {
        Engine { worker, cache }
    }

    /// Builds `opts.target` (default: the last stage) from `ctx`; returns the image id.
    pub fn build(
        &self,
        ctx: &Context,
        opts: &BuildOptions,
        out: &(dyn Fn(Event) + Sync),
        cancel: &AtomicBool,
    ) -> Result<String, BuildError> {
        for t in &opts.tags {
            validate_tag(t)?;
        }
        let df = dockerfile::parse(&ctx.dockerfile(&opts.dockerfile)?)?;
        ctx.drop_ignored_build_files(&opts.dockerfile);
        let target = match &opts.target {
            Some(t) if !t.is_empty() => df.stage_index(t).ok_or_else(|| {
                BuildError::InvalidArgument(format!("target stage \"{t}\" could not be found"))
            })?,
            _ => df.stages.len() - 1,
        };
        for f in &opts.no_cache_filter {
            if df.stage_index(f).is_none() {
                return Err(BuildError::InvalidArgument(format!(
                    "no-cache-filter stage \"{f}\" could not be found"
                )));
            }
        }
        let (meta, consumed) = meta_args(&df, opts)?;
        let deps = plan(&df, &meta, target)?;
        let total_steps = deps.keys().map(|i| 1 + df.stages[*i].commands.len()).sum();
        let mut cache_sources = Vec::new();
        for r in &opts.cache_from {
            cache_sources.extend(self.worker.image(r)?);
        }
        let shared = Shared {
            worker: self.worker,
            cache: &self.cache,
            ctx,
            opts,
            df: &df,
            out,
            cancel,
            meta,
            consumed: Mutex::new(consumed),
            cache_sources,
            done: Mutex::new(HashMap::new()),
            total_steps,
        };
        // Step numbers follow file order, as the classic builder counts them.
        let mut first_step = BTreeMap::new();
        let mut n = 1;
        for i in deps.keys() {
            first_step.insert(*i, n);
            n += 1 + df.stages[*i].commands.len();
        }
        let mut pending: BTreeSet<usize> = deps.keys().copied().collect();
        while !pending.is_empty() {
            let ready: Vec<usize> = {
                let done = shared.done.lock().unwrap_or_else(|e| e.into_inner());
                pending
                    .iter()
                    .copied()
                    .filter(|i| deps[i].iter().all(|d| done.contains_key(d)))
                    .collect()
            };
            if ready.is_empty() {
                return Err(BuildError::InvalidArgument(
                    "circular dependency between build stages".into(),
                ));
            }
            let results: Vec<Result<(), BuildError>> = std::thread::scope(|s| {
                let handles: Vec<_> = ready
                    .iter()
                    .map(|&i| {
                        let sh = &shared;
                        let step = first_step[&i];
                        s.spawn(move || {
                            let r = StageRun::new(sh, i, step).run()?;
                            sh.done
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .insert(i, r);
                            Ok(())
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(BuildError::InvalidArgument("build stage panicked".into()))
                        })
                    })
                    .collect()
            });
            for r in results {
                r?;
            }
            for i in ready {
                pending.remove(&i);
            }
        }
        let result = shared
            .done
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&target)
            .ok_or_else(|| BuildError::InvalidArgument("target stage was not built".into()))?;
        let mut image = result.image.ok_or_else(|| {
            BuildError::NotSupported(
                "an image built FROM scratch with no instructions is empty".into(),
            )
        })?;
        if !opts.labels.is_empty() {
            let mut cfg = result.config.clone();
            let mut labels = cfg.labels.take().unwrap_or_default();
            labels.extend(opts.labels.clone());
            cfg.labels = Some(labels);
            let by = format!(
                "/bin/sh -c #(nop)  LABEL {}",
                opts.labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            image = self
                .worker
                .commit_config(Some(&image), &cfg, &by, result.author.as_deref())?;
        }
        let unused: Vec<String> = {
            let consumed = shared.consumed.lock().unwrap_or_else(|e| e.into_inner());
            opts.build_args
                .keys()
                .filter(|k| !consumed.contains(*k) && !PROXY_ARGS.contains(&k.as_str()))
                .cloned()
                .collect()
        };
        if !unused.is_empty() {
            shared.say(format!(
                "[Warning] One or more build-args [{}] were not consumed\n",
                unused.join(" ")
            ));
        }
        (out)(Event::Aux(image.clone()));
        shared.say(format!("Successfully built {}\n", short(&image)));
        for t in &opts.tags {
            self.worker.tag(&image, t)?;
            shared.say(format!("Successfully tagged {}\n", with_default_tag(t)));
        }
        if opts.quiet {
            out(Event::Stream(format!("{image}\n")));
        }
        Ok(image)
    }
}

/// The 12-hex short id Docker prints.
pub fn short(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

fn with_default_tag(t: &str) -> String {
    let last = t.rsplit('/').next().unwrap_or(t);
    if last.contains(':') || t.contains('@') {
        t.to_string()
    } else {
        format!("{t}:latest")
    }
}

fn validate_tag(t: &str) -> Result<(), BuildError> {
    let ok = !t.is_empty()
        && t.len() <= 255
        && t.chars().all(|c| {
            c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || "._-/:@".contains(c)
                || c.is_ascii_uppercase()
        })
        && !t.starts_with(['-', '.', '/', ':']);
    let repo = t.split(':').next().unwrap_or("");
    if ok && !repo.chars().any(|c| c.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(BuildError::InvalidArgument(format!(
            "invalid reference format: repository name ({t}) must be lowercase"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn df(s: &str) -> Dockerfile {
        dockerfile::parse(s).expect("parse")
    }

    #[test]
    fn plan_keeps_only_needed_stages() {
        let d = df("FROM busybox AS a\nFROM busybox AS unused\nFROM busybox AS b\nFROM a\nCOPY --from=b /x /y\n");
        let p = plan(&d, &Vec::new(), 3).expect("plan");
        assert_eq!(p.keys().copied().collect::<Vec<_>>(), [0, 2, 3]);
        assert_eq!(p[&3], BTreeSet::from([0, 2]));
        let p = plan(&d, &Vec::new(), 1).expect("plan");
        assert_eq!(p.keys().copied().collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn meta_args_take_build_args_and_expand_defaults() {
        let d = df("ARG A=1\nARG B=${A}0\nARG C\nFROM busybox:$B\n");
        let mut o = BuildOptions::default();
        o.build_args.insert("A".into(), Some("7".into()));
        let (m, consumed) = meta_args(&d, &o).expect("meta");
        assert_eq!(expand::Vars::get(&m, "B"), Some("70"));
        assert_eq!(expand::Vars::get(&m, "C"), Some(""));
        assert_eq!(expand::Vars::get(&m, "TARGETOS"), Some("linux"));
        assert!(consumed.contains("A"));
    }

    #[test]
    fn tags() {
        assert_eq!(with_default_tag("a/b"), "a/b:latest");
        assert_eq!(
            with_default_tag("localhost:5000/b"),
            "localhost:5000/b:latest"
        );
        assert_eq!(with_default_tag("a:1"), "a:1");
        assert!(validate_tag("Upper").is_err());
        assert!(validate_tag("ok/name:V1").is_ok());
        assert_eq!(short("sha256:0123456789abcdef"), "0123456789ab");
    }
}
