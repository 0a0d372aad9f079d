//! Helpers for the build tests: the classic `docker build` against a daemon and build
//! contexts written into its tempdir.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use super::registry::{run_cli, Cli};
use super::Daemon;

/// `docker build` with the classic builder; `stdin` for `-f -`.
pub fn build(d: &Daemon, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let args: Vec<&str> = std::iter::once("build")
        .chain(args.iter().copied())
        .collect();
    run_cli(
        d,
        Cli::Docker,
        &args,
        stdin,
        &[("DOCKER_BUILDKIT", "0".as_ref())],
    )
}

/// stdout then stderr.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `docker build` that must succeed; its output.
pub fn build_ok(d: &Daemon, args: &[&str]) -> String {
    let o = build(d, args, None);
    assert!(
        o.status.success(),
        "docker build {args:?} failed: {}\n--- daemon log ---\n{}",
        text(&o),
        d.log()
    );
    text(&o)
}

/// Writes `files` (path, content) under a fresh directory `name` in the daemon's tempdir.
pub fn context(d: &Daemon, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = d.dir.path().join(name);
    for (p, c) in files {
        let path = dir.join(p);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(&path, c).expect("write");
    }
    dir
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// How many steps a build's output says came from the cache.
pub fn using_cache(out: &str) -> usize {
    out.matches("Using cache").count()
}
