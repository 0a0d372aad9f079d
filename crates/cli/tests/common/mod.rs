//! A private `wharfd` for end-to-end tests: its own data root, exec root and socket, a busybox
//! image imported from the host's busybox, and teardown that removes everything it created.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const DOCKER: &str = "/usr/local/bin/docker";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name unique across concurrent test runs on this machine.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// Directory holding the freshly built binaries (wharf, wharfd, wharf-shim, ...).
pub fn bin_dir() -> PathBuf {
    let wharf = PathBuf::from(env!("CARGO_BIN_EXE_wharf"));
    let dir = wharf
        .parent()
        .expect("binary has a directory")
        .to_path_buf();
    if !dir.join("wharfd").exists()
        || !dir.join("wharf-shim").exists()
        || !dir.join("wharf-runtime").exists()
    {
        // `cargo test -p wharf` builds only this package; the daemon side is needed too.
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .args([
                "build",
                "-p",
                "wharfd",
                "-p",
                "wharf-shim",
                "-p",
                "wharf-runtime",
                "-p",
                "wharf-init",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build for the daemon binaries");
        assert!(
            st.success(),
            "building wharfd/wharf-shim/wharf-runtime/wharf-init failed"
        );
    }
    dir
}

pub struct Daemon {
    child: Option<Child>,
    pub sock: PathBuf,
    pub bin: PathBuf,
    data: tempfile::TempDir,
    // Long on purpose: the shims' socket paths under it exceed the 108-byte unix socket limit.
    exec: tempfile::TempDir,
    pub docker_config: PathBuf,
    /// Our own cgroup parent, so containers never land beside other daemons' (and removal is ours).
    cgroup_parent: String,
    /// Our own bridge and subnets (freed after the daemon stops).
    _net: wharf_testutil::net::TestNet,
}

impl Daemon {
    /// Starts wharfd and waits until it answers; imports `busybox:latest`.
    pub fn start() -> Daemon {
        wharf_testutil::require_root!();
        let bin = bin_dir();
        let data = tempfile::Builder::new()
            .prefix("wharf-cli-e2e")
            .tempdir()
            .expect("data tempdir");
        let exec = tempfile::Builder::new()
            .prefix("wharf-cli-e2e-exec-root-with-a-long-name-")
            .tempdir_in("/tmp")
            .expect("exec tempdir");
        let sock = data.path().join("wharfd.sock");
        let log = std::fs::File::create(data.path().join("wharfd.log")).expect("log file");
        let cgroup_parent = unique("wharf-cli-test");
        let net = wharf_testutil::net::TestNet::claim();
        let child = Command::new(bin.join("wharfd"))
            .args(net.daemon_flags())
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .arg("--data-root")
            .arg(data.path().join("data"))
            .arg("--exec-root")
            .arg(exec.path())
            .arg("--pidfile")
            .arg(data.path().join("wharfd.pid"))
            .arg("--helpers-dir")
            .arg(&bin)
            .arg("--cgroup-parent")
            .arg(&cgroup_parent)
            // Never reach Docker Hub from a test.
            .args(["--block-registry", "docker.io"])
            // Leave the host's global ip_forward alone.
            .arg("--ip-forward=false")
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("spawn wharfd");
        let docker_config = data.path().join("docker-config");
        std::fs::create_dir_all(&docker_config).expect("docker config dir");
        let d = Daemon {
            child: Some(child),
            sock,
            bin,
            data,
            exec,
            docker_config,
            cgroup_parent,
            _net: net,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !d.wharf(&["version"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "wharfd did not come up; log:\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let tar = d.data.path().join("busybox.tar");
        wharf_testutil::busybox_rootfs_tar(&tar).expect("busybox tar");
        let out = d.wharf(&[
            "import",
            tar.to_str().expect("utf-8 path"),
            "busybox:latest",
        ]);
        assert!(
            out.status.success(),
            "import failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        d
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("wharfd.log")).unwrap_or_default()
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.sock.display())
    }

    /// Environment both CLIs get: our daemon, an empty client config.
    pub fn env(&self, cmd: &mut Command) {
        cmd.env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", &self.docker_config)
            .env_remove("WHARF_HOST")
            .env_remove("DOCKER_API_VERSION")
            .env_remove("DOCKER_TLS_VERIFY")
            .env("TZ", "UTC")
            .stdin(Stdio::null());
    }

    pub fn wharf(&self, args: &[&str]) -> Output {
        let mut c = Command::new(self.bin.join("wharf"));
        self.env(&mut c);
        c.args(args).output().expect("run wharf")
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        let mut c = Command::new(DOCKER);
        self.env(&mut c);
        c.args(args).output().expect("run docker")
    }

    pub fn wharf_path(&self) -> PathBuf {
        self.bin.join("wharf")
    }

    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let ids = self.wharf(&["ps", "-aq", "--no-trunc"]);
        let ids = String::from_utf8_lossy(&ids.stdout).to_string();
        let ids: Vec<&str> = ids.lines().filter(|l| !l.is_empty()).collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids);
            let _ = self.wharf(&args);
        }
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(100))
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
        // Shims outlive the daemon by design; they exit once their containers are gone. Wait for
        // them, then kill any that remain, so nothing of ours survives the test.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = procs_mentioning(self.exec.path());
            if left.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                for pid in left {
                    let _ = Command::new("kill")
                        .arg("-KILL")
                        .arg(pid.to_string())
                        .status();
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        // Our cgroup parent in every v1 hierarchy (and the unified one): children first.
        if let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") {
            for h in hierarchies.flatten() {
                let parent = h.path().join(&self.cgroup_parent);
                if let Ok(children) = std::fs::read_dir(&parent) {
                    for c in children.flatten().filter(|c| c.path().is_dir()) {
                        let _ = std::fs::remove_dir(c.path());
                    }
                }
                let _ = std::fs::remove_dir(&parent);
            }
        }
        // Anything the daemon left mounted under our roots must go before the dirs are removed.
        for root in [self.data.path(), self.exec.path()] {
            let _ = Command::new("umount")
                .arg("-R")
                .arg("-l")
                .arg(root)
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Live (non-zombie) processes whose command line mentions `path`.
fn procs_mentioning(path: &Path) -> Vec<u32> {
    let needle = path.to_string_lossy().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            !cmd.is_empty() && String::from_utf8_lossy(&cmd).contains(&needle)
        })
        .collect()
}

/// Replaces human times ("Less than a second ago", "3 seconds", "About a minute") with `T` and
/// collapses runs of spaces, so two runs a moment apart compare equal.
pub fn normalise(s: &str) -> String {
    let mut t = s.to_string();
    for phrase in ["Less than a second", "About a minute", "About an hour"] {
        t = t.replace(phrase, "T");
    }
    let units = [
        "seconds", "second", "minutes", "minute", "hours", "hour", "days", "weeks", "months",
        "years",
    ];
    let mut out = String::with_capacity(t.len());
    let b = t.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() && (i == 0 || !b[i - 1].is_ascii_alphanumeric()) {
            let mut j = i;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            if t[j..].starts_with(' ') {
                if let Some(u) = units.iter().find(|u| t[j + 1..].starts_with(**u)) {
                    out.push('T');
                    i = j + 1 + u.len();
                    continue;
                }
            }
            out.push_str(&t[i..j]);
            i = j;
            continue;
        }
        let ch = t[i..].chars().next().expect("in bounds");
        out.push(ch);
        i += ch.len_utf8();
    }
    let mut collapsed = String::with_capacity(out.len());
    let mut prev_space = false;
    for c in out.chars() {
        if c == ' ' && prev_space {
            continue;
        }
        prev_space = c == ' ';
        collapsed.push(c);
    }
    collapsed
}
