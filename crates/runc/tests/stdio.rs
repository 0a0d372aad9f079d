//! How the OCI runtime-tools validation suite and containerd drive a runtime: every verb with
//! the caller's stdout and stderr as pipes. Each command must return, and once it has, no
//! runtime process may hold the pipes: only the container process, which inherits create's
//! stdio (as under runc), so reading them to end-of-file waits for nobody else.

mod common;

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;

/// Guard against hanging the suite when a pipe is never closed; not a speed requirement.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// Runs `f` on a thread and fails, instead of hanging, when it does not finish.
fn bounded<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(HANG_GUARD)
        .unwrap_or_else(|_| panic!("{what}: did not return, or something kept its pipes open"))
}

fn spawn_piped(mut cmd: Command, what: &str) -> Child {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"))
}

/// Runs `cmd` with piped stdout and stderr, reading both to end-of-file, and checks it worked.
fn run_piped(cmd: Command, what: &str) -> Output {
    let child = spawn_piped(cmd, what);
    let out =
        bounded(what, move || child.wait_with_output()).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(out.status.success(), "{what}: {}", stderr(&out));
    out
}

/// Reads a pipe to end-of-file.
fn drain(what: &str, mut pipe: impl Read + Send + 'static) -> String {
    bounded(what, move || {
        let mut s = String::new();
        pipe.read_to_string(&mut s).map(|_| s)
    })
    .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Pids of the processes (other than this test) holding the pipe with inode `ino`.
fn holders(ino: u64) -> Vec<i32> {
    let me = std::process::id().to_string();
    let target = format!("pipe:[{ino}]");
    let mut pids: Vec<i32> = std::fs::read_dir("/proc")
        .expect("read /proc")
        .flatten()
        .filter(|p| p.file_name() != me.as_str())
        .filter_map(|p| {
            let pid = p.file_name().to_str()?.parse().ok()?;
            let fds = std::fs::read_dir(p.path().join("fd")).ok()?;
            let holds = fds.flatten().any(|fd| {
                std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == target.as_str())
            });
            holds.then_some(pid)
        })
        .collect();
    pids.sort_unstable();
    pids
}

fn inode(f: &impl std::os::fd::AsFd) -> u64 {
    File::from(f.as_fd().try_clone_to_owned().expect("dup"))
        .metadata()
        .expect("fstat pipe")
        .ino()
}

/// A started container whose process wrote to create's stdout and stderr and then let go of
/// them. Returns init's pid; asserts nothing but init held create's pipes meanwhile.
fn create_and_start(b: &mut Bundle) -> i32 {
    b.script("echo out; echo err >&2; exec >/dev/null 2>&1; sleep 1000");
    b.write();
    let pid_file = b.dir.path().join("pid");
    let mut create = b.cmd();
    create
        .arg("create")
        .arg("--bundle")
        .arg(b.bundle())
        .arg("--pid-file")
        .arg(&pid_file)
        .arg(&b.id);
    let mut child = spawn_piped(create, "create");
    let (out, err) = (
        child.stdout.take().expect("stdout"),
        child.stderr.take().expect("stderr"),
    );
    let status = bounded("create", move || child.wait()).expect("wait create");
    assert!(
        status.success(),
        "create failed: {}",
        drain("create stderr", err)
    );
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    assert_eq!(
        holders(inode(&out)),
        vec![pid],
        "only init may hold create's stdout"
    );
    assert_eq!(
        holders(inode(&err)),
        vec![pid],
        "only init may hold create's stderr"
    );
    let start = run_piped(b.verb_cmd("start", &[]), "start");
    assert_eq!(stdout(&start), "");
    assert_eq!(
        drain("create stdout", out),
        "out\n",
        "the container writes to create's stdout"
    );
    assert_eq!(drain("create stderr", err), "err\n");
    pid
}

fn drive(runtime: &Path) {
    let mut b = Bundle::with_runtime("pipes", runtime);
    let pid = create_and_start(&mut b);
    let state = run_piped(b.verb_cmd("state", &[]), "state");
    let st: serde_json::Value = serde_json::from_slice(&state.stdout).expect("state json");
    assert_eq!(
        (st["status"].as_str(), st["pid"].as_i64()),
        (Some("running"), Some(i64::from(pid)))
    );
    let mut kill = b.verb_cmd("kill", &[]);
    kill.arg("KILL");
    run_piped(kill, "kill");
    b.wait_status("stopped");
    run_piped(b.verb_cmd("delete", &[]), "delete");
    assert!(!b.state_dir().exists());

    let mut b = Bundle::with_runtime("pipesforce", runtime);
    create_and_start(&mut b);
    run_piped(b.verb_cmd("delete", &["--force"]), "delete --force");
    assert!(!b.state_dir().exists());
    assert!(!cgroup_left(&b.id));
}

#[test]
fn verbs_with_piped_stdio_return_and_release_the_pipes() {
    drive(Path::new(WHARF));
}

#[test]
fn runc_behaves_the_same_with_piped_stdio() {
    let runc = Path::new("/usr/sbin/runc");
    assert!(runc.exists(), "runc is required for the comparison tests");
    drive(runc);
}
