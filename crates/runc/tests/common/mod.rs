//! Shared fixture for the end-to-end tests: a busybox bundle in a tempdir, a private state
//! root, a unique container id, and a Drop guard that force-deletes the container.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

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
        assert!(
            out.status.success(),
            "spec failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let config: Value = serde_json::from_slice(
            &std::fs::read(dir.path().join("bundle/config.json")).expect("read config"),
        )
        .expect("parse config");
        let id = format!(
            "w{}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            name
        );
        Bundle {
            dir,
            id,
            config,
            runtime: runtime.to_path_buf(),
        }
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
        std::fs::write(
            self.bundle().join("config.json"),
            serde_json::to_vec_pretty(&self.config).expect("json"),
        )
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
        self.cmd()
            .arg("run")
            .arg("--bundle")
            .arg(self.bundle())
            .arg(&self.id)
            .output()
            .expect("spawn run")
    }

    /// Runs a verb on this container and returns its output.
    pub fn verb(&self, verb: &str, extra: &[&str]) -> Output {
        self.verb_cmd(verb, extra).output().expect("spawn verb")
    }

    /// `VERB [extra] ID`, to add trailing arguments to and run.
    pub fn verb_cmd(&self, verb: &str, extra: &[&str]) -> Command {
        let mut c = self.cmd();
        c.arg(verb).args(extra).arg(&self.id);
        c
    }

    /// `create --bundle B [extra] ID`. The container inherits create's stdio, so stdout is
    /// discarded and stderr goes to a file: a pipe would stay open as long as the container.
    pub fn create_with(&self, extra: &[&str]) -> Output {
        self.write();
        let err_path = self.dir.path().join(format!(
            "create-{}.err",
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
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
        Output {
            status,
            stdout: Vec::new(),
            stderr: std::fs::read(&err_path).unwrap_or_default(),
        }
    }

    /// `create` without extra flags.
    pub fn create(&self) -> Output {
        self.create_with(&[])
    }

    /// The `status` field of `state`.
    pub fn status(&self) -> String {
        let out = self.verb("state", &[]);
        assert!(
            out.status.success(),
            "state: {}",
            String::from_utf8_lossy(&out.stderr)
        );
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
        let _ = self
            .cmd()
            .args(["delete", "--force"])
            .arg(&self.id)
            .output();
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
    text.lines().find_map(|l| {
        l.strip_prefix(&format!("{key}:"))
            .map(|v| v.trim().to_string())
    })
}

/// Whether any cgroup hierarchy on the host still has a directory named after `id`.
pub fn cgroup_left(id: &str) -> bool {
    let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") else {
        return false;
    };
    entries.flatten().any(|e| e.path().join(id).exists())
}

/// Whether any mount in our namespace mentions `needle`.
pub fn mount_left(needle: &str) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| m.contains(needle))
        .unwrap_or(false)
}

/// Runs `true` with createRuntime, createContainer and startContainer hooks that record their
/// state, namespaces and hostname in a directory bind-mounted at /hookout, and returns one
/// line per hook: where its mnt/uts/pid namespaces are ("container", "host" or "other"),
/// whether it sees the spec's hostname, and the status and pid of the state it read.
pub fn hook_namespace_report(runtime: &Path) -> String {
    let mut b = Bundle::with_runtime("nshooks", runtime);
    let out = b.dir.path().join("hookout");
    std::fs::create_dir(&out).expect("mkdir hookout");
    std::fs::create_dir(b.rootfs().join("hookout")).expect("mkdir mount point");
    let ns = "for n in mnt uts pid; do readlink /proc/self/ns/$n; done";
    // createRuntime and createContainer run before pivot_root: they reach the host path.
    let hook = |name: &str, dir: &Path| {
        let d = dir.display();
        json!({"path": "/bin/sh", "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
               "args": ["sh", "-c", format!("cat > {d}/{name}.state; {ns} > {d}/{name}.ns; hostname > {d}/{name}.host")]})
    };
    b.config["hooks"] = json!({
        "createRuntime": [hook("createRuntime", &out)],
        "createContainer": [hook("createContainer", &out)],
        "startContainer": [hook("startContainer", Path::new("/hookout"))],
    });
    b.config["hostname"] = json!("hook-host");
    b.config["mounts"].as_array_mut().expect("mounts").push(
        json!({"destination": "/hookout", "type": "bind", "source": out, "options": ["rbind", "rw"]}),
    );
    b.script(&format!("{ns} > /hookout/container.ns"));
    let run = b.run();
    assert!(
        run.status.success(),
        "{} run failed: {}",
        runtime.display(),
        stderr(&run)
    );
    let read =
        |f: &str| std::fs::read_to_string(out.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    let host_ns: String = ["mnt", "uts", "pid"]
        .iter()
        .map(|n| {
            format!(
                "{}\n",
                std::fs::read_link(format!("/proc/self/ns/{n}"))
                    .expect("ns")
                    .display()
            )
        })
        .collect();
    let container_ns = read("container.ns");
    assert_ne!(
        container_ns, host_ns,
        "the container has its own namespaces"
    );
    ["createRuntime", "createContainer", "startContainer"]
        .iter()
        .map(|name| {
            let ns = read(&format!("{name}.ns"));
            let place = if ns == container_ns {
                "container"
            } else if ns == host_ns {
                "host"
            } else {
                "other"
            };
            let st: Value =
                serde_json::from_str(&read(&format!("{name}.state"))).expect("state json");
            assert_eq!(st["id"], json!(b.id), "{name}");
            let pid = match st["pid"].as_i64() {
                Some(1) => "1",
                Some(_) => "host",
                None => "none",
            };
            let named = read(&format!("{name}.host")).trim() == "hook-host";
            format!(
                "{name}: ns={place} hostname={named} status={} pid={pid}\n",
                st["status"]
            )
        })
        .collect()
}
