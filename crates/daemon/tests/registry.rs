//! End-to-end: pulls from Debian's `docker-registry` (distribution 2.8) on a loopback port
//! of the test's own, with images put there by skopeo, driven by the real docker CLI.

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::registry::{push_with_skopeo, skopeo, Registry, ZSTD};
use common::Daemon;

fn inspect(d: &Daemon, image: &str, format: &str) -> String {
    d.ok(&["image", "inspect", "--format", format, image])
}

/// Builds a two-layer image on busybox so pulls have more than one layer to order.
fn two_layer_image(d: &Daemon, tag: &str) {
    d.import_busybox();
    d.ok(&[
        "run",
        "--name",
        "mk",
        "busybox",
        "sh",
        "-c",
        "echo layer2 > /hello",
    ]);
    d.ok(&["commit", "--change", "CMD [\"cat\", \"/hello\"]", "mk", tag]);
    d.ok(&["rm", "mk"]);
}

#[test]
fn push_by_skopeo_remove_and_pull_back() {
    wharf_testutil::require_root!();
    let reg = Registry::start("");
    let d = Daemon::start(&[]);
    two_layer_image(&d, "local/app:1");
    let id = inspect(&d, "local/app:1", "{{.Id}}");
    let name = format!("{}/test/app:1", reg.host());
    push_with_skopeo(&d, "local/app:1", &name, &[]);
    d.ok(&["rmi", "local/app:1", "busybox"]);
    assert!(d.ok(&["images", "-q"]).is_empty(), "store emptied");

    // The docker CLI's pull: progress, digest, status line.
    let out = d.docker(&["pull", &name]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{}",
        common::stderr(&out),
        d.log()
    );
    assert!(text.contains("Pull complete"), "{text}");
    assert!(text.contains("Digest: sha256:"), "{text}");
    assert!(
        text.contains(&format!("Status: Downloaded newer image for {name}")),
        "{text}"
    );
    assert_eq!(
        inspect(&d, &name, "{{.Id}}"),
        id,
        "same image ID after the round trip"
    );
    let digests = inspect(&d, &name, "{{json .RepoDigests}}");
    let repo = format!("{}/test/app@sha256:", reg.host());
    assert!(digests.contains(&repo), "{digests}");
    assert_eq!(d.ok(&["run", "--rm", &name]), "layer2");

    // Pulling again changes nothing.
    let again = d.ok(&["pull", &name]);
    assert!(
        again.contains(&format!("Status: Image is up to date for {name}")),
        "{again}"
    );

    // By digest, through the same layers.
    let by_digest = digests.trim_matches(['[', ']', '"']).to_string();
    let out = d.ok(&["pull", &by_digest]);
    assert!(out.contains("Digest: sha256:"), "{out}");
    assert_eq!(inspect(&d, &by_digest, "{{.Id}}"), id);

    // Our own CLI draws the same and exits 0; -q prints only the name.
    let q = d.wharf(&["pull", "-q", &name]);
    assert!(q.status.success(), "{}", common::stderr(&q));
    assert_eq!(String::from_utf8_lossy(&q.stdout).trim(), name);
}

#[test]
fn missing_images_give_dockers_errors() {
    wharf_testutil::require_root!();
    let reg = Registry::start("");
    let d = Daemon::start(&[]);
    // distribution 2.8 answers MANIFEST_UNKNOWN for a repository it never saw, and dockerd
    // words it so.
    let out = d.docker(&["pull", &format!("{}/nope/nothing:1", reg.host())]);
    assert!(!out.status.success());
    let err = common::stderr(&out);
    assert!(
        err.contains(&format!(
            "Error response from daemon: manifest for {}/nope/nothing:1 not found: manifest unknown: manifest unknown",
            reg.host()
        )),
        "{err}"
    );
    // An existing repository without the tag: manifest unknown.
    d.import_busybox();
    push_with_skopeo(&d, "busybox", &format!("{}/lib/bb:1", reg.host()), &[]);
    let out = d.docker(&["pull", &format!("{}/lib/bb:2", reg.host())]);
    assert!(!out.status.success());
    let err = common::stderr(&out);
    assert!(
        err.contains(&format!(
            "manifest for {}/lib/bb:2 not found: manifest unknown",
            reg.host()
        )),
        "{err}"
    );
    // Raw API: 404 with Docker's JSON body, before any stream starts.
    let (status, body) = d.raw(
        "POST",
        &format!("/v1.45/images/create?fromImage={}/lib/bb&tag=2", reg.host()),
        b"",
    );
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("\"message\""));
    // A platform the index cannot satisfy and malformed input are refused.
    let (status, _) = d.raw(
        "POST",
        &format!(
            "/v1.45/images/create?fromImage={}/lib/bb&tag=1&platform=linux//",
            reg.host()
        ),
        b"",
    );
    assert_eq!(status, 400);
}

#[test]
fn corrupted_blob_is_refused_and_nothing_registered() {
    wharf_testutil::require_root!();
    let reg = Registry::start("");
    let d = Daemon::start(&[]);
    d.import_busybox();
    let name = format!("{}/bad/bb:1", reg.host());
    push_with_skopeo(&d, "busybox", &name, &[]);
    d.ok(&["rmi", "busybox"]);
    // Flip bytes of the (only) layer blob inside the registry's storage.
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{name}"),
    ]);
    let manifest: serde_json::Value = serde_json::from_str(&raw).expect("manifest json");
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .expect("layer digest")
        .to_string();
    let path = reg.blob_path(&layer);
    let mut data = std::fs::read(&path).expect("blob");
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    std::fs::write(&path, &data).expect("corrupt blob");

    let out = d.docker(&["pull", &name]);
    assert!(
        !out.status.success(),
        "a corrupted layer must fail the pull"
    );
    let err = common::stderr(&out);
    assert!(
        err.contains(&format!(
            "filesystem layer verification failed for digest {layer}"
        )),
        "{err}"
    );
    assert!(d.ok(&["images", "-q"]).is_empty(), "nothing registered");
    // The bad download is not kept for a resume.
    let downloads = d.data_root.join("image/downloads");
    let left: Vec<_> = std::fs::read_dir(&downloads)
        .map(|r| r.flatten().collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn docker_hub_names_go_through_the_mirror() {
    wharf_testutil::require_root!();
    let reg = Registry::start("");
    let mirror = format!("http://{}", reg.host());
    let d = Daemon::start(&["--registry-mirror", &mirror]);
    d.import_busybox();
    // As a mirror serves it: docker.io/library/… under library/ on the mirror; zstd layers.
    push_with_skopeo(
        &d,
        "busybox",
        &format!("{}/library/mirrored:1", reg.host()),
        ZSTD,
    );
    d.ok(&["rmi", "busybox"]);
    let out = d.ok(&["pull", "mirrored:1"]);
    assert!(
        out.contains("Status: Downloaded newer image for mirrored:1"),
        "{out}"
    );
    assert_eq!(
        d.ok(&["run", "--rm", "mirrored:1", "echo", "via-mirror"]),
        "via-mirror"
    );
    let digests = inspect(&d, "mirrored:1", "{{json .RepoDigests}}");
    assert!(digests.contains("\"mirrored@sha256:"), "{digests}");
    // `run` of a missing image pulls it first.
    d.ok(&["rmi", "mirrored:1"]);
    let run = d.docker(&["run", "--rm", "mirrored:1", "echo", "pulled-by-run"]);
    assert!(run.status.success(), "{}", common::stderr(&run));
    assert_eq!(String::from_utf8_lossy(&run.stdout).trim(), "pulled-by-run");
    assert!(
        common::stderr(&run).contains("Unable to find image 'mirrored:1' locally"),
        "{}",
        common::stderr(&run)
    );
}

#[test]
fn htpasswd_login_pull_and_logout() {
    wharf_testutil::require_root!();
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = common::registry::start_with_htpasswd(dir.path());
    let d = Daemon::start(&[]);
    let name = common::registry::push_private_busybox(&d, &reg);

    // Anonymous: refused with Docker's wording.
    let out = d.docker(&["pull", &name]);
    assert!(!out.status.success());
    assert!(
        common::stderr(&out).contains("pull access denied for"),
        "{}",
        common::stderr(&out)
    );

    // A wrong password is refused and nothing is stored.
    let bad = d.docker(&["login", "-u", "alice", "-p", "wrong", &reg.host()]);
    assert!(!bad.status.success());
    assert!(
        common::stderr(&bad).contains("401 Unauthorized"),
        "{}",
        common::stderr(&bad)
    );
    let config = d.dir.path().join("docker-config/config.json");
    let stored = std::fs::read_to_string(&config).unwrap_or_default();
    assert!(!stored.contains(&reg.host()), "{stored}");

    let ok = d.ok(&["login", "-u", "alice", "-p", "s3cret", &reg.host()]);
    assert!(ok.contains("Login Succeeded"), "{ok}");
    let out = d.ok(&["pull", &name]);
    assert!(out.contains("Downloaded newer image"), "{out}");
    assert_eq!(d.ok(&["run", "--rm", &name, "echo", "authed"]), "authed");
    // Our CLI sends the credentials docker login stored.
    d.ok(&["rmi", &name]);
    let ours = d.wharf(&["pull", &name]);
    assert!(ours.status.success(), "{}", common::stderr(&ours));

    d.ok(&["logout", &reg.host()]);
    d.ok(&["rmi", &name]);
    let out = d.docker(&["pull", &name]);
    assert!(!out.status.success(), "pull after logout must fail");
}

#[test]
fn push_remove_pull_back_and_skopeo_reads_it() {
    wharf_testutil::require_root!();
    let reg = Registry::start("");
    let d = Daemon::start(&[]);
    two_layer_image(&d, "local/pushed:1");
    let name = format!("{}/wharf/pushed:1", reg.host());
    d.ok(&["tag", "local/pushed:1", &name]);
    let id = inspect(&d, &name, "{{.Id}}");

    let out = d.ok(&["push", &name]);
    assert!(
        out.contains(&format!(
            "The push refers to repository [{}/wharf/pushed]",
            reg.host()
        )),
        "{out}"
    );
    assert!(out.contains("Pushed"), "{out}");
    assert!(out.contains("1: digest: sha256:"), "{out}");
    let digests = inspect(&d, &name, "{{json .RepoDigests}}");
    assert!(
        digests.contains(&format!("{}/wharf/pushed@sha256:", reg.host())),
        "{digests}"
    );

    // A second push (by our own CLI) finds every blob there (deterministic compression).
    let again = d.wharf(&["push", &name]);
    assert!(again.status.success(), "{}", common::stderr(&again));
    let again = String::from_utf8_lossy(&again.stdout);
    assert!(again.contains("Layer already exists"), "{again}");
    assert!(!again.contains("Pushed"), "{again}");

    // skopeo, the reference client, reads what we wrote and copies it out.
    let info = skopeo(&["inspect", "--tls-verify=false", &format!("docker://{name}")]);
    let info: serde_json::Value = serde_json::from_str(&info).expect("skopeo json");
    assert_eq!(info["Layers"].as_array().map(Vec::len), Some(2), "{info}");
    let oci = d.dir.path().join("oci-out");
    skopeo(&[
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{name}"),
        &format!("oci:{}:x", oci.display()),
    ]);
    assert!(oci.join("index.json").exists());

    // Removed and pulled back: the same image, runnable.
    d.ok(&["rmi", &name, "local/pushed:1", "busybox"]);
    assert!(d.ok(&["images", "-q"]).is_empty());
    d.ok(&["pull", &name]);
    assert_eq!(inspect(&d, &name, "{{.Id}}"), id);
    assert_eq!(d.ok(&["run", "--rm", &name]), "layer2");

    // Pushing what is not here is Docker's error.
    let out = d.docker(&["push", &format!("{}/wharf/absent:1", reg.host())]);
    assert!(!out.status.success());
    assert!(
        common::stderr(&out).contains("An image does not exist locally with the tag"),
        "{}",
        common::stderr(&out)
    );
}

/// A TCP proxy in front of a registry that sends blob bodies at about `rate` bytes a second
/// and records each request's first line and `Range` header (fault injection for pulls).
struct SlowProxy {
    port: u16,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl SlowProxy {
    fn start(upstream: u16, rate: usize) -> SlowProxy {
        use std::io::{Read, Write};
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { return };
                let log = log.clone();
                std::thread::spawn(move || {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if client.read(&mut byte).unwrap_or(0) == 0 {
                            return;
                        }
                        // A TLS ClientHello (the https attempt before http): hang up at
                        // once, as a plain-HTTP server's error answer would end it.
                        if head.is_empty() && byte[0] == 0x16 {
                            return;
                        }
                        head.push(byte[0]);
                    }
                    let text = String::from_utf8_lossy(&head).to_string();
                    let first = text.lines().next().unwrap_or_default().to_string();
                    let range = text
                        .lines()
                        .find(|l| l.to_ascii_lowercase().starts_with("range:"))
                        .map(|l| format!(" [{}]", l.trim()))
                        .unwrap_or_default();
                    log.lock().expect("log").push(format!("{first}{range}"));
                    let slow = first.starts_with("GET ") && first.contains("/blobs/sha256:");
                    let Ok(mut up) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else {
                        return;
                    };
                    if up.write_all(&head).is_err() {
                        return;
                    }
                    let _ = (client.set_nodelay(true), up.set_nodelay(true));
                    let began = Instant::now();
                    let mut sent = 0usize;
                    let mut buf = vec![0u8; 64 << 10];
                    loop {
                        let n = up.read(&mut buf).unwrap_or(0);
                        if n == 0 || client.write_all(&buf[..n]).is_err() {
                            return;
                        }
                        sent += n;
                        if slow {
                            // Ahead of `rate`: wait until the clock catches up.
                            let due = Duration::from_secs_f64(sent as f64 / rate as f64);
                            if let Some(wait) = due.checked_sub(began.elapsed()) {
                                std::thread::sleep(wait);
                            }
                        }
                    }
                });
            }
        });
        SlowProxy { port, seen }
    }

    fn requests(&self) -> Vec<String> {
        self.seen.lock().expect("log").clone()
    }
}

#[test]
fn kill_9_mid_pull_registers_nothing_and_the_next_pull_resumes() {
    wharf_testutil::require_root!();
    let reg = Registry::start("");
    let mut d = Daemon::start(&[]);
    d.import_busybox();
    d.ok(&[
        "run",
        "--name",
        "mk",
        "busybox",
        "sh",
        "-c",
        "head -c 4000000 /dev/urandom > /big",
    ]);
    d.ok(&["commit", "mk", "local/big:1"]);
    d.ok(&["rm", "mk"]);
    let direct = format!("{}/fault/big:1", reg.host());
    d.ok(&["tag", "local/big:1", &direct]);
    d.ok(&["push", &direct]);
    let id = inspect(&d, &direct, "{{.Id}}");
    d.ok(&["rmi", &direct, "local/big:1", "busybox"]);
    assert!(d.ok(&["images", "-q"]).is_empty());

    // Through a proxy that sends blobs at ~1 MB/s: kill -9 once a part has arrived.
    let proxy = SlowProxy::start(reg.port, 1_000_000);
    let name = format!("127.0.0.1:{}/fault/big:1", proxy.port);
    let mut pull = d.docker_spawn(&["pull", &name], Stdio::null());
    let downloads = d.data_root.join("image/downloads");
    let partial_size = || -> u64 {
        std::fs::read_dir(&downloads)
            .map(|r| {
                r.flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0)
    };
    let start = Instant::now();
    while partial_size() < 500_000 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the download never started: {}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    d.crash();
    let _ = pull.kill();
    let _ = pull.wait();
    let kept = partial_size();
    assert!(
        kept > 0 && kept < 4_000_000,
        "a partial download is kept ({kept} bytes)"
    );

    d.start_again();
    assert!(
        d.ok(&["images", "-q"]).is_empty(),
        "no partial image after the crash"
    );
    let before = proxy.requests().len();
    let out = d.ok(&["pull", &name]);
    assert!(out.contains("Downloaded newer image"), "{out}");
    let resumed: Vec<String> = proxy.requests()[before..]
        .iter()
        .filter(|r| r.to_ascii_lowercase().contains("range: bytes="))
        .cloned()
        .collect();
    assert!(
        !resumed.is_empty(),
        "the interrupted layer is resumed with Range: {:?}",
        proxy.requests()
    );
    assert_eq!(inspect(&d, &name, "{{.Id}}"), id);
    assert_eq!(
        d.ok(&["run", "--rm", &name, "sh", "-c", "wc -c < /big"]),
        "4000000"
    );
    // Nothing is left in the download dir once the image is in.
    assert_eq!(partial_size(), 0);
}

#[test]
fn docker_py_pulls_pushes_and_logs_in_through_a_mirror() {
    wharf_testutil::require_root!();
    let reg = Registry::start("");
    let mirror = format!("http://{}", reg.host());
    let d = Daemon::start(&["--registry-mirror", &mirror]);
    d.import_busybox();
    push_with_skopeo(
        &d,
        "busybox",
        &format!("{}/library/pybox:1", reg.host()),
        &[],
    );
    d.ok(&["rmi", "busybox"]);
    let config = d.dir.path().join("docker-config");
    let host = reg.host();
    d.docker_py(
        "dockerpy_registry.py",
        &[],
        &[
            ("DOCKER_CONFIG", config.as_os_str()),
            ("REGISTRY", std::ffi::OsStr::new(&host)),
        ],
        "docker-py registry: ok",
    );
}

/// Writes `bytes` as a blob of the OCI layout at `dir`; returns (digest, size).
fn oci_blob(dir: &std::path::Path, bytes: &[u8]) -> (String, usize) {
    let digest = common::registry::sha256_digest(bytes);
    let hex = digest.trim_start_matches("sha256:");
    std::fs::write(dir.join("blobs/sha256").join(hex), bytes).expect("place blob");
    (digest, bytes.len())
}

#[test]
fn two_platform_index_pulls_by_platform() {
    wharf_testutil::require_root!();
    let reg = Registry::start("");
    let d = Daemon::start(&[]);
    d.import_busybox();
    // An OCI layout of busybox (amd64), then a second manifest whose config says arm64.
    let archive = d.dir.path().join("bb.tar");
    d.ok(&["save", "-o", archive.to_str().expect("utf-8"), "busybox"]);
    let layout = d.dir.path().join("layout");
    skopeo(&[
        "copy",
        "--quiet",
        &format!("docker-archive:{}", archive.display()),
        &format!("oci:{}:amd", layout.display()),
    ]);
    let read_json = |p: PathBuf| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p).expect("read")).expect("json")
    };
    let blob = |digest: &str| {
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let index = read_json(layout.join("index.json"));
    let amd = index["manifests"][0].clone();
    let manifest = read_json(blob(amd["digest"].as_str().expect("digest")));
    let mut config = read_json(blob(manifest["config"]["digest"].as_str().expect("config")));
    config["architecture"] = "arm64".into();
    config["variant"] = "v8".into();
    let (cfg_digest, cfg_size) = oci_blob(&layout, &serde_json::to_vec(&config).expect("json"));
    let mut arm_manifest = manifest.clone();
    arm_manifest["config"]["digest"] = cfg_digest.into();
    arm_manifest["config"]["size"] = cfg_size.into();
    let (arm_digest, arm_size) =
        oci_blob(&layout, &serde_json::to_vec(&arm_manifest).expect("json"));
    let mt = "application/vnd.oci.image.manifest.v1+json";
    let nested = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": mt, "digest": amd["digest"], "size": amd["size"],
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": mt, "digest": arm_digest, "size": arm_size,
             "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
        ],
    });
    let (idx_digest, idx_size) = oci_blob(&layout, &serde_json::to_vec(&nested).expect("json"));
    let top = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": idx_digest, "size": idx_size,
            "annotations": {"org.opencontainers.image.ref.name": "multi"},
        }],
    });
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&top).expect("json"),
    )
    .expect("index");
    let name = format!("{}/multi/bb:1", reg.host());
    skopeo(&[
        "copy",
        "--quiet",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:multi", layout.display()),
        &format!("docker://{name}"),
    ]);
    d.ok(&["rmi", "busybox"]);

    d.ok(&["pull", &name]);
    assert_eq!(inspect(&d, &name, "{{.Architecture}}"), "amd64");
    let digests = inspect(&d, &name, "{{json .RepoDigests}}");
    assert!(
        digests.contains(&idx_digest),
        "RepoDigests name the index: {digests}"
    );
    assert_eq!(
        d.ok(&["run", "--rm", &name, "echo", "amd64-ran"]),
        "amd64-ran"
    );

    d.ok(&["pull", "--platform", "linux/arm64", &name]);
    assert_eq!(inspect(&d, &name, "{{.Architecture}}"), "arm64");
    assert_eq!(inspect(&d, &name, "{{.Variant}}"), "v8");

    let out = d.docker(&["pull", "--platform", "linux/s390x", &name]);
    assert!(!out.status.success());
    assert!(
        common::stderr(&out).contains("no matching manifest for linux/s390x"),
        "{}",
        common::stderr(&out)
    );
}

#[test]
fn self_signed_tls_is_trusted_through_certs_d() {
    wharf_testutil::require_root!();
    let pki = tempfile::tempdir().expect("tempdir");
    common::registry::make_certs(pki.path(), "wharf-test-ca");
    let reg = Registry::start(&format!(
        "  tls:\n    certificate: {0}/srv.crt\n    key: {0}/srv.key\n",
        pki.path().display()
    ));
    let name = format!("{}/tls/bb:1", reg.host());

    // certs.d/<host:port>/ca.crt makes the registry's certificate verified.
    let certs = tempfile::tempdir().expect("tempdir");
    let host_dir = certs.path().join(reg.host());
    std::fs::create_dir_all(&host_dir).expect("certs.d");
    std::fs::copy(pki.path().join("ca.crt"), host_dir.join("ca.crt")).expect("ca");
    let d = Daemon::start(&["--certs-dir", certs.path().to_str().expect("utf-8")]);
    d.import_busybox();
    push_with_skopeo(&d, "busybox", &name, &[]);
    d.ok(&["rmi", "busybox"]);
    d.ok(&["pull", &name]);
    assert_eq!(
        d.ok(&["run", "--rm", &name, "echo", "over-tls"]),
        "over-tls"
    );

    // Another CA in certs.d: the certificate no longer verifies, and the pull fails.
    let other = tempfile::tempdir().expect("tempdir");
    common::registry::make_certs(other.path(), "someone-else");
    let wrong = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(wrong.path().join(reg.host())).expect("certs.d");
    std::fs::copy(
        other.path().join("ca.crt"),
        wrong.path().join(reg.host()).join("ca.crt"),
    )
    .expect("ca");
    let d2 = Daemon::start(&["--certs-dir", wrong.path().to_str().expect("utf-8")]);
    let out = d2.docker(&["pull", &name]);
    assert!(
        !out.status.success(),
        "an untrusted certificate must fail the pull"
    );
    assert!(
        common::stderr(&out).contains("TLS handshake"),
        "{}",
        common::stderr(&out)
    );
}

#[test]
fn concurrent_pulls_of_one_image_share_its_layers() {
    wharf_testutil::require_root!();
    let reg = Registry::start("");
    let d = Daemon::start(&[]);
    two_layer_image(&d, "local/twice:1");
    let direct = format!("{}/conc/twice:1", reg.host());
    d.ok(&["tag", "local/twice:1", &direct]);
    d.ok(&["push", &direct]);
    let id = inspect(&d, &direct, "{{.Id}}");
    d.ok(&["rmi", &direct, "local/twice:1", "busybox"]);
    // Slow enough that both pulls are in flight at once.
    let proxy = SlowProxy::start(reg.port, 2_000_000);
    let name = format!("127.0.0.1:{}/conc/twice:1", proxy.port);
    let pulls: Vec<_> = (0..2)
        .map(|_| d.docker_spawn(&["pull", &name], Stdio::null()))
        .collect();
    for p in pulls {
        let out = p.wait_with_output().expect("pull");
        assert!(
            out.status.success(),
            "{}\n{}",
            common::stderr(&out),
            d.log()
        );
    }
    assert_eq!(inspect(&d, &name, "{{.Id}}"), id);
    assert_eq!(d.ok(&["run", "--rm", &name]), "layer2");
    let left = std::fs::read_dir(d.data_root.join("image/downloads"))
        .map(|r| r.count())
        .unwrap_or(0);
    assert_eq!(left, 0, "no download left behind");
}

/// Total bytes of the files under `dir` whose name starts with `prefix` (recursively).
fn bytes_under(dir: &std::path::Path, prefix: &str) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                bytes_under(&p, prefix)
            } else if e.file_name().to_string_lossy().starts_with(prefix) {
                e.metadata().map(|m| m.len()).unwrap_or(0)
            } else {
                0
            }
        })
        .sum()
}

#[test]
fn kill_9_mid_push_leaves_no_temp_blob_and_the_next_push_completes() {
    wharf_testutil::require_root!();
    let mut rng = common::Rng(common::seed(0x7075_7368));
    let reg = Registry::start("");
    let mut d = Daemon::start(&[]);
    d.import_busybox();
    let repo = format!("{}/fault/pushed", reg.host());
    let downloads = d.data_root.join("image/downloads");
    let uploads = reg
        .storage
        .join("docker/registry/v2/repositories/fault/pushed/_uploads");
    let mut ids = Vec::new();
    for round in 0..3 {
        // A layer of its own each round, so each push has uploading to do.
        let name = format!("{repo}:r{round}");
        d.ok(&[
            "run",
            "--name",
            "mk",
            "busybox",
            "sh",
            "-c",
            "head -c 8000000 /dev/urandom > /big",
        ]);
        d.ok(&["commit", "mk", &name]);
        d.ok(&["rm", "mk"]);
        ids.push((name.clone(), inspect(&d, &name, "{{.Id}}")));
        let mut push = d.docker_spawn(&["push", &name], Stdio::null());
        // A seeded moment: while compressing, while uploading, or after a short wait.
        let (what, threshold) = match rng.below(3) {
            0 => ("compressed", rng.below(8_000_000)),
            1 => ("uploaded", rng.below(8_000_000)),
            _ => ("waited ms", rng.below(1500)),
        };
        let start = Instant::now();
        loop {
            let reached = match what {
                "compressed" => bytes_under(&downloads, "push-") >= threshold,
                "uploaded" => bytes_under(&uploads, "data") >= threshold,
                _ => start.elapsed() >= Duration::from_millis(threshold),
            };
            let ended = push.try_wait().ok().flatten().is_some();
            if reached || ended || start.elapsed() > Duration::from_secs(60) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let ended = push.try_wait().ok().flatten().is_some();
        eprintln!("round {round}: kill -9 once {threshold} {what}; push ended before: {ended}");
        d.crash();
        let _ = push.kill();
        let _ = push.wait();
        d.start_again();
        assert_eq!(
            bytes_under(&downloads, "push-"),
            0,
            "no compressed layer of the interrupted push is left"
        );
        let digests = inspect(&d, &name, "{{json .RepoDigests}}");
        assert!(
            digests.matches("/fault/pushed@").count() <= 1,
            "registered at most once: {digests}"
        );
    }
    assert_eq!(d.ok(&["images", "-q", "--no-trunc"]).lines().count(), 4);
    // The next push completes; each image is recorded once and comes back the same.
    let out = d.ok(&["push", "-a", &repo]);
    assert_eq!(out.matches(": digest: sha256:").count(), 3, "{out}");
    for (name, id) in &ids {
        let digests = inspect(&d, name, "{{json .RepoDigests}}");
        assert_eq!(digests.matches("/fault/pushed@").count(), 1, "{digests}");
        d.ok(&["rmi", name]);
        d.ok(&["pull", name]);
        assert_eq!(&inspect(&d, name, "{{.Id}}"), id);
    }
    assert_eq!(bytes_under(&downloads, "push-"), 0);
}

#[test]
fn large_layers_go_up_in_chunks_and_known_blobs_are_mounted() {
    wharf_testutil::require_root!();
    let reg = Registry::start_logged("");
    let d = Daemon::start(&[]);
    d.import_busybox();
    d.ok(&[
        "run",
        "--name",
        "mk",
        "busybox",
        "sh",
        "-c",
        "head -c 12000000 /dev/urandom > /big",
    ]);
    let one = format!("{}/one/app:1", reg.host());
    d.ok(&["commit", "mk", &one]);
    d.ok(&["rm", "mk"]);
    let out = d.ok(&["push", &one]);
    assert!(out.contains("Pushed"), "{out}");
    // The 12 MB layer went up as 8 MiB PATCHes, not one request.
    let log = reg.log();
    let patches = log
        .lines()
        .filter(|l| l.contains("\"PATCH /v2/one/app/blobs/uploads/") && l.contains("\" 202 "))
        .count();
    assert!(patches >= 2, "chunked upload: {patches} PATCHes\n{log}");

    // The same image in another repository: every layer is mounted from the first.
    let two = format!("{}/two/app:1", reg.host());
    d.ok(&["tag", &one, &two]);
    let before = reg.log().len();
    let out = d.ok(&["push", &two]);
    assert_eq!(out.matches("Mounted from one/app").count(), 2, "{out}");
    assert!(!out.contains("Pushed"), "{out}");
    let log = reg.log()[before..].to_string();
    let mounts = log
        .lines()
        .filter(|l| {
            l.contains("\"POST /v2/two/app/blobs/uploads/?mount=sha256:") && l.contains("\" 201 ")
        })
        .count();
    assert_eq!(mounts, 3, "two layers and the config: {log}");
    assert!(
        !log.contains("\"PATCH /v2/two/app/") && !log.contains("\"PUT /v2/two/app/blobs/"),
        "nothing uploaded to two/app: {log}"
    );
    let layers = reg
        .storage
        .join("docker/registry/v2/repositories/two/app/_layers/sha256");
    assert_eq!(
        std::fs::read_dir(&layers).map(|r| r.count()).unwrap_or(0),
        3,
        "two layers and the config linked into two/app"
    );
    assert_eq!(inspect(&d, &two, "{{.Id}}"), inspect(&d, &one, "{{.Id}}"));

    // Pulled layers are remembered too (blob-sources.json survives restarts of the store).
    d.ok(&["rmi", &one, &two, "busybox"]);
    d.ok(&["pull", &two]);
    let three = format!("{}/three/app:1", reg.host());
    d.ok(&["tag", &two, &three]);
    let out = d.ok(&["push", &three]);
    assert_eq!(out.matches("Mounted from two/app").count(), 2, "{out}");
    let info = skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{three}"),
    ]);
    assert!(info.contains("\"Layers\""), "{info}");
}

/// A token server (`tests/clients/token_server.py`) on its own port; killed on drop.
struct TokenServer {
    child: std::process::Child,
    port: u16,
    log: PathBuf,
}

impl TokenServer {
    /// Starts one signing with a new key; `dir` gets the key, the certificate and the log.
    fn start(dir: &std::path::Path) -> TokenServer {
        let (key, cert) = (dir.join("token.key"), dir.join("token.crt"));
        let ok = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=wharf-token", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl");
        assert!(ok.status.success(), "{}", common::stderr(&ok));
        let port = common::free_port();
        let log = dir.join("token.log");
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/token_server.py");
        let child = std::process::Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .arg(&key)
            .arg(&cert)
            .arg(&log)
            .spawn()
            .expect("python3");
        common::wait_for("token server", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        TokenServer { child, port, log }
    }

    /// The registry config that sends clients here for tokens.
    fn registry_config(&self, dir: &std::path::Path) -> String {
        format!(
            "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: wharf-registry\n    issuer: wharf-test\n    rootcertbundle: {}\n",
            self.port,
            dir.join("token.crt").display()
        )
    }

    /// The scopes of each token request so far.
    fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn token_registries_mount_with_a_token_for_the_source_repository() {
    wharf_testutil::require_root!();
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = TokenServer::start(dir.path());
    let reg = Registry::start_logged(&tokens.registry_config(dir.path()));
    let d = Daemon::start(&[]);
    d.import_busybox();
    let one = format!("{}/one/app:1", reg.host());
    let two = format!("{}/two/app:1", reg.host());
    d.ok(&["tag", "busybox", &one]);
    d.ok(&["tag", "busybox", &two]);
    let out = d.ok(&["push", &one]);
    assert!(out.contains("Pushed"), "{out}");
    // The mount needs pull on one/app as well as push on two/app: one token for both.
    let out = d.ok(&["push", &two]);
    assert!(out.contains("Mounted from one/app"), "{out}\n{}", reg.log());
    let both = "repository:two/app:pull,push repository:one/app:pull";
    assert!(
        tokens.requests().iter().any(|r| r == both),
        "{:?}",
        tokens.requests()
    );
    d.ok(&["rmi", &one, &two, "busybox"]);
    d.ok(&["pull", &two]);
    assert_eq!(d.ok(&["run", "--rm", &two, "echo", "tokened"]), "tokened");
}

#[test]
fn a_pulled_layer_is_pushed_by_the_digest_it_came_with() {
    wharf_testutil::require_root!();
    let reg = Registry::start("");
    let d = Daemon::start(&[]);
    two_layer_image(&d, "local/src:1");
    let src = format!("{}/src/app:1", reg.host());
    push_with_skopeo(&d, "local/src:1", &src, &[]);
    d.ok(&["rmi", "local/src:1", "busybox"]);
    d.ok(&["pull", &src]);
    let layers = |name: &str| -> serde_json::Value {
        let info = skopeo(&["inspect", "--tls-verify=false", &format!("docker://{name}")]);
        serde_json::from_str::<serde_json::Value>(&info).expect("skopeo json")["Layers"].clone()
    };

    // Another repository of the same registry: mounted by skopeo's digests, no new blobs.
    let dst = format!("{}/dst/app:1", reg.host());
    d.ok(&["tag", &src, &dst]);
    let blobs = || {
        std::fs::read_dir(reg.storage.join("docker/registry/v2/blobs/sha256"))
            .map(|r| {
                r.flatten()
                    .map(|e| std::fs::read_dir(e.path()).map(|r| r.count()).unwrap_or(0))
                    .sum::<usize>()
            })
            .unwrap_or(0)
    };
    let before = blobs();
    let out = d.ok(&["push", &dst]);
    assert_eq!(out.matches("Mounted from src/app").count(), 2, "{out}");
    assert_eq!(layers(&dst), layers(&src));
    // Back where it came from under a new tag: every layer is already there.
    let again = format!("{}/src/app:2", reg.host());
    d.ok(&["tag", &src, &again]);
    let out = d.ok(&["push", &again]);
    assert_eq!(out.matches("Layer already exists").count(), 2, "{out}");
    assert_eq!(layers(&again), layers(&src));
    // Only our manifest (the same bytes for both tags) is new: no layer went up again.
    assert_eq!(blobs(), before + 1, "one new manifest, nothing else");
}
