//! Drives a runc-compatible runtime binary. Command lines are built as data (unit-tested); the
//! runtime's own error message is recovered from its `--log` JSON file.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use wharf_shim_proto::RuntimeConfig;

/// A failed runtime invocation.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The binary could not be started.
    #[error("cannot run runtime {path}: {source}")]
    Spawn {
        /// The runtime binary.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The runtime ran and failed; `message` is its own error text when it logged one.
    #[error("runtime {verb} failed: {message}")]
    Failed {
        /// The verb (create, start, kill, ...).
        verb: String,
        /// The runtime's error message.
        message: String,
    },
}

/// The runtime command line of one container.
#[derive(Debug, Clone)]
pub struct Runtime {
    path: PathBuf,
    global: Vec<OsString>,
    log: PathBuf,
}

/// A runtime process in flight, with the log position its errors will start at.
#[derive(Debug)]
pub struct Running {
    /// The runtime process.
    pub child: Child,
    verb: String,
    log_offset: u64,
}

impl Runtime {
    /// The runtime from `cfg`, logging (JSON) to `log`.
    pub fn new(cfg: &RuntimeConfig, log: &Path) -> Runtime {
        let mut global: Vec<OsString> = vec!["--root".into(), cfg.root.clone().into()];
        global.extend(cfg.args.iter().map(OsString::from));
        global.extend([
            "--log".into(),
            log.into(),
            "--log-format".into(),
            "json".into(),
        ]);
        Runtime {
            path: cfg.path.clone(),
            global,
            log: log.to_path_buf(),
        }
    }

    /// Global options followed by `args`.
    pub fn argv(&self, args: Vec<OsString>) -> Vec<OsString> {
        let mut v = self.global.clone();
        v.extend(args);
        v
    }

    /// Runs a verb that needs no stdio and waits for it.
    pub fn run(&self, args: Vec<OsString>) -> Result<(), RuntimeError> {
        let running = self.spawn(args, Stdio::null(), Stdio::null(), Stdio::null())?;
        self.wait(running)
    }

    /// Starts the runtime with the given stdio (the container inherits it for create/exec).
    pub fn spawn(
        &self,
        args: Vec<OsString>,
        stdin: Stdio,
        stdout: Stdio,
        stderr: Stdio,
    ) -> Result<Running, RuntimeError> {
        let verb = verb_of(&args);
        let log_offset = std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0);
        let mut cmd = Command::new(&self.path);
        cmd.args(self.argv(args))
            .stdin(stdin)
            .stdout(stdout)
            .stderr(stderr);
        let child = cmd.spawn().map_err(|source| RuntimeError::Spawn {
            path: self.path.clone(),
            source,
        })?;
        Ok(Running {
            child,
            verb,
            log_offset,
        })
    }

    /// Waits for a spawned runtime and turns a failure into its error message.
    pub fn wait(&self, mut running: Running) -> Result<(), RuntimeError> {
        let status = running.child.wait().map_err(|source| RuntimeError::Spawn {
            path: self.path.clone(),
            source,
        })?;
        self.check(&running, status)
    }

    /// The result of a runtime that exited with `status`.
    pub fn check(&self, running: &Running, status: ExitStatus) -> Result<(), RuntimeError> {
        if status.success() {
            return Ok(());
        }
        let message = last_error(&self.log, running.log_offset)
            .unwrap_or_else(|| format!("{} exited with {status}", self.path.display()));
        Err(RuntimeError::Failed {
            verb: running.verb.clone(),
            message,
        })
    }
}

/// The first non-option argument: the verb.
fn verb_of(args: &[OsString]) -> String {
    args.first()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The last `"level":"error"` message the runtime logged after `offset`.
fn last_error(log: &Path, offset: u64) -> Option<String> {
    let mut f = File::open(log).ok()?;
    f.seek(SeekFrom::Start(offset)).ok()?;
    let mut text = String::new();
    f.read_to_string(&mut text).ok()?;
    text.lines().rev().find_map(|line| {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        if v.get("level")?.as_str()? != "error" {
            return None;
        }
        Some(v.get("msg")?.as_str()?.trim().to_string())
    })
}

/// Builders for the verbs the shim uses (arguments after the global options).
pub mod verbs {
    use std::ffi::OsString;
    use std::path::Path;

    fn os(parts: &[&str]) -> Vec<OsString> {
        parts.iter().map(OsString::from).collect()
    }

    /// `create --bundle B --pid-file P [--console-socket S] ID`.
    pub fn create(
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        console: Option<&Path>,
    ) -> Vec<OsString> {
        let mut v = os(&["create", "--bundle"]);
        v.push(bundle.into());
        v.push("--pid-file".into());
        v.push(pid_file.into());
        if let Some(sock) = console {
            v.push("--console-socket".into());
            v.push(sock.into());
        }
        v.push(id.into());
        v
    }

    /// `exec --detach --process F --pid-file P [--tty --console-socket S] ID`.
    pub fn exec(
        id: &str,
        process: &Path,
        pid_file: &Path,
        console: Option<&Path>,
    ) -> Vec<OsString> {
        let mut v = os(&["exec", "--detach", "--process"]);
        v.push(process.into());
        v.push("--pid-file".into());
        v.push(pid_file.into());
        if let Some(sock) = console {
            v.push("--tty".into());
            v.push("--console-socket".into());
            v.push(sock.into());
        }
        v.push(id.into());
        v
    }

    /// `start ID`.
    pub fn start(id: &str) -> Vec<OsString> {
        os(&["start", id])
    }

    /// `kill [--all] ID SIGNAL`.
    pub fn kill(id: &str, signal: i32, all: bool) -> Vec<OsString> {
        let sig = signal.to_string();
        if all {
            os(&["kill", "--all", id, &sig])
        } else {
            os(&["kill", id, &sig])
        }
    }

    /// `pause ID`.
    pub fn pause(id: &str) -> Vec<OsString> {
        os(&["pause", id])
    }

    /// `resume ID`.
    pub fn resume(id: &str) -> Vec<OsString> {
        os(&["resume", id])
    }

    /// `update -r FILE ID`.
    pub fn update(id: &str, resources: &Path) -> Vec<OsString> {
        let mut v = os(&["update", "-r"]);
        v.push(resources.into());
        v.push(id.into());
        v
    }

    /// `delete --force ID`.
    pub fn delete_force(id: &str) -> Vec<OsString> {
        os(&["delete", "--force", id])
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn runtime(dir: &Path, path: &str) -> Runtime {
        let cfg = RuntimeConfig {
            path: path.into(),
            root: "/run/r".into(),
            args: vec!["--systemd-cgroup".into()],
        };
        Runtime::new(&cfg, &dir.join("runtime.log"))
    }

    #[test]
    fn command_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rt = runtime(dir.path(), "runc");
        let argv = rt.argv(verbs::create(
            "c1",
            Path::new("/b"),
            Path::new("/p"),
            Some(Path::new("/s")),
        ));
        let log = dir.path().join("runtime.log").display().to_string();
        let expect = [
            "--root",
            "/run/r",
            "--systemd-cgroup",
            "--log",
            &log,
            "--log-format",
            "json",
            "create",
            "--bundle",
            "/b",
            "--pid-file",
            "/p",
            "--console-socket",
            "/s",
            "c1",
        ];
        assert_eq!(argv, expect.iter().map(OsString::from).collect::<Vec<_>>());
        assert_eq!(
            verbs::kill("c1", 9, true),
            ["kill", "--all", "c1", "9"].map(OsString::from)
        );
        assert_eq!(
            verbs::exec("c1", Path::new("/x.json"), Path::new("/x.pid"), None),
            [
                "exec",
                "--detach",
                "--process",
                "/x.json",
                "--pid-file",
                "/x.pid",
                "c1"
            ]
            .map(OsString::from)
        );
    }

    #[test]
    fn failure_reports_the_runtimes_last_logged_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("runtime.log");
        fs::write(&log, "{\"level\":\"error\",\"msg\":\"old failure\"}\n").expect("seed log");
        // A stand-in runtime: a shell script that logs like runc and fails.
        let script = dir.path().join("fake-runtime");
        fs::write(
            &script,
            format!(
                "#!/bin/sh\necho '{{\"level\":\"warning\",\"msg\":\"w\"}}' >> {0}\n\
                 echo '{{\"level\":\"error\",\"msg\":\"container id is taken \"}}' >> {0}\n\
                 echo '{{\"level\":\"info\",\"msg\":\"bye\"}}' >> {0}\nexit 1\n",
                log.display()
            ),
        )
        .expect("script");
        fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        let rt = runtime(dir.path(), &script.display().to_string());
        // A concurrent fork in another test thread may briefly hold the script open for
        // writing (ETXTBSY); that is a property of the test, not of the code under test.
        let err = loop {
            match rt.run(verbs::start("c1")) {
                Err(RuntimeError::Spawn { source, .. })
                    if source.raw_os_error() == Some(libc::ETXTBSY) =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                other => break other.expect_err("must fail"),
            }
        };
        assert_eq!(
            err.to_string(),
            "runtime start failed: container id is taken"
        );
        let ok = Runtime::new(
            &RuntimeConfig {
                path: "/bin/true".into(),
                root: "/r".into(),
                args: vec![],
            },
            &log,
        );
        ok.run(verbs::start("c1")).expect("true succeeds");
    }
}
