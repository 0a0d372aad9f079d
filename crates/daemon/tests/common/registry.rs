//! Debian's `docker-registry` (distribution 2.8) on a loopback port of the test's own.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A `docker-registry` serving plain HTTP on 127.0.0.1 with its own config and storage;
/// killed on drop.
pub struct Registry {
    child: Child,
    pub port: u16,
    pub storage: PathBuf,
    _dir: tempfile::TempDir,
}

impl Registry {
    pub fn start(extra_config: &str) -> Registry {
        Registry::spawn(extra_config, false)
    }

    /// Like [`Registry::start`], with every request in its access log ([`Registry::log`]).
    pub fn start_logged(extra_config: &str) -> Registry {
        Registry::spawn(extra_config, true)
    }

    /// What the registry has logged so far (empty unless started logged).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("registry.log")).unwrap_or_default()
    }

    fn spawn(extra_config: &str, logged: bool) -> Registry {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let storage = dir.path().join("storage");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: {}\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{extra_config}",
                if logged { "info" } else { "error" },
                storage.display()
            ),
        )
        .expect("write registry config");
        let log = || -> Stdio {
            if !logged {
                return Stdio::null();
            }
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.path().join("registry.log"))
                .map_or_else(|_| Stdio::null(), Stdio::from)
        };
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(log())
            .stderr(log())
            .spawn()
            .expect("docker-registry is installed (hack/deps.sh)");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "registry did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry {
            child,
            port,
            storage,
            _dir: dir,
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The file holding blob `digest` (`sha256:…`) in the registry's storage.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `skopeo` with `args`; panics with its output on failure, returns stdout.
pub fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo is installed");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// An htpasswd line for `user:password` (bcrypt through the C library's crypt, as
/// `htpasswd -B` writes it).
pub fn htpasswd_line(user: &str, password: &str) -> String {
    let out = Command::new("python3")
        .args([
            "-W",
            "ignore",
            "-c",
            "import crypt,sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))",
            password,
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hash = String::from_utf8_lossy(&out.stdout)
        .trim()
        .replacen("$2b$", "$2y$", 1);
    format!("{user}:{hash}\n")
}

/// A registry that asks for `alice`/`s3cret` (htpasswd Basic auth).
pub fn start_with_htpasswd(dir: &std::path::Path) -> Registry {
    let htpasswd = dir.join("htpasswd");
    std::fs::write(&htpasswd, htpasswd_line("alice", "s3cret")).expect("htpasswd");
    Registry::start(&format!(
        "auth:\n  htpasswd:\n    realm: wharf-test\n    path: {}\n",
        htpasswd.display()
    ))
}

/// Saves `image` from the daemon as a docker-archive and pushes it with skopeo to `dest`
/// (`host/repo:tag`), with `extra` options for `skopeo copy` (such as [`ZSTD`]).
pub fn push_with_skopeo(d: &super::Daemon, image: &str, dest: &str, extra: &[&str]) {
    let archive = d
        .dir
        .path()
        .join(format!("save-{}.tar", dest.replace(['/', ':'], "_")));
    d.ok(&["save", "-o", archive.to_str().expect("utf-8"), image]);
    let src = format!("docker-archive:{}", archive.display());
    let dst = format!("docker://{dest}");
    let mut args = vec!["copy", "--quiet", "--dest-tls-verify=false"];
    args.extend(extra);
    args.extend([src.as_str(), dst.as_str()]);
    skopeo(&args);
}

/// `skopeo copy` options for zstd layers in an OCI manifest.
pub const ZSTD: &[&str] = &["--dest-compress-format", "zstd", "--format", "oci"];

/// Puts `d`'s busybox into `reg` (from [`start_with_htpasswd`]) as `private/bb:1` with
/// alice's password, then removes it from `d`; returns the pushed name.
pub fn push_private_busybox(d: &super::Daemon, reg: &Registry) -> String {
    d.import_busybox();
    let name = format!("{}/private/bb:1", reg.host());
    push_with_skopeo(d, "busybox", &name, &["--dest-creds", "alice:s3cret"]);
    d.ok(&["rmi", "busybox"]);
    name
}

/// Which command line [`run_cli`] runs.
#[derive(Clone, Copy, Debug)]
pub enum Cli {
    Docker,
    Wharf,
}

/// Runs `cli args` against `d` (config dir `docker-config` as `Daemon::docker` uses) with
/// `stdin` and extra `env`, killed after 120 s (a build can take that long).
pub fn run_cli(
    d: &super::Daemon,
    cli: Cli,
    args: &[&str],
    stdin: Option<&[u8]>,
    env: &[(&str, &std::ffi::OsStr)],
) -> Output {
    use std::io::Write;
    let bin = match cli {
        Cli::Docker => PathBuf::from(super::DOCKER),
        Cli::Wharf => PathBuf::from(env!("CARGO_BIN_EXE_wharfd")).with_file_name("wharf"),
    };
    let mut child = Command::new("timeout")
        .args(["-s", "KILL", "120"])
        .arg(bin)
        .args(args)
        .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .env_remove("DOCKER_CONTEXT")
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn CLI");
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let _ = pipe.write_all(data);
    }
    child.wait_with_output().expect("CLI output")
}

/// `sha256:<hex>` of `bytes` (through `sha256sum`).
pub fn sha256_digest(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(bytes)
        .expect("write");
    let out = child.wait_with_output().expect("sha256sum");
    let hex = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("hash")
        .to_string();
    format!("sha256:{hex}")
}

/// A CA and a server certificate for 127.0.0.1 signed by it, made with openssl in `dir`.
pub fn make_certs(dir: &std::path::Path, ca_name: &str) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").expect("ext");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec![
        "req", "-x509", "-days", "1", "-keyout", "ca.key", "-out", "ca.crt", "-subj",
    ];
    let subj = format!("/CN={ca_name}");
    ca.push(&subj);
    ca.extend(ec);
    run(&ca);
    let mut csr = vec![
        "req",
        "-keyout",
        "srv.key",
        "-out",
        "srv.csr",
        "-subj",
        "/CN=127.0.0.1",
    ];
    csr.extend(ec);
    run(&csr);
    run(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-out",
        "srv.crt",
        "-extfile",
        "san.ext",
    ]);
}
