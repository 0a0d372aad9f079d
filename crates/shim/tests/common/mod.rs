//! Fixture for driving the real `wharf-shim` binary against a real runtime (runc by default,
//! `WHARF_TEST_RUNTIME` to choose another) with a busybox bundle in a temp dir.
#![allow(dead_code)] // each test binary uses a different subset of the fixture

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{json, Value};
use wharf_shim_proto::{
    decode_line, encode_line, files, ExitStatus, LogConfig, LogDriver, Request, Response,
    RuntimeConfig, ShimConfig, StdioConfig, PROTOCOL_VERSION,
};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The runtime under test.
pub fn runtime_path() -> PathBuf {
    std::env::var_os("WHARF_TEST_RUNTIME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/usr/sbin/runc".into())
}

/// One container with its own bundle, runtime root and shim dir; everything is torn down on drop.
pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub id: String,
    pub runtime: PathBuf,
    pub cfg: ShimConfig,
}

impl Fixture {
    /// A bundle running `args` (cgroups at `/<id>`, which `runtime delete` removes entirely), with `runc spec`'s defaults otherwise; `tweak` edits the spec.
    pub fn new(args: &[&str], stdio: StdioConfig, tweak: impl FnOnce(&mut Value)) -> Fixture {
        Self::with_runtime(runtime_path(), args, stdio, tweak)
    }

    pub fn with_runtime(
        runtime: PathBuf,
        args: &[&str],
        stdio: StdioConfig,
        tweak: impl FnOnce(&mut Value),
    ) -> Fixture {
        wharf_testutil::require_root!();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let id = format!("wshim-{}-{n}", std::process::id());
        let tmp = tempfile::tempdir().expect("tempdir");
        let bundle = tmp.path().join("bundle");
        fs::create_dir_all(bundle.join("rootfs")).expect("mkdir");
        wharf_testutil::make_busybox_rootfs(&bundle.join("rootfs")).expect("rootfs");
        let out = Command::new("/usr/sbin/runc")
            .arg("spec")
            .current_dir(&bundle)
            .output()
            .expect("runc spec");
        assert!(
            out.status.success(),
            "runc spec: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let spec_path = bundle.join("config.json");
        let mut spec: Value =
            serde_json::from_slice(&fs::read(&spec_path).expect("read spec")).expect("spec json");
        spec["process"]["args"] = json!(args);
        spec["process"]["terminal"] = json!(stdio.tty);
        spec["linux"]["cgroupsPath"] = json!(format!("/{id}"));
        tweak(&mut spec);
        fs::write(&spec_path, serde_json::to_vec_pretty(&spec).expect("ser")).expect("write spec");
        let dir = tmp.path().join("shim");
        fs::create_dir_all(&dir).expect("mkdir");
        let cfg = ShimConfig {
            version: PROTOCOL_VERSION,
            id: id.clone(),
            bundle,
            runtime: RuntimeConfig {
                path: runtime.clone(),
                root: tmp.path().join("root"),
                args: vec![],
            },
            stdio,
            log: LogConfig {
                driver: LogDriver::JsonFile,
                path: tmp.path().join("container-json.log"),
                max_size: None,
                max_file: 1,
            },
        };
        Fixture {
            tmp,
            id,
            runtime,
            cfg,
        }
    }

    pub fn dir(&self) -> PathBuf {
        self.tmp.path().join("shim")
    }

    /// Runs `wharf-shim <dir>`; Ok once the shim reported ready, Err with its stderr otherwise.
    pub fn launch(&self) -> Result<(), String> {
        fs::write(
            self.dir().join(files::CONFIG),
            serde_json::to_vec(&self.cfg).expect("ser"),
        )
        .expect("write cfg");
        let out = Command::new(env!("CARGO_BIN_EXE_wharf-shim"))
            .arg(self.dir())
            .output()
            .expect("run shim");
        match out.status.success() {
            true => Ok(()),
            false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
        }
    }

    pub fn shim_pid(&self) -> i32 {
        fs::read_to_string(self.dir().join(files::PID))
            .expect("shim.pid")
            .trim()
            .parse()
            .expect("pid")
    }

    /// Sends one request and returns the stream (positioned after the answer) and the answer.
    pub fn open(&self, req: &Request) -> (BufReader<UnixStream>, Response) {
        let mut sock = UnixStream::connect(self.dir().join(files::SOCKET)).expect("connect shim");
        // A broken shim must fail the test, not hang the suite.
        sock.set_read_timeout(Some(std::time::Duration::from_secs(120)))
            .expect("timeout");
        sock.write_all(&encode_line(req)).expect("send");
        let mut reader = BufReader::new(sock);
        let mut line = Vec::new();
        reader.read_until(b'\n', &mut line).expect("read answer");
        let resp = decode_line(&line)
            .unwrap_or_else(|e| panic!("bad answer {:?}: {e}", String::from_utf8_lossy(&line)));
        (reader, resp)
    }

    pub fn request(&self, req: &Request) -> Response {
        self.open(req).1
    }

    pub fn start(&self) -> i32 {
        match self.request(&Request::Start) {
            Response::Started { pid } => pid,
            other => panic!("start: {other:?}"),
        }
    }

    /// Sends Wait without reading the answer: open it before making the container exit so
    /// the test does not depend on how long the shim lingers afterwards.
    pub fn begin_wait(&self) -> UnixStream {
        let mut sock = UnixStream::connect(self.dir().join(files::SOCKET)).expect("connect shim");
        sock.set_read_timeout(Some(std::time::Duration::from_secs(120)))
            .expect("timeout");
        sock.write_all(&encode_line(&Request::Wait)).expect("send");
        sock
    }

    /// The answer to a [`Fixture::begin_wait`].
    pub fn end_wait(&self, sock: UnixStream) -> ExitStatus {
        let mut line = Vec::new();
        BufReader::new(sock)
            .read_until(b'\n', &mut line)
            .expect("read answer");
        match decode_line(&line) {
            Ok(Response::Exited(st)) => st,
            other => panic!("wait: {other:?}"),
        }
    }

    /// The json-file log entries in `path`.
    pub fn log_entries(&self, path: &Path) -> Vec<wharf_shim_proto::log::LogEntry> {
        fs::read_to_string(path)
            .expect("read log")
            .lines()
            .map(|l| wharf_shim_proto::log::LogEntry::from_line(l.as_bytes()).expect("log line"))
            .collect()
    }
}

/// Reads multiplexed frames until EOF: (stdout, stderr).
pub fn read_frames(reader: &mut impl Read) -> (Vec<u8>, Vec<u8>) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    loop {
        let mut h = [0u8; 8];
        if reader.read_exact(&mut h).is_err() {
            return (out, err);
        }
        let (stream, len) = wharf_shim_proto::stream::parse_header(&h);
        let mut buf = vec![0u8; len as usize];
        reader.read_exact(&mut buf).expect("frame payload");
        match stream {
            1 => out.extend(buf),
            2 => err.extend(buf),
            other => panic!("unexpected stream {other}"),
        }
    }
}

/// Ends the stdin half of an attach stream.
pub fn close_stdin(reader: &BufReader<UnixStream>) {
    reader
        .get_ref()
        .shutdown(Shutdown::Write)
        .expect("shutdown write");
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Ok(pid) = fs::read_to_string(self.dir().join(files::PID)) {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                // Only if it is still our shim (the pid may have been reused after it exited).
                let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                if String::from_utf8_lossy(&cmdline).contains(&self.dir().display().to_string()) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::SIGKILL,
                    );
                }
            }
        }
        let _ = Command::new(&self.runtime)
            .arg("--root")
            .arg(self.tmp.path().join("root"))
            .args(["delete", "--force", &self.id])
            .output();
    }
}
