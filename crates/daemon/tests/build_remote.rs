//! End-to-end: builds whose inputs come over the network (loopback only): `remote=`
//! contexts (tarball URL, plain Dockerfile URL, Git URL with `#ref:subdir`) and ADD <url>
//! with `--checksum`, `--chown` and the server's Last-Modified.

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::build::{build, build_ok, context, s, text};
use common::{free_port, wait_for, Daemon};
use wharf_testutil::http::{HttpServer, Route};

/// `POST /build?remote=…` with an empty body; the status and response body.
fn build_remote(d: &Daemon, remote: &str, tag: &str) -> (u16, String) {
    let enc: String = remote
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let (st, body) = d.raw_with(
        "POST",
        &format!("/v1.45/build?remote={enc}&t={tag}"),
        &[("Content-Type", "application/x-tar")],
        b"",
    );
    (st, String::from_utf8_lossy(&body).to_string())
}

/// A remote build that must succeed.
fn build_remote_ok(d: &Daemon, remote: &str, tag: &str) {
    let (st, out) = build_remote(d, remote, tag);
    assert!(st == 200 && !out.contains("errorDetail"), "{st}: {out}");
}

fn git(dir: &Path, args: &[&str]) {
    let o = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .expect("git");
    assert!(o.status.success(), "git {args:?}: {}", text(&o));
}

/// `git daemon` serving a directory on a loopback port; killed on drop.
struct GitDaemon(Child);

impl Drop for GitDaemon {
    /// `git daemon` runs `git-daemon` as its child: the whole process group goes.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.wait();
    }
}

#[test]
fn remote_contexts_tarball_dockerfile_and_git() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&["-s", "overlay2"]);
    d.import_busybox();

    // A tarball URL is the context; a plain-text URL is the Dockerfile alone.
    let ctx = context(
        &d,
        "tarctx",
        &[
            ("Dockerfile", "FROM busybox\nCOPY f /f\nCMD cat /f\n"),
            ("f", "from-tarball"),
        ],
    );
    let tgz = Command::new("tar")
        .args(["-czf", "-", "Dockerfile", "f"])
        .current_dir(&ctx)
        .output()
        .expect("tar");
    let server = HttpServer::start(vec![
        ("/ctx.tar.gz".into(), Route::Body(tgz.stdout)),
        (
            "/Dockerfile".into(),
            Route::Body(b"FROM busybox\nRUN echo plain > /p\nCMD cat /p\n".to_vec()),
        ),
    ])
    .expect("http server");
    build_remote_ok(&d, &server.url("/ctx.tar.gz"), "rt");
    assert_eq!(d.ok(&["run", "--rm", "rt"]), "from-tarball");
    build_remote_ok(&d, &server.url("/Dockerfile"), "rd");
    assert_eq!(d.ok(&["run", "--rm", "rd"]), "plain");

    // A Git URL: branch `feature`, subdirectory `app`, served by git daemon.
    let work = d.dir.path().join("gitwork");
    std::fs::create_dir_all(work.join("app")).expect("mkdir");
    git(&work, &["init", "-q", "-b", "main"]);
    std::fs::write(
        work.join("app/Dockerfile"),
        "FROM busybox\nCOPY msg /msg\nCMD cat /msg\n",
    )
    .expect("write");
    std::fs::write(work.join("app/msg"), "main").expect("write");
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "main"]);
    git(&work, &["checkout", "-q", "-b", "feature"]);
    std::fs::write(work.join("app/msg"), "feature").expect("write");
    git(&work, &["commit", "-q", "-am", "feature"]);
    let base = d.dir.path().join("gitserve");
    std::fs::create_dir_all(&base).expect("mkdir");
    let o = Command::new("git")
        .args(["clone", "-q", "--bare"])
        .arg(&work)
        .arg(base.join("repo.git"))
        .output()
        .expect("git clone");
    assert!(o.status.success(), "{}", text(&o));
    let port = free_port();
    let _gd = GitDaemon(
        Command::new("git")
            .args([
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--listen=127.0.0.1",
                &format!("--port={port}"),
                &format!("--base-path={}", s(&base)),
                s(&base),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("git daemon"),
    );
    wait_for("git daemon", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let url = format!("git://127.0.0.1:{port}/repo.git");
    build_remote_ok(&d, &format!("{url}#feature:app"), "rg");
    assert_eq!(d.ok(&["run", "--rm", "rg"]), "feature");
    // `wharf build <url>` leaves the fetch to the daemon.
    let o = d.wharf(&["build", "-t", "rg", &format!("{url}#main:app")]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(d.ok(&["run", "--rm", "rg"]), "main");
    // ADD of a Git URL: the checkout's files, .git only with --keep-git-dir.
    let add = context(
        &d,
        "addgit",
        &[(
            "Dockerfile",
            &format!("FROM busybox\nADD {url}#feature:app /src/\nADD --keep-git-dir {url}#main /full\nCMD cat /src/msg /full/app/msg && ls -A /src && test -d /full/.git\n"),
        )],
    );
    build_ok(&d, &["-t", "addgit", s(&add)]);
    assert_eq!(
        d.ok(&["run", "--rm", "addgit"]),
        "featuremainDockerfile\nmsg"
    );
    let (st, out) = build_remote(&d, &format!("{url}#main:nope"), "rg");
    assert!(
        st == 404 && out.contains("subdir nope not found"),
        "{st}: {out}"
    );
    let (st, out) = build_remote(&d, "ftp://127.0.0.1/x", "rf");
    assert!(
        st == 400 && out.contains("is neither a Git URL nor an HTTP(S) URL"),
        "{st}: {out}"
    );
    assert_eq!(d.ok(&["ps", "-aq"]), "");
}

#[test]
fn add_url_with_checksum_chown_and_last_modified() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&["-s", "overlay2"]);
    d.import_busybox();
    let server = HttpServer::start(vec![(
        "/files/data.txt".into(),
        Route::BodyWith(
            b"hello\n".to_vec(),
            vec![(
                "Last-Modified".into(),
                "Wed, 21 Oct 2015 07:28:00 GMT".into(),
            )],
        ),
    )])
    .expect("http server");
    let url = server.url("/files/data.txt");
    let sum = "sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
    let ctx = context(
        &d,
        "addurl",
        &[(
            "Dockerfile",
            &format!(
                "FROM busybox\nRUN echo 'app:x:1000:1000::/:/bin/sh' >> /etc/passwd && echo 'app:x:1000:' >> /etc/group\nADD --checksum={sum} --chown=app:app {url} /dl/\nADD {url} /named.txt\nCMD stat -c '%U %a %Y' /dl/data.txt /named.txt && cat /dl/data.txt\n"
            ),
        )],
    );
    build_ok(&d, &["-t", "addurl", s(&ctx)]);
    assert_eq!(
        d.ok(&["run", "--rm", "addurl"]),
        "app 600 1445412480\nroot 600 1445412480\nhello"
    );

    let wrong = format!("sha256:{}", "0".repeat(64));
    let bad = context(
        &d,
        "badsum",
        &[(
            "Dockerfile",
            &format!("FROM busybox\nADD --checksum={wrong} {url} /x\n"),
        )],
    );
    let o = build(&d, &[s(&bad)], None);
    assert!(!o.status.success());
    assert!(
        text(&o).contains(&format!("digest mismatch {sum}: {wrong}")),
        "{}",
        text(&o)
    );
    let local = context(
        &d,
        "localsum",
        &[
            (
                "Dockerfile",
                &format!("FROM busybox\nADD --checksum={sum} f /f\n"),
            ),
            ("f", "x"),
        ],
    );
    let o = build(&d, &[s(&local)], None);
    assert!(
        text(&o).contains("checksum can't be specified for non-HTTP(S) sources"),
        "{}",
        text(&o)
    );
    assert_eq!(d.ok(&["ps", "-aq"]), "");
}
