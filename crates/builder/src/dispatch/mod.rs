//! Running one stage: its state (image, config, ARGs in scope) and the step protocol every
//! instruction goes through (print, probe the cache, make the image, record it). One file per
//! instruction family: [`meta`], [`run`], [`copy`].

mod copy;
pub use copy::copy_tree;
mod meta;
mod run;

use wharf_image::ContainerConfig;

use crate::cache::CacheRecord;
use crate::dockerfile::expand;
use crate::dockerfile::{instructions, Instruction, ParseError, Spanned};
use crate::engine::{short, Shared};
use crate::BuildError;

/// What a finished stage left: its image (none for an empty `FROM scratch`) and config.
#[derive(Debug, Clone)]
pub struct StageResult {
    pub image: Option<String>,
    pub config: ContainerConfig,
    pub author: Option<String>,
}

/// The default PATH Docker gives images without one.
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A stage being built.
pub(crate) struct StageRun<'s, 'a> {
    sh: &'s Shared<'a>,
    index: usize,
    step: usize,
    image: Option<String>,
    config: ContainerConfig,
    /// ARGs declared in this stage, with values.
    args: Vec<(String, String)>,
    /// Line of the instruction being run (for expansion errors).
    line: usize,
    /// CMD ran in this stage (ENTRYPOINT then keeps it).
    cmd_set: bool,
    /// MAINTAINER's value: the `Author` of every image the stage commits after it.
    author: Option<String>,
}

/// A step that changes the filesystem, done in a build container.
pub(crate) enum FsOp<'x> {
    Run(&'x run::Prepared),
    Copy(&'x copy::Prepared),
    Mkdir(&'x str),
}

impl<'s, 'a> StageRun<'s, 'a> {
    pub fn new(sh: &'s Shared<'a>, index: usize, step: usize) -> Self {
        StageRun {
            sh,
            index,
            step,
            image: None,
            config: ContainerConfig::default(),
            args: Vec::new(),
            line: 0,
            cmd_set: false,
            author: None,
        }
    }

    fn next_step(&mut self, original: &str) {
        self.sh.say(format!(
            "Step {}/{} : {original}\n",
            self.step, self.sh.total_steps
        ));
        self.step += 1;
    }

    /// The stage's variables for expansion: ARGs, then ENV (ENV wins).
    fn vars(&self) -> Vec<(String, String)> {
        let mut v = self.args.clone();
        for e in self.config.env.iter().flatten() {
            let (k, val) = e.split_once('=').unwrap_or((e, ""));
            v.push((k.to_string(), val.to_string()));
        }
        v
    }

    fn expand_word(&self, w: &str) -> Result<String, BuildError> {
        expand::word(w, &self.vars(), self.sh.df.escape)
            .map(|r| r.0)
            .map_err(|e| self.err(e.to_string()))
    }

    fn err(&self, message: String) -> BuildError {
        BuildError::Parse(ParseError {
            line: self.line,
            message,
        })
    }

    /// The shell for shell forms: SHELL's, else `/bin/sh -c`.
    fn shell(&self) -> Vec<String> {
        self.config
            .shell
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }

    /// `<shell> #(nop) ` + text, as the classic builder records metadata steps.
    fn nop(&self, text: &str) -> String {
        format!("{} #(nop) {text}", self.shell().join(" "))
    }

    pub fn run(mut self) -> Result<StageResult, BuildError> {
        let stage = &self.sh.df.stages[self.index];
        self.line = stage.span.start;
        self.next_step(&stage.original);
        self.from()?;
        let commands: &[Spanned] = &stage.commands;
        for c in commands {
            self.sh.check_cancel()?;
            self.line = c.span.start;
            self.next_step(&c.original);
            self.dispatch(&c.instruction)?;
        }
        Ok(StageResult {
            image: self.image,
            config: self.config,
            author: self.author,
        })
    }

    fn from(&mut self) -> Result<(), BuildError> {
        let stage = &self.sh.df.stages[self.index];
        let base = expand::word(&stage.base, &self.sh.meta, self.sh.df.escape)
            .map_err(|e| self.err(e.to_string()))?
            .0;
        if base.is_empty() {
            return Err(self.err(format!("base name ({}) should not be blank", stage.base)));
        }
        let earlier = self
            .sh
            .df
            .stage_index(&base)
            .filter(|j| *j < self.index && !base.chars().all(|c| c.is_ascii_digit()));
        if let Some(j) = earlier {
            let done = self.sh.done.lock().unwrap_or_else(|e| e.into_inner());
            let r = done.get(&j).ok_or_else(|| {
                BuildError::InvalidArgument(format!("stage {base} was not built"))
            })?;
            self.image = r.image.clone();
            self.config = r.config.clone();
        } else if base.eq_ignore_ascii_case("scratch") {
            self.config.env = Some(vec![DEFAULT_PATH.to_string()]);
        } else {
            let local = if self.sh.opts.pull {
                None
            } else {
                self.sh.worker.image(&base)?
            };
            let info = match local {
                Some(i) => i,
                None => self.sh.worker.pull(&base)?,
            };
            self.image = Some(info.id.clone());
            self.config = info.config;
            if self.config.env.as_ref().is_none_or(|e| e.is_empty()) {
                self.config.env = Some(vec![DEFAULT_PATH.to_string()]);
            }
        }
        if let Some(img) = &self.image {
            self.sh.say(format!(" ---> {}\n", short(img)));
        }
        let triggers = self.config.on_build.take().unwrap_or_default();
        if !triggers.is_empty() {
            let n = triggers.len();
            self.sh.say(format!(
                "# Executing {n} build trigger{}\n",
                if n == 1 { "" } else { "s" }
            ));
            for t in triggers {
                let ins = instructions::parse_trigger(&t).map_err(|m| self.err(m))?;
                self.dispatch(&ins)?;
            }
        }
        Ok(())
    }

    fn dispatch(&mut self, ins: &Instruction) -> Result<(), BuildError> {
        match ins {
            Instruction::Run(r) => self.run_step(r),
            Instruction::Copy(c) => self.copy_step(c, false),
            Instruction::Add(c) => self.copy_step(c, true),
            Instruction::Workdir(w) => self.workdir(w),
            Instruction::From { .. } => Err(self.err("FROM isn't allowed here".into())),
            other => self.meta(other),
        }
    }

    /// The step protocol: cache probe, then `make`, then record. `key_extra` holds what
    /// decides the result but is not in the history text (COPY's --chown, for one).
    fn commit_step(
        &mut self,
        created_by: &str,
        key_extra: &str,
        op: Option<FsOp<'_>>,
    ) -> Result<(), BuildError> {
        let config_json = serde_json::to_value(&self.config).unwrap_or_default();
        let step = format!("{created_by}\u{0}{key_extra}\u{0}author={:?}", self.author);
        let platform = format!("linux/{}", wharf_image::host_arch());
        let key = CacheRecord {
            version: 1,
            parent: self.image.as_deref().unwrap_or("scratch"),
            step: &step,
            config: &config_json,
            platform: &platform,
        }
        .key();
        if !self.sh.no_cache(self.index) {
            if let Some(id) = self.sh.cache.get(&key) {
                if self.sh.worker.image(&id)?.is_some() {
                    self.sh.say(" ---> Using cache\n");
                    self.sh.say(format!(" ---> {}\n", short(&id)));
                    self.image = Some(id);
                    return Ok(());
                }
            }
        }
        let restored = if self.sh.no_cache(self.index) {
            None
        } else {
            self.cache_source_hit(created_by)?
        };
        if let Some(id) = restored {
            self.sh.cache.put(&key, &id)?;
            self.sh.say(" ---> Using cache\n");
            self.sh.say(format!(" ---> {}\n", short(&id)));
            self.image = Some(id);
            return Ok(());
        }
        let id = match op {
            None => self.sh.worker.commit_config(
                self.image.as_deref(),
                &self.config,
                created_by,
                self.author.as_deref(),
            )?,
            Some(op) => self.in_container(op, created_by)?,
        };
        self.sh.cache.put(&key, &id)?;
        self.sh.say(format!(" ---> {}\n", short(&id)));
        self.image = Some(id);
        Ok(())
    }

    /// The step `created_by` from a `--cache-from` image, dockerd's way: an image whose
    /// history and layers start with the current image's and whose next row is this step.
    /// Its last row is the image itself; an earlier one is restored as a new image.
    fn cache_source_hit(&self, created_by: &str) -> Result<Option<String>, BuildError> {
        if self.sh.cache_sources.is_empty() {
            return Ok(None);
        }
        let parent = match &self.image {
            Some(p) => self.sh.worker.image(p)?,
            None => None,
        };
        let (history, diff_ids) = parent.map(|p| (p.history, p.diff_ids)).unwrap_or_default();
        let n = history.len();
        let same = |a: &wharf_image::HistoryItem, b: &wharf_image::HistoryItem| {
            a.created_by == b.created_by && a.empty_layer == b.empty_layer
        };
        for src in &self.sh.cache_sources {
            let fits = src.history.len() > n
                && src.diff_ids.starts_with(&diff_ids)
                && src.history[..n]
                    .iter()
                    .zip(&history)
                    .all(|(a, b)| same(a, b))
                && src.history[n].created_by.as_deref() == Some(created_by);
            if !fits {
                continue;
            }
            if src.history.len() == n + 1 {
                return Ok(Some(src.id.clone()));
            }
            return self
                .sh
                .worker
                .restore_step(self.image.as_deref(), &src.id, n, &self.config)
                .map(Some);
        }
        Ok(None)
    }

    /// Creates a build container on the current image, does `op`, commits, cleans up.
    fn in_container(&mut self, op: FsOp<'_>, created_by: &str) -> Result<String, BuildError> {
        let image = match self.image.clone() {
            Some(i) => i,
            // FROM scratch: an empty image without history to put the container on.
            None => self.sh.worker.commit_config(None, &self.config, "", None)?,
        };
        if matches!(op, FsOp::Run(_)) && self.image.is_none() {
            return Err(BuildError::InvalidArgument(
                "RUN in a FROM scratch stage has no shell to run: copy one in first".into(),
            ));
        }
        let mut spec = match &op {
            FsOp::Run(p) => p.spec.clone(),
            _ => crate::worker::RunSpec {
                cmd: [self.shell(), vec![format!("#(nop) {created_by}")]].concat(),
                env: self.config.env.clone().unwrap_or_default(),
                user: self.config.user.clone(),
                workdir: self.config.working_dir.clone(),
                network: "none".into(),
                ..Default::default()
            },
        };
        let worker = self.sh.worker;
        // Images that `--mount=type=bind,from=` reads, open while the step runs.
        let mut sources = Vec::new();
        let mut opened = Ok(());
        if let FsOp::Run(p) = &op {
            for (img, source, target, rw) in &p.from_binds {
                let mut slot = None;
                let root = self.open_image(img, &mut slot);
                sources.extend(slot);
                let mode = if *rw { "rw" } else { "ro" };
                match root.and_then(|r| run::inside(&r, source)) {
                    Ok(host) => spec
                        .binds
                        .push(format!("{}:{target}:{mode}", host.display())),
                    Err(e) => {
                        opened = Err(e);
                        break;
                    }
                }
            }
        }
        if let (FsOp::Run(p), Ok(())) = (&op, &opened) {
            for (i, img, source) in &p.cache_seeds {
                let mut slot = None;
                let root = self.open_image(img, &mut slot);
                sources.extend(slot);
                match (
                    root.and_then(|r| run::inside(&r, source)),
                    spec.cache_mounts.get_mut(*i),
                ) {
                    (Ok(host), Some(m)) => m.seed = Some(host),
                    (Err(e), _) => {
                        opened = Err(e);
                        break;
                    }
                    (Ok(_), None) => {}
                }
            }
        }
        let res = opened.and_then(|_| self.in_container_with(op, created_by, &image, &spec));
        for cid in sources {
            let _ = worker.unmount(&cid);
            worker.remove(&cid)?;
        }
        res
    }

    fn in_container_with(
        &mut self,
        op: FsOp<'_>,
        created_by: &str,
        image: &str,
        spec: &crate::worker::RunSpec,
    ) -> Result<String, BuildError> {
        let worker = self.sh.worker;
        let cid = worker.create(image, spec)?;
        let res = (|| -> Result<String, BuildError> {
            match op {
                FsOp::Run(p) => {
                    // Mount points the runtime creates for RUN --mount stay out of the layer.
                    let targets = run::mount_targets(spec);
                    let fresh = if targets.is_empty() {
                        Vec::new()
                    } else {
                        let root = worker.mount(&cid)?;
                        let f = run::missing_paths(&root, &targets);
                        worker.unmount(&cid)?;
                        f
                    };
                    self.exec(&cid, p)?;
                    if !fresh.is_empty() {
                        let root = worker.mount(&cid)?;
                        let r = run::remove_paths(&root, &fresh);
                        worker.unmount(&cid)?;
                        r?;
                    }
                }
                FsOp::Copy(p) => {
                    let root = worker.mount(&cid)?;
                    let r = p.apply(&root);
                    worker.unmount(&cid)?;
                    r?;
                }
                FsOp::Mkdir(dir) => {
                    let root = worker.mount(&cid)?;
                    let r = copy::mkdir_in(&root, dir);
                    worker.unmount(&cid)?;
                    r?;
                }
            }
            worker.commit(&cid, &self.config, created_by, self.author.as_deref())
        })();
        let remove = if res.is_ok() {
            self.sh.opts.remove || self.sh.opts.force_remove
        } else {
            self.sh.opts.force_remove
        };
        if remove {
            worker.remove(&cid)?;
            if res.is_ok() && self.ran_in(spec) {
                self.sh.say(format!(
                    " ---> Removed intermediate container {}\n",
                    short(&cid)
                ));
            }
        }
        res
    }

    /// Mounts `image`'s filesystem through a container that is never started, recorded in
    /// `slot` for the caller to unmount and remove; returns its root.
    pub(super) fn open_image(
        &self,
        image: &str,
        slot: &mut Option<String>,
    ) -> Result<std::path::PathBuf, BuildError> {
        let spec = crate::worker::RunSpec {
            cmd: vec!["/bin/sh".into(), "-c".into(), "#(nop) source".into()],
            network: "none".into(),
            ..Default::default()
        };
        let cid = self.sh.worker.create(image, &spec)?;
        *slot = Some(cid.clone());
        self.sh.worker.mount(&cid)
    }

    fn ran_in(&self, spec: &crate::worker::RunSpec) -> bool {
        !spec.cmd.iter().any(|a| a.starts_with("#(nop) "))
    }

    fn arg_value(&self, name: &str) -> Option<String> {
        expand::Vars::get(&self.sh.meta, name).map(str::to_string)
    }
}
