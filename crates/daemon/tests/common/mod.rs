//! The end-to-end harness: a real `wharfd` on a temporary socket, data root and exec root
//! (all under one tempdir), driven by the real docker CLI and by raw HTTP. Drop tears down
//! everything it created (containers, shims, mounts, netns pins, cgroups) even on failure.
#![allow(dead_code)] // each test binary uses a different subset of the harness

pub mod build;
pub mod compose;
pub mod net;
pub mod reality;
pub mod registry;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The docker CLI the suite drives.
pub const DOCKER: &str = "/usr/local/bin/docker";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The runtime e2e tests use: `WHARF_TEST_RUNTIME` or our own.
pub fn test_runtime() -> String {
    std::env::var("WHARF_TEST_RUNTIME").unwrap_or_else(|_| "wharf-runtime".to_string())
}

/// A running daemon under test.
pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub sock: PathBuf,
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub cgroup_parent: String,
    /// This daemon's own bridge and subnets (freed after the daemon stops).
    pub net: wharf_testutil::net::TestNet,
    child: Option<Child>,
    args: Vec<String>,
    /// Extra environment for the next (re)start of wharfd (e.g. `WHARFD_CRASH_AT`).
    pub env: Vec<(String, String)>,
}

fn wharfd_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_wharfd"))
}

impl Daemon {
    /// Starts wharfd with the test runtime, `vfs` storage and `extra` flags.
    pub fn start(extra: &[&str]) -> Daemon {
        let bin_dir = wharfd_bin()
            .parent()
            .map(Path::to_path_buf)
            .expect("bin dir");
        for helper in ["wharf-shim", "wharf-init"] {
            assert!(
                bin_dir.join(helper).exists(),
                "{helper} missing in {}: run `cargo build --workspace --bins` first",
                bin_dir.display()
            );
        }
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let tag = format!("{}-{n}", std::process::id());
        let dir = tempfile::Builder::new()
            .prefix(&format!("wharfd-e2e-{tag}-"))
            .tempdir()
            .expect("tempdir");
        let sock = dir.path().join("wharf.sock");
        let data_root = dir.path().join("data");
        // Deliberately long: socket paths under it (`<exec-root>/containers/<64 hex>/shim.sock`)
        // exceed the 108-byte limit of unix socket addresses, which wharfd must cope with.
        let exec_root = dir.path().join("exec-root-with-a-long-name");
        let cgroup_parent = format!("wharf-test-{tag}");
        let mut args: Vec<String> = vec![
            "-H".into(),
            format!("unix://{}", sock.display()),
            "--data-root".into(),
            data_root.display().to_string(),
            "--exec-root".into(),
            exec_root.display().to_string(),
            "--pidfile".into(),
            dir.path().join("wharfd.pid").display().to_string(),
            "--config-file".into(),
            dir.path().join("daemon.json").display().to_string(),
            "--cgroup-parent".into(),
            cgroup_parent.clone(),
            "--default-runtime".into(),
            test_runtime(),
            // Tests never reach Docker Hub: a pull of a docker.io name uses a mirror the test
            // started, or fails at once.
            "--block-registry".into(),
            "docker.io".into(),
        ];
        let net = wharf_testutil::net::TestNet::claim();
        args.extend(net.daemon_flags());
        if !extra.iter().any(|a| *a == "-s" || *a == "--storage-driver") {
            args.extend(["-s".to_string(), "vfs".to_string()]);
        }
        // The host's global ip_forward is left alone unless a test asks (and restores it).
        if !extra.iter().any(|a| a.starts_with("--ip-forward")) {
            args.push("--ip-forward=false".to_string());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        std::fs::write(dir.path().join("daemon.json"), "{}").expect("daemon.json");
        let mut d = Daemon {
            dir,
            sock,
            data_root,
            exec_root,
            cgroup_parent,
            net,
            child: None,
            args,
            env: Vec::new(),
        };
        d.spawn();
        d
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("wharfd.log"))
            .expect("log");
        let child = Command::new(wharfd_bin())
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn wharfd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.raw("GET", "/_ping", b"").0 == 200 {
                return;
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!("wharfd exited with {st}: {}", self.log());
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("wharfd did not answer /_ping: {}", self.log());
    }

    /// Runs the docker-py script `tests/clients/<script>` against this daemon with `args`
    /// and extra `env`, and asserts that it succeeded and printed `ok_line`.
    pub fn docker_py(
        &self,
        script: &str,
        args: &[&str],
        env: &[(&str, &std::ffi::OsStr)],
        ok_line: &str,
    ) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/clients")
            .join(script);
        let out = Command::new("timeout")
            .args(["-s", "KILL", "150", "python3"])
            .arg(&path)
            .args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
            .envs(env.iter().copied())
            .output()
            .expect("run python3 (hack/deps.sh installs it with docker-py)");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains(ok_line),
            "docker-py {script} {args:?} failed ({}):\n{stdout}\n{}\n--- daemon log ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("wharfd.log")).unwrap_or_default()
    }

    /// `kill -9` (simulates a crash); containers keep running under their shims.
    pub fn crash(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the daemon again on the same roots.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Starts the daemon again after [`Daemon::crash`].
    pub fn start_again(&mut self) {
        self.spawn();
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Runs the docker CLI against this daemon.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.docker_stdin(args, None)
    }

    /// Starts the docker CLI (killed after 90 s at the latest) with stdout and stderr piped.
    pub fn docker_spawn(&self, args: &[&str], stdin: Stdio) -> Child {
        // A hung CLI must fail the test, not stall the suite.
        Command::new("timeout")
            .args(["-s", "KILL", "90", DOCKER])
            .args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .env_remove("DOCKER_CONTEXT")
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn docker")
    }

    /// Runs the docker CLI with `stdin` piped in.
    pub fn docker_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut child = self.docker_spawn(
            args,
            if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            },
        );
        if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
            let _ = pipe.write_all(data);
        }
        child.wait_with_output().expect("docker output")
    }

    /// Runs our own CLI against this daemon (same config dir as the docker CLI here).
    pub fn wharf(&self, args: &[&str]) -> Output {
        let bin = PathBuf::from(env!("CARGO_BIN_EXE_wharfd")).with_file_name("wharf");
        // A hung CLI must fail the test, not stall the suite.
        Command::new("timeout")
            .args(["-s", "KILL", "90"])
            .arg(bin)
            .arg("-H")
            .arg(format!("unix://{}", self.sock.display()))
            .args(args)
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .output()
            .expect("wharf (cargo build --workspace --bins)")
    }

    /// Runs docker and asserts success; returns trimmed stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(
            o.status.success(),
            "docker {args:?} failed ({}): {}\n--- daemon log ---\n{}",
            o.status,
            String::from_utf8_lossy(&o.stderr),
            self.log()
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// Imports a busybox rootfs as `busybox:latest` through `POST /images/create?fromSrc=-`.
    pub fn import_busybox(&self) {
        let tar = self.dir.path().join("busybox.tar");
        wharf_testutil::busybox_rootfs_tar(&tar).expect("busybox tar");
        let body = std::fs::read(&tar).expect("read tar");
        let (status, resp) = self.raw(
            "POST",
            "/v1.45/images/create?fromSrc=-&repo=busybox&tag=latest",
            &body,
        );
        assert_eq!(status, 200, "import: {}", String::from_utf8_lossy(&resp));
    }

    /// One raw HTTP/1.1 request over the socket: (status, body). Status 0 = no connection.
    pub fn raw(&self, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        self.raw_with(method, path, &[("Content-Type", "application/json")], body)
    }

    /// Like [`Daemon::raw`] with explicit headers.
    pub fn raw_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Vec<u8>) {
        let Ok(mut s) = UnixStream::connect(&self.sock) else {
            return (0, Vec::new());
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: wharf\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        if s.write_all(req.as_bytes())
            .and_then(|_| s.write_all(body))
            .is_err()
        {
            // The daemon may refuse a huge body early; read what it answered.
        }
        let mut resp = Vec::new();
        let _ = s.read_to_end(&mut resp);
        parse_response(&resp)
    }

    /// Removes every user-defined network (and so its bridge) through the API.
    fn remove_user_networks(&self) {
        let (st, body) = self.raw("GET", "/networks", b"");
        if st != 200 {
            return;
        }
        let list: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap_or_default();
        for n in list {
            let name = n["Name"].as_str().unwrap_or("");
            if !matches!(name, "bridge" | "host" | "none") {
                if let Some(id) = n["Id"].as_str() {
                    self.raw("DELETE", &format!("/networks/{id}"), b"");
                }
            }
        }
    }

    /// Force-removes every container through the API.
    fn remove_all_containers(&self) {
        let (st, body) = self.raw("GET", "/containers/json?all=1", b"");
        if st != 200 {
            return;
        }
        let list: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap_or_default();
        for c in list {
            if let Some(id) = c["Id"].as_str() {
                self.raw("DELETE", &format!("/containers/{id}?force=1"), b"");
            }
        }
    }
}

/// Polls `f` until it holds; panics after a generous deadline (a loaded machine is slow).
/// A command's stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The stderr of a command that must have failed.
pub fn failed(o: &Output) -> String {
    assert!(!o.status.success(), "{o:?}");
    stderr(o)
}

pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

/// Parses status and (de-chunked) body of an HTTP/1.1 response.
pub fn parse_response(resp: &[u8]) -> (u16, Vec<u8>) {
    let Some(split) = resp.windows(4).position(|w| w == b"\r\n\r\n") else {
        return (0, Vec::new());
    };
    let head = String::from_utf8_lossy(&resp[..split]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut body = resp[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = Vec::new();
        let mut rest = &body[..];
        while let Some(nl) = rest.windows(2).position(|w| w == b"\r\n") {
            let len =
                usize::from_str_radix(String::from_utf8_lossy(&rest[..nl]).trim(), 16).unwrap_or(0);
            if len == 0 || rest.len() < nl + 2 + len {
                break;
            }
            out.extend_from_slice(&rest[nl + 2..nl + 2 + len]);
            rest = &rest[(nl + 4 + len).min(rest.len())..];
        }
        body = out;
    }
    (status, body)
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.remove_all_containers();
            self.remove_user_networks();
            self.stop();
        }
        // Shims that outlived the daemon (a crashed test): kill them and their containers.
        if let Ok(rd) = std::fs::read_dir(self.exec_root.join("containers")) {
            for e in rd.flatten() {
                if let Ok(pid) = std::fs::read_to_string(e.path().join("shim.pid")) {
                    let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
                }
            }
        }
        kill_cgroup_tasks(&self.cgroup_parent);
        unmount_under(self.dir.path());
        remove_cgroups(&self.cgroup_parent);
    }
}

/// Every cgroup v1 controller directory of `parent`.
fn cgroup_dirs(parent: &str) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") else {
        return Vec::new();
    };
    rd.flatten()
        .map(|e| e.path().join(parent))
        .filter(|p| p.is_dir())
        .collect()
}

fn kill_cgroup_tasks(parent: &str) {
    for d in cgroup_dirs(parent) {
        for f in walk(&d).into_iter().map(|p| p.join("cgroup.procs")) {
            for pid in std::fs::read_to_string(&f).unwrap_or_default().lines() {
                let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
            }
        }
    }
}

fn walk(d: &Path) -> Vec<PathBuf> {
    let mut out = vec![d.to_path_buf()];
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                out.extend(walk(&e.path()));
            }
        }
    }
    out
}

fn remove_cgroups(parent: &str) {
    for d in cgroup_dirs(parent) {
        let mut dirs = walk(&d);
        dirs.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for _ in 0..20 {
            dirs.retain(|p| std::fs::remove_dir(p).is_err() && p.exists());
            if dirs.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Lazily unmounts everything mounted below `root`, deepest first.
fn unmount_under(root: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let root = root.to_string_lossy().to_string();
    let mut points: Vec<String> = info
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4).map(String::from))
        .filter(|p| p.starts_with(&root))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = Command::new("umount").args(["-l", &p]).status();
    }
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// GET / over plain TCP from 127.0.0.1:`port` (the body), retried until the server is up.
pub fn http_get(port: u16) -> String {
    let mut body = String::new();
    wait_for(&format!("127.0.0.1:{port} to answer"), || {
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        if s.write_all(b"GET / HTTP/1.0\r\n\r\n").is_err() {
            return false;
        }
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        body = out
            .rsplit("\r\n\r\n")
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        !body.is_empty()
    });
    body
}

/// SplitMix64: small, seedable, good enough to pick faults.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The fault-injection seed: `WHARF_FAULT_SEED`, else the clock mixed with `salt`; printed
/// so a failing run can be replayed.
pub fn seed(salt: u64) -> u64 {
    let s = std::env::var("WHARF_FAULT_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            t ^ salt
        });
    eprintln!("fault seed: {s} (replay with WHARF_FAULT_SEED={s})");
    s
}
