//! Shared fixture for the end-to-end tests: a busybox bundle in a tempdir, a private state
//! root, a unique container id, and a Drop guard that force-deletes the container.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The binary under test.
pub const WHARF: &str = env!("CARGO_BIN_EXE_wharf-runtime");

/// One test's container: bundle, state root, id.
pub struct Bundle {
    pub dir: tempfile::TempDir,
    pub id: String,
    pub config: Value,
    /// The runtime binary used (runc or wharf-runtime).
    pub runtime: PathBuf,
}

impl Bundle {
    /// A fresh busybox bundle whose config comes from `wharf-runtime spec`.
    pub fn new(name: &str) -> Bundle {
        Bundle::with_runtime(name, Path::new(WHARF))
    }

    /// Same, driven by another runtime binary (for runc comparisons).
    pub fn with_runtime(name: &str, runtime: &Path) -> Bundle {
        wharf_testutil::require_root!();
        let dir = tempfile::tempdir().expect("tempdir");
        let rootfs = dir.path().join("bundle/rootfs");
        std::fs::create_dir_all(&rootfs).expect("mkdir rootfs");
        wharf_testutil::make_busybox_rootfs(&rootfs).expect("busybox rootfs");
        let out = Command::new(WHARF)
            .args(["spec", "--bundle"])
            .arg(dir.path().join("bundle"))
            .output()
            .expect("run spec");
        assert!(out.status.success(), "spec failed: {}", String::from_utf8_lossy(&out.stderr));
        let config: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("bundle/config.json")).expect("read config"))
                .expect("parse config");
        let id = format!("w{}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed), name);
        Bundle { dir, id, config, runtime: runtime.to_path_buf() }
    }

    pub fn bundle(&self) -> PathBuf {
        self.dir.path().join("bundle")
    }

    pub fn rootfs(&self) -> PathBuf {
        self.bundle().join("rootfs")
    }

    pub fn state_root(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Sets the process to `sh -c script`.
    pub fn script(&mut self, script: &str) -> &mut Self {
        self.config["process"]["args"] = serde_json::json!(["sh", "-c", script]);
        self
    }

    /// Writes config.json.
    pub fn write(&self) {
        std::fs::write(self.bundle().join("config.json"), serde_json::to_vec_pretty(&self.config).expect("json"))
            .expect("write config");
    }

    /// The runtime with `--root` set; stdin is null.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(&self.runtime);
        c.arg("--root").arg(self.state_root()).stdin(Stdio::null());
        c
    }

    /// `run --bundle B ID`, capturing output.
    pub fn run(&self) -> Output {
        self.write();
        self.cmd().arg("run").arg("--bundle").arg(self.bundle()).arg(&self.id).output().expect("spawn run")
    }

    /// Runs a verb on this container and returns its output.
    pub fn verb(&self, verb: &str, extra: &[&str]) -> Output {
        self.cmd().arg(verb).args(extra).arg(&self.id).output().expect("spawn verb")
    }

    /// `create --bundle B [extra] ID`. The container inherits create's stdio, so stdout is
    /// discarded and stderr goes to a file: a pipe would stay open as long as the container.
    pub fn create_with(&self, extra: &[&str]) -> Output {
        self.write();
        let err_path = self.dir.path().join(format!("create-{}.err", COUNTER.fetch_add(1, Ordering::Relaxed)));
        let err_file = std::fs::File::create(&err_path).expect("stderr file");
        let status = self
            .cmd()
            .arg("create")
            .arg("--bundle")
            .arg(self.bundle())
            .args(extra)
            .arg(&self.id)
            .stdout(Stdio::null())
            .stderr(err_file)
            .status()
            .expect("spawn create");
        Output { status, stdout: Vec::new(), stderr: std::fs::read(&err_path).unwrap_or_default() }
    }

    /// `create` without extra flags.
    pub fn create(&self) -> Output {
        self.create_with(&[])
    }

    /// The `status` field of `state`.
    pub fn status(&self) -> String {
        let out = self.verb("state", &[]);
        assert!(out.status.success(), "state: {}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).expect("state json");
        v["status"].as_str().unwrap_or_default().to_string()
    }

    /// Polls (bounded) until `status` reports `want`.
    pub fn wait_status(&self, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.status() != want {
            assert!(Instant::now() < deadline, "container never became {want}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The container's state dir.
    pub fn state_dir(&self) -> PathBuf {
        self.state_root().join(&self.id)
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = self.cmd().args(["delete", "--force"]).arg(&self.id).output();
    }
}

/// stdout as a String.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as a String.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The value of a `Key:\tvalue` line of /proc/self/status output.
pub fn status_field(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| l.strip_prefix(&format!("{key}:")).map(|v| v.trim().to_string()))
}

/// Whether any cgroup hierarchy on the host still has a directory named after `id`.
pub fn cgroup_left(id: &str) -> bool {
    let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") else { return false };
    entries.flatten().any(|e| e.path().join(id).exists())
}

/// Whether any mount in our namespace mentions `needle`.
pub fn mount_left(needle: &str) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo").map(|m| m.contains(needle)).unwrap_or(false)
}
