//! Helpers for the build tests: the classic `docker build` against a daemon and build
//! contexts written into its tempdir.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::{Daemon, DOCKER};

/// `docker build` with the classic builder; `stdin` for `-f -`.
pub fn build(d: &Daemon, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut c = Command::new("timeout")
        .args(["-s", "KILL", "120", DOCKER, "build"])
        .args(args)
        .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .env("DOCKER_BUILDKIT", "0")
        .env_remove("DOCKER_CONTEXT")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn docker build");
    if let (Some(data), Some(mut pipe)) = (stdin, c.stdin.take()) {
        use std::io::Write;
        let _ = pipe.write_all(data);
    }
    c.wait_with_output().expect("docker build output")
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
