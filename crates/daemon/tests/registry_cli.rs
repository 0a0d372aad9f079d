//! End-to-end: our CLI's registry commands (`login`, `logout`, `pull -a`, `push -a`,
//! `manifest inspect`) against Debian's `docker-registry`, each compared with the docker CLI
//! doing the same against the same daemon and registry.

mod common;

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::process::Output;

use common::registry::{run_cli, skopeo, start_with_htpasswd, Cli};
use common::Daemon;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// Asserts both CLIs ended alike: exit status, stdout and stderr byte for byte.
fn same(ours: &Output, theirs: &Output, what: &str) {
    assert_eq!(
        (ours.status.code(), text(&ours.stdout), text(&ours.stderr)),
        (
            theirs.status.code(),
            text(&theirs.stdout),
            text(&theirs.stderr)
        ),
        "{what}: wharf (left) and docker (right) differ"
    );
}

/// A `docker-credential-fake` helper keeping one file per server under `$FAKE_CREDS`, and
/// logging each verb it ran to `$FAKE_CREDS/calls`.
const FAKE_HELPER: &str = r#"#!/bin/sh
dir=${FAKE_CREDS:?}
echo "$1" >> "$dir/calls"
key() { echo "$1" | tr '/:' '__'; }
case "$1" in
store) cat > "$dir/in"; url=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ServerURL"])' "$dir/in"); mv "$dir/in" "$dir/$(key "$url")" ;;
get) read -r url; f="$dir/$(key "$url")"; [ -f "$f" ] && cat "$f" && exit 0; echo "credentials not found in native keychain"; exit 1 ;;
erase) read -r url; f="$dir/$(key "$url")"; [ -f "$f" ] && rm "$f" && exit 0; echo "credentials not found in native keychain"; exit 1 ;;
esac
"#;

#[test]
fn wharf_login_and_logout_store_credentials_as_docker_does() {
    wharf_testutil::require_root!();
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = start_with_htpasswd(dir.path());
    let host = reg.host();
    let d = Daemon::start(&[]);
    let name = common::registry::push_private_busybox(&d, &reg);
    let config = d.dir.path().join("docker-config/config.json");
    let cli = |c: Cli, args: &[&str], stdin: Option<&[u8]>| run_cli(&d, c, args, stdin, &[]);

    // A wrong password: the daemon answers 401 and both CLIs say the same, storing nothing.
    let (status, body) = d.raw(
        "POST",
        "/v1.45/auth",
        format!(r#"{{"username":"alice","password":"wrong","serveraddress":"{host}"}}"#).as_bytes(),
    );
    assert_eq!(status, 401, "{}", text(&body));
    let bad = ["login", "-u", "alice", "-p", "wrong", host.as_str()];
    let ours = cli(Cli::Wharf, &bad, None);
    same(&ours, &cli(Cli::Docker, &bad, None), "wrong password");
    assert!(text(&ours.stderr).contains("401 Unauthorized"));
    assert!(!config.exists() || !std::fs::read_to_string(&config).unwrap().contains(&host));

    // The config file: the same bytes, mode 0600, the same warning and status line.
    let good = ["login", "-u", "alice", "--password-stdin", host.as_str()];
    let theirs = cli(Cli::Docker, &good, Some(b"s3cret\n"));
    let their_file = std::fs::read(&config).expect("docker wrote config.json");
    let their_logout = cli(Cli::Docker, &["logout", &host], None);
    let ours = cli(Cli::Wharf, &good, Some(b"s3cret\n"));
    same(&ours, &theirs, "login");
    assert_eq!(text(&ours.stdout), "Login Succeeded\n");
    assert_eq!(
        text(&std::fs::read(&config).expect("config")),
        text(&their_file)
    );
    let mode = std::fs::metadata(&config)
        .expect("config")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // Logging in again without flags reuses what is stored, as docker does.
    let again_ours = cli(Cli::Wharf, &["login", &host], None);
    same(
        &again_ours,
        &cli(Cli::Docker, &["login", &host], None),
        "re-login",
    );

    // Our pull sends what is stored; so does docker's with what our login stored.
    let pulled = cli(Cli::Wharf, &["pull", &name], None);
    assert!(pulled.status.success(), "{}", text(&pulled.stderr));
    d.ok(&["rmi", &name]);
    d.ok(&["pull", &name]);
    d.ok(&["rmi", &name]);

    let ours = cli(Cli::Wharf, &["logout", &host], None);
    same(&ours, &their_logout, "logout");
    assert!(!std::fs::read_to_string(&config).unwrap().contains(&host));
    let denied = cli(Cli::Wharf, &["pull", &name], None);
    assert!(!denied.status.success());
    assert!(
        text(&denied.stderr).contains("pull access denied"),
        "{}",
        text(&denied.stderr)
    );

    // A credential helper (`credsStore`): the secret goes to it, the file keeps `{}`.
    let bin = dir.path().join("bin");
    let store = dir.path().join("creds");
    std::fs::create_dir_all(&bin).expect("bin");
    std::fs::create_dir_all(&store).expect("creds");
    let helper = bin.join("docker-credential-fake");
    std::fs::write(&helper, FAKE_HELPER).expect("helper");
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(&config, r#"{"credsStore":"fake"}"#).expect("config");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let env = [
        ("PATH", OsStr::new(&path)),
        ("FAKE_CREDS", store.as_os_str()),
    ];
    let with_helper =
        |c: Cli, args: &[&str], stdin: Option<&[u8]>| run_cli(&d, c, args, stdin, &env);
    let ours = with_helper(Cli::Wharf, &good, Some(b"s3cret\n"));
    assert_eq!(text(&ours.stdout), "Login Succeeded\n");
    assert_eq!(text(&ours.stderr), "", "no plaintext warning with a helper");
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config).expect("config")).expect("json");
    assert_eq!(saved["auths"][&host], serde_json::json!({}), "{saved}");
    assert_eq!(saved["credsStore"], "fake");
    let secret = std::fs::read_to_string(store.join(host.replace(':', "_"))).expect("stored");
    assert!(secret.contains("\"Secret\":\"s3cret\""), "{secret}");
    let pulled = with_helper(Cli::Wharf, &["pull", &name], None);
    assert!(pulled.status.success(), "{}", text(&pulled.stderr));
    d.ok(&["rmi", &name]);
    let pulled = with_helper(Cli::Docker, &["pull", &name], None);
    assert!(pulled.status.success(), "{}", text(&pulled.stderr));
    let ours = with_helper(Cli::Wharf, &["logout", &host], None);
    assert_eq!(
        text(&ours.stdout),
        format!("Removing login credentials for {host}\n")
    );
    let calls = std::fs::read_to_string(store.join("calls")).expect("calls");
    assert_eq!(
        calls.lines().collect::<Vec<_>>(),
        ["store", "get", "get", "erase", "erase", "erase"],
        "helper verbs"
    );
    // Logged out everywhere: a second logout warns exactly as docker's does.
    let url = format!("http://{host}/");
    let twice = ["logout", url.as_str()];
    let ours = with_helper(Cli::Wharf, &twice, None);
    let theirs = with_helper(Cli::Docker, &twice, None);
    assert_eq!(text(&ours.stdout), text(&theirs.stdout));
    let sorted = |o: &Output| {
        let mut l: Vec<String> = text(&o.stderr).lines().map(str::to_string).collect();
        l.sort();
        l
    };
    // docker lists the failures in map order; the set is what must match.
    assert_eq!(sorted(&ours), sorted(&theirs));
}

/// Imports a one-file image (`name` holding `content`) through `docker import`.
fn import_file(d: &Daemon, name: &str, content: &str, tag: &str) {
    let root = d.dir.path().join(format!("root-{content}"));
    std::fs::create_dir_all(&root).expect("rootfs");
    std::fs::write(root.join(name), content).expect("file");
    let tar = d.dir.path().join(format!("{content}.tar"));
    let st = std::process::Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .expect("tar");
    assert!(st.success());
    d.ok(&["import", tar.to_str().expect("utf-8"), tag]);
}

#[test]
fn pull_and_push_all_tags_print_what_docker_prints() {
    wharf_testutil::require_root!();
    let reg = common::registry::Registry::start("");
    let d = Daemon::start(&[]);
    let repo = format!("{}/all/app", reg.host());
    let tags: Vec<String> = ["1", "2", "3"]
        .iter()
        .map(|t| format!("{repo}:{t}"))
        .collect();
    import_file(&d, "hello", "one", &tags[0]);
    d.ok(&["tag", &tags[0], &tags[1]]);
    import_file(&d, "hello", "three", &tags[2]);
    let cli = |c: Cli, args: &[&str]| run_cli(&d, c, args, None, &[]);

    // Every local tag goes, in docker's words; a tag with -a is refused as docker refuses it.
    let ours = cli(Cli::Wharf, &["push", "-a", &repo]);
    assert!(ours.status.success(), "{}", text(&ours.stderr));
    let out = text(&ours.stdout);
    for t in ["1", "2", "3"] {
        assert!(out.contains(&format!("\n{t}: digest: sha256:")), "{out}");
    }
    same(
        &cli(Cli::Wharf, &["push", "-a", &repo]),
        &cli(Cli::Docker, &["push", "-a", &repo]),
        "push -a of pushed tags",
    );
    same(
        &cli(Cli::Wharf, &["push", "-a", &tags[0]]),
        &cli(Cli::Docker, &["push", "-a", &tags[0]]),
        "push -a with a tag",
    );
    same(
        &cli(Cli::Wharf, &["push", &repo]),
        &cli(Cli::Docker, &["push", &repo]),
        "push of a name without tag",
    );

    // Pulled back from nothing, by each CLI in turn: the same lines, the same images.
    let ids: Vec<String> = tags
        .iter()
        .map(|t| d.ok(&["image", "inspect", "--format", "{{.Id}}", t]))
        .collect();
    let mut outputs = Vec::new();
    for c in [Cli::Docker, Cli::Wharf] {
        let mut rmi = vec!["rmi"];
        rmi.extend(tags.iter().map(String::as_str));
        d.ok(&rmi);
        let o = cli(c, &["pull", "-a", &repo]);
        assert!(o.status.success(), "{c:?}: {}", text(&o.stderr));
        for (t, id) in tags.iter().zip(&ids) {
            assert_eq!(&d.ok(&["image", "inspect", "--format", "{{.Id}}", t]), id);
        }
        outputs.push(o);
    }
    same(&outputs[1], &outputs[0], "pull -a");
    assert!(
        text(&outputs[1].stdout).ends_with(&format!(
            "Status: Downloaded newer image for {repo}\n{repo}\n"
        )),
        "{}",
        text(&outputs[1].stdout)
    );
    same(
        &cli(Cli::Wharf, &["pull", "-a", &repo]),
        &cli(Cli::Docker, &["pull", "-a", &repo]),
        "pull -a of present tags",
    );
    same(
        &cli(Cli::Wharf, &["pull", "-a", &tags[0]]),
        &cli(Cli::Docker, &["pull", "-a", &tags[0]]),
        "pull -a with a tag",
    );
    same(
        &cli(Cli::Wharf, &["pull", &repo]),
        &cli(Cli::Docker, &["pull", &repo]),
        "pull of a name without tag (no :latest there)",
    );
    d.ok(&["tag", &tags[0], &format!("{repo}:latest")]);
    d.ok(&["push", "-q", &format!("{repo}:latest")]);
    same(
        &cli(Cli::Wharf, &["pull", &repo]),
        &cli(Cli::Docker, &["pull", &repo]),
        "pull of a name without tag",
    );
    let absent = format!("{}/all/absent", reg.host());
    same(
        &cli(Cli::Wharf, &["pull", "-a", &absent]),
        &cli(Cli::Docker, &["pull", "-a", &absent]),
        "pull -a of a missing repository",
    );
}

/// `curl` with `args`; returns stdout.
fn curl(args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new("curl")
        .arg("-sf")
        .args(args)
        .output()
        .expect("curl");
    assert!(out.status.success(), "curl {args:?}: {}", text(&out.stderr));
    out.stdout
}

#[test]
fn manifest_inspect_prints_what_docker_prints() {
    wharf_testutil::require_root!();
    let reg = common::registry::Registry::start("");
    let d = Daemon::start(&[]);
    let repo = format!("{}/mf/app", reg.host());
    import_file(&d, "a", "amd", &format!("{repo}:amd"));
    import_file(&d, "b", "arm", &format!("{repo}:arm"));
    d.ok(&["push", "-a", &repo]);
    // A manifest list over the two, as `docker manifest push` would make it.
    let mt = "application/vnd.docker.distribution.manifest.v2+json";
    let entry = |tag: &str, platform: serde_json::Value| {
        let raw = curl(&[
            "-H",
            &format!("Accept: {mt}"),
            &format!("http://{}/v2/mf/app/manifests/{tag}", reg.host()),
        ]);
        let digest = common::registry::sha256_digest(&raw);
        serde_json::json!({"mediaType": mt, "digest": digest, "size": raw.len(), "platform": platform})
    };
    let list = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
        "manifests": [
            entry("amd", serde_json::json!({"architecture": "amd64", "os": "linux"})),
            entry("arm", serde_json::json!({"architecture": "arm64", "os": "linux", "variant": "v8"})),
        ],
    });
    curl(&[
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/vnd.docker.distribution.manifest.list.v2+json",
        "--data-binary",
        &list.to_string(),
        &format!("http://{}/v2/mf/app/manifests/multi", reg.host()),
    ]);
    let by_digest = d.ok(&[
        "image",
        "inspect",
        "--format",
        "{{index .RepoDigests 0}}",
        &format!("{repo}:amd"),
    ]);

    let cli = |c: Cli, args: &[&str]| run_cli(&d, c, args, None, &[]);
    for args in [
        vec!["manifest", "inspect", "--insecure", &format!("{repo}:amd")],
        vec![
            "manifest",
            "inspect",
            "-v",
            "--insecure",
            &format!("{repo}:amd"),
        ],
        vec!["manifest", "inspect", "--insecure", &by_digest],
        vec![
            "manifest",
            "inspect",
            "--insecure",
            &format!("{repo}:multi"),
        ],
        vec![
            "manifest",
            "inspect",
            "--verbose",
            "--insecure",
            &format!("{repo}:multi"),
        ],
        // Without --insecure docker's CLI insists on verified https, even on loopback.
        vec!["manifest", "inspect", &format!("{repo}:amd")],
        vec![
            "manifest",
            "inspect",
            "--insecure",
            &format!("{repo}:absent"),
        ],
    ] {
        let args: Vec<&str> = args.iter().map(|s| s.as_ref()).collect();
        let ours = cli(Cli::Wharf, &args);
        same(&ours, &cli(Cli::Docker, &args), &format!("{args:?}"));
    }
    let shown = text(
        &cli(
            Cli::Wharf,
            &[
                "manifest",
                "inspect",
                "--insecure",
                &format!("{repo}:multi"),
            ],
        )
        .stdout,
    );
    assert!(shown.contains("\"variant\": \"v8\""), "{shown}");
}

/// `/etc/docker/certs.d/<host>` for one test (both CLIs read that directory); removed on
/// drop.
struct EtcCertsD(std::path::PathBuf);

impl Drop for EtcCertsD {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn manifest_inspect_trusts_etc_docker_certs_d_as_docker_does() {
    wharf_testutil::require_root!();
    let pki = tempfile::tempdir().expect("tempdir");
    common::registry::make_certs(pki.path(), "wharf-manifest-ca");
    let reg = common::registry::Registry::start(&format!(
        "  tls:\n    certificate: {0}/srv.crt\n    key: {0}/srv.key\n",
        pki.path().display()
    ));
    let d = Daemon::start(&[]);
    let name = format!("{}/tls/app:1", reg.host());
    import_file(&d, "f", "tls", &name);
    let archive = d.dir.path().join("tls.tar");
    d.ok(&["save", "-o", archive.to_str().expect("utf-8"), &name]);
    skopeo(&[
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        &format!("docker-archive:{}", archive.display()),
        &format!("docker://{name}"),
    ]);
    let cli = |c: Cli, args: &[&str]| run_cli(&d, c, args, None, &[]);
    let args = ["manifest", "inspect", name.as_str()];

    // Not trusted: on loopback both CLIs skip verification (127.0.0.0/8 is insecure by
    // default), yet without --insecure neither falls back to plain http (see the test above).
    same(
        &cli(Cli::Wharf, &args),
        &cli(Cli::Docker, &args),
        "untrusted on loopback",
    );
    let dir = std::path::Path::new("/etc/docker/certs.d").join(reg.host());
    let _guard = EtcCertsD(dir.clone());
    std::fs::create_dir_all(&dir).expect("certs.d");
    std::fs::copy(pki.path().join("ca.crt"), dir.join("ca.crt")).expect("ca");
    let ours = cli(Cli::Wharf, &args);
    assert!(ours.status.success(), "{}", text(&ours.stderr));
    same(&ours, &cli(Cli::Docker, &args), "trusted through certs.d");
}
