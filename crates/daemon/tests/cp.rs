//! End-to-end `docker cp`: the real docker CLI (and our own `wharf cp`) against a real wharfd,
//! into and out of running and stopped containers, on vfs and overlay2.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::Daemon;

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

/// Runs `tar args` with `input` on stdin; returns stdout.
fn tar(args: &[&str], input: &[u8]) -> String {
    let mut child = Command::new("tar")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn tar");
    if let Some(mut pipe) = child.stdin.take() {
        std::io::Write::write_all(&mut pipe, input).expect("feed tar");
    }
    let o = child.wait_with_output().expect("tar output");
    assert!(o.status.success(), "tar {args:?} failed");
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// `cat` inside the running `run1`.
fn exec_cat(d: &Daemon, p: &str) -> String {
    d.ok(&["exec", "run1", "cat", p])
}

/// A container file's content, read through `docker cp ctr:path -`.
fn cp_cat(d: &Daemon, ctr: &str, p: &str) -> String {
    let o = d.docker(&["cp", &format!("{ctr}:{p}"), "-"]);
    assert_eq!(code(&o), 0, "{}", common::stderr(&o));
    let name = Path::new(p)
        .file_name()
        .and_then(|n| n.to_str())
        .expect("name");
    tar(&["-xOf", "-", name], &o.stdout).trim().to_string()
}

/// A host directory with `hello.txt` and `tree/{a.txt,sub/b.txt}`.
fn host_fixture() -> tempfile::TempDir {
    let h = tempfile::tempdir().expect("tempdir");
    std::fs::write(h.path().join("hello.txt"), "hello\n").expect("write");
    std::fs::create_dir_all(h.path().join("tree/sub")).expect("mkdir");
    std::fs::write(h.path().join("tree/a.txt"), "a\n").expect("write");
    std::fs::write(h.path().join("tree/sub/b.txt"), "b\n").expect("write");
    h
}

/// Copies in and out of `ctr` with the docker CLI and checks the result through `check_in`
/// (which reads a container path back).
fn round_trip(d: &Daemon, ctr: &str, h: &Path, out: &Path, check_in: &dyn Fn(&str) -> String) {
    d.ok(&["cp", s(&h.join("hello.txt")), &format!("{ctr}:/tmp/")]);
    assert_eq!(check_in("/tmp/hello.txt"), "hello");
    d.ok(&[
        "cp",
        s(&h.join("hello.txt")),
        &format!("{ctr}:/tmp/renamed.txt"),
    ]);
    assert_eq!(check_in("/tmp/renamed.txt"), "hello");
    d.ok(&["cp", s(&h.join("tree")), &format!("{ctr}:/tmp/")]);
    assert_eq!(check_in("/tmp/tree/sub/b.txt"), "b");

    let dest = out.join(ctr);
    std::fs::create_dir_all(&dest).expect("mkdir out");
    d.ok(&["cp", &format!("{ctr}:/tmp/hello.txt"), s(&dest)]);
    assert_eq!(
        std::fs::read_to_string(dest.join("hello.txt")).expect("copied file"),
        "hello\n"
    );
    d.ok(&["cp", &format!("{ctr}:/tmp/tree"), s(&dest.join("tree2"))]);
    assert_eq!(
        std::fs::read_to_string(dest.join("tree2/sub/b.txt")).expect("copied tree"),
        "b\n"
    );
    let o = d.docker(&["cp", &format!("{ctr}:/tmp/tree"), "-"]);
    assert_eq!(code(&o), 0, "{}", common::stderr(&o));
    let mut names: Vec<String> = tar(&["-tf", "-"], &o.stdout)
        .lines()
        .map(String::from)
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["tree/", "tree/a.txt", "tree/sub/", "tree/sub/b.txt"]
    );
    // The content of a directory (`/.`) lands in an existing destination.
    let flat = dest.join("flat");
    std::fs::create_dir(&flat).expect("mkdir flat");
    d.ok(&["cp", &format!("{ctr}:/tmp/tree/."), s(&flat)]);
    assert!(flat.join("sub/b.txt").is_file());
    // ... and becomes a destination that does not exist yet.
    d.ok(&["cp", &format!("{ctr}:/tmp/tree/."), s(&dest.join("fresh"))]);
    assert!(dest.join("fresh/sub/b.txt").is_file());
}

fn scenarios(driver: &str) {
    wharf_testutil::require_root!();
    let mut d = Daemon::start(&["-s", driver, "--live-restore"]);
    assert_eq!(d.ok(&["info", "--format", "{{.Driver}}"]), driver);
    d.import_busybox();
    let h = host_fixture();
    let out = tempfile::tempdir().expect("tempdir");

    // A running container.
    d.ok(&["run", "-d", "--name", "run1", "busybox", "sleep", "1000"]);
    round_trip(&d, "run1", h.path(), out.path(), &|p| exec_cat(&d, p));

    // `docker cp ctr:/etc/hostname -` is the container's generated hostname file.
    let o = d.docker(&["cp", "run1:/etc/hostname", "-"]);
    assert_eq!(code(&o), 0, "{}", common::stderr(&o));
    assert_eq!(
        tar(&["-xOf", "-", "hostname"], &o.stdout).trim(),
        d.ok(&["exec", "run1", "hostname"])
    );

    // Symlinks in the container resolve inside it, never on the host.
    let marker = format!("wharf-cp-escape-{}.txt", std::process::id());
    std::fs::write(h.path().join(&marker), "contained\n").expect("write marker");
    assert!(!Path::new("/etc").join(&marker).exists());
    d.ok(&["exec", "run1", "ln", "-s", "/etc", "/escape"]);
    d.ok(&[
        "exec",
        "run1",
        "ln",
        "-s",
        "../../../../../etc",
        "/tmp/relescape",
    ]);
    d.ok(&["cp", s(&h.path().join(&marker)), "run1:/escape/"]);
    d.ok(&[
        "cp",
        s(&h.path().join(&marker)),
        "run1:/tmp/relescape/again.txt",
    ]);
    assert!(
        !Path::new("/etc").join(&marker).exists(),
        "cp through a container symlink wrote to the host"
    );
    assert!(
        !Path::new("/etc/again.txt").exists(),
        "cp through a relative symlink wrote to the host"
    );
    assert_eq!(exec_cat(&d, &format!("/etc/{marker}")), "contained");
    assert_eq!(exec_cat(&d, "/etc/again.txt"), "contained");
    d.ok(&["exec", "run1", "ln", "-s", "/etc/passwd", "/pw"]);
    d.ok(&["cp", "-L", "run1:/pw", s(&out.path().join("pw"))]);
    assert_eq!(
        std::fs::read_to_string(out.path().join("pw"))
            .expect("pw")
            .trim(),
        exec_cat(&d, "/etc/passwd")
    );

    // Missing paths: docker's exit code 1 and message.
    let o = d.docker(&["cp", "run1:/nope", s(out.path())]);
    assert_eq!(code(&o), 1);
    assert!(
        common::stderr(&o).contains("Could not find the file /nope in container run1"),
        "{}",
        common::stderr(&o)
    );
    let o = d.docker(&[
        "cp",
        s(&h.path().join("hello.txt")),
        "run1:/no/such/file.txt",
    ]);
    assert_eq!(code(&o), 1);
    assert!(
        common::stderr(&o).contains("Could not find the file /no/such in container run1"),
        "{}",
        common::stderr(&o)
    );

    // Raw API edges: a missing path is a 400, a file is no extraction point.
    assert_eq!(d.raw("HEAD", "/v1.45/containers/run1/archive", b"").0, 400);
    assert_eq!(
        d.raw("HEAD", "/v1.45/containers/run1/archive?path=/nope", b"")
            .0,
        404
    );
    assert_eq!(
        d.raw("HEAD", "/v1.45/containers/nosuch/archive?path=/", b"")
            .0,
        404
    );
    let (st, body) = d.raw_with(
        "PUT",
        "/v1.45/containers/run1/archive?path=/etc/hostname",
        &[("Content-Type", "application/x-tar")],
        b"",
    );
    assert_eq!(st, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("extraction point is not a directory"));

    // noOverwriteDirNonDir (always sent by the docker CLI) refuses a file over a directory;
    // without it the file wins, as with Docker.
    let clash = tempfile::tempdir().expect("tempdir");
    std::fs::write(clash.path().join("tree"), "now a file\n").expect("write");
    let o = Command::new("tar")
        .arg("-C")
        .arg(clash.path())
        .args(["-cf", "-", "tree"])
        .output()
        .expect("tar");
    let put = |q: &str| {
        d.raw_with(
            "PUT",
            &format!("/v1.45/containers/run1/archive?path=/tmp{q}"),
            &[("Content-Type", "application/x-tar")],
            &o.stdout,
        )
    };
    let (st, body) = put("&noOverwriteDirNonDir=true");
    assert_eq!(st, 400, "{}", String::from_utf8_lossy(&body));
    assert_eq!(exec_cat(&d, "/tmp/tree/a.txt"), "a");
    let (st, body) = put("");
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(exec_cat(&d, "/tmp/tree"), "now a file");

    // Stopped containers: one that ran and exited, one never started.
    d.ok(&["run", "--name", "exited1", "busybox", "true"]);
    round_trip(&d, "exited1", h.path(), out.path(), &|p| {
        cp_cat(&d, "exited1", p)
    });
    // The whole root, into a new directory named by the destination (not run1: the docker CLI
    // refuses its planted escaping symlink).
    for (src, dest) in [("exited1:/", "rootcopy"), ("exited1:/.", "rootcopy2")] {
        d.ok(&["cp", src, s(&out.path().join(dest))]);
        assert!(
            out.path().join(dest).join("tmp/hello.txt").is_file(),
            "{src}"
        );
    }
    d.ok(&[
        "create",
        "--name",
        "created1",
        "busybox",
        "cat",
        "/tmp/hello.txt",
    ]);
    round_trip(&d, "created1", h.path(), out.path(), &|p| {
        cp_cat(&d, "created1", p)
    });
    assert_eq!(d.ok(&["start", "-a", "created1"]), "hello");

    // `-a` gives the files to the container's user; without it the archive's owner stays.
    d.ok(&[
        "create", "--name", "user1", "-u", "nobody", "busybox", "true",
    ]);
    d.ok(&["cp", "-a", s(&h.path().join("hello.txt")), "user1:/tmp/"]);
    d.ok(&["cp", s(&h.path().join("tree")), "user1:/tmp/"]);
    let o = d.docker(&["cp", "user1:/tmp", "-"]);
    assert_eq!(code(&o), 0, "{}", common::stderr(&o));
    let listing = tar(&["-tvf", "-", "--numeric-owner"], &o.stdout);
    let owner = |name: &str| {
        listing
            .lines()
            .find(|l| l.ends_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .map(String::from)
    };
    assert_eq!(
        owner("tmp/hello.txt").as_deref(),
        Some("65534/65534"),
        "{listing}"
    );
    assert_eq!(owner("tmp/tree/a.txt").as_deref(), Some("0/0"), "{listing}");

    // A read-only rootfs refuses uploads, except into a writable bind mount (served from its
    // source, as Docker does).
    let vol = tempfile::tempdir().expect("tempdir");
    let rovol = tempfile::tempdir().expect("tempdir");
    let binds = [
        format!("{}:/data", s(vol.path())),
        format!("{}:/rodata:ro", s(rovol.path())),
    ];
    d.ok(&[
        "run",
        "-d",
        "--read-only",
        "--name",
        "ro1",
        "-v",
        &binds[0],
        "-v",
        &binds[1],
        "busybox",
        "sleep",
        "1000",
    ]);
    let o = d.docker(&["cp", s(&h.path().join("hello.txt")), "ro1:/rodata/"]);
    assert_eq!(code(&o), 1);
    assert!(
        common::stderr(&o).contains("mounted volume is marked read-only"),
        "{}",
        common::stderr(&o)
    );
    assert!(!rovol.path().join("hello.txt").exists());
    let o = d.docker(&["cp", s(&h.path().join("hello.txt")), "ro1:/tmp/"]);
    assert_eq!(code(&o), 1);
    assert!(
        common::stderr(&o).contains("container rootfs is marked read-only"),
        "{}",
        common::stderr(&o)
    );
    d.ok(&["cp", s(&h.path().join("hello.txt")), "ro1:/data/"]);
    assert_eq!(
        std::fs::read_to_string(vol.path().join("hello.txt")).expect("in bind source"),
        "hello\n"
    );
    assert_eq!(cp_cat(&d, "ro1", "/data/hello.txt"), "hello");

    // After a daemon crash (live-restore) the adopted container's root is still usable, copy after copy.
    d.crash();
    d.start_again();
    for name in ["after1.txt", "after2.txt"] {
        d.ok(&[
            "cp",
            s(&h.path().join("hello.txt")),
            &format!("run1:/tmp/{name}"),
        ]);
        assert_eq!(exec_cat(&d, &format!("/tmp/{name}")), "hello");
    }
    d.ok(&["exec", "run1", "sh", "-c", "echo fresh > /tmp/fresh.txt"]);
    assert_eq!(cp_cat(&d, "run1", "/tmp/fresh.txt"), "fresh");

    // Our own CLI against the same endpoints.
    let wharf = PathBuf::from(env!("CARGO_BIN_EXE_wharfd")).with_file_name("wharf");
    assert!(
        wharf.exists(),
        "{} missing: run `cargo build --workspace --bins` first",
        wharf.display()
    );
    {
        let run = |args: &[&str]| {
            let o = Command::new(&wharf)
                .args(args)
                .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
                .output()
                .expect("run wharf");
            assert!(o.status.success(), "wharf {args:?}: {}", common::stderr(&o));
            o.stdout
        };
        run(&["cp", s(&h.path().join("tree")), "run1:/root/"]);
        assert_eq!(exec_cat(&d, "/root/tree/a.txt"), "a");
        run(&["cp", s(&h.path().join("hello.txt")), "run1:/root/wharf.txt"]);
        assert_eq!(exec_cat(&d, "/root/wharf.txt"), "hello");
        assert_eq!(
            tar(
                &["-xOf", "-", "hostname"],
                &run(&["cp", "run1:/etc/hostname", "-"])
            )
            .trim(),
            d.ok(&["exec", "run1", "hostname"])
        );
        let dest = out.path().join("wharf-out");
        std::fs::create_dir(&dest).expect("mkdir");
        run(&["cp", "run1:/root/tree", s(&dest)]);
        assert!(dest.join("tree/a.txt").is_file());
        run(&["cp", "run1:/root/tree", s(&dest.join("renamed"))]);
        assert!(dest.join("renamed/sub/b.txt").is_file());
        run(&["cp", "run1:/root/wharf.txt", s(&dest.join("w.txt"))]);
        assert_eq!(
            std::fs::read_to_string(dest.join("w.txt")).expect("w.txt"),
            "hello\n"
        );
        run(&["cp", "exited1:/", s(&dest.join("root"))]);
        assert!(dest.join("root/tmp/hello.txt").is_file());
    }
}

#[test]
fn cp_vfs() {
    scenarios("vfs");
}

#[test]
fn cp_overlay2() {
    scenarios("overlay2");
}
