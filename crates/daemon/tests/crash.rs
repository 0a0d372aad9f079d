//! Crash consistency (issue 14): one regression test per failure a fault probe found. Crashes
//! between two steps are placed with `WHARFD_CRASH_AT` (wharfd aborts there, as `kill -9`
//! would leave it); shims are killed with SIGKILL for real.

mod common;

use std::process::Command;

use common::reality::{self, alive, assert_nothing_left, cgroup_dirs_of, cgroup_procs};
use common::{wait_for, Daemon};

fn crash_at(d: &mut Daemon, point: &str) {
    d.env = vec![("WHARFD_CRASH_AT".into(), point.into())];
    d.crash();
    d.start_again();
    d.env.clear();
}

fn status(d: &Daemon, name: &str) -> String {
    d.ok(&["inspect", "-f", "{{.State.Status}}", name])
}

/// A daemon killed right after the shim started init, before the record said Running: the
/// API must not show "created" over a live process, and start/rm must work on it.
#[test]
fn crash_during_start_leaves_no_hidden_process() {
    wharf_testutil::require_root!();
    let mut d = Daemon::start(&[]);
    d.import_busybox();
    crash_at(&mut d, "start:after-shim-start");
    let o = d.docker(&["run", "-d", "--name", "cc", "busybox", "sleep", "600"]);
    assert!(!o.status.success(), "the daemon should have crashed");
    d.crash();
    d.start_again();
    let id = d.ok(&["inspect", "-f", "{{.Id}}", "cc"]);
    let st = status(&d, "cc");
    if st != "running" {
        assert!(
            cgroup_procs(&d, Some(&id)).is_empty(),
            "{st} container has processes {:?}\n{}",
            cgroup_procs(&d, Some(&id)),
            d.log()
        );
        assert!(reality::runtime_state(&d).is_empty(), "{}", d.log());
    }
    d.ok(&["rm", "-f", "cc"]);
    assert_nothing_left(&d, "after rm -f");
    // And a container left "created" by the crash can be started normally.
    d.ok(&["create", "--name", "cc", "busybox", "sleep", "600"]);
    d.ok(&["start", "cc"]);
    assert_eq!(status(&d, "cc"), "running");
}

/// A daemon killed during `rm` after the layer was deleted: the removal must finish (at start
/// or on the next `rm -f`), never leave a "Dead" record that answers 404, and free the name.
#[test]
fn crash_during_rm_finishes_the_removal() {
    wharf_testutil::require_root!();
    let mut d = Daemon::start(&[]);
    d.import_busybox();
    for point in ["remove:after-layer", "remove:after-intent"] {
        // A short stop timeout: the restart below stops it (no live-restore), and sleep as
        // pid 1 ignores SIGTERM.
        d.ok(&[
            "run",
            "-d",
            "--name",
            "rr",
            "--stop-timeout",
            "1",
            "busybox",
            "sleep",
            "600",
        ]);
        crash_at(&mut d, point);
        let o = d.docker(&["rm", "-f", "rr"]);
        assert!(
            !o.status.success(),
            "{point}: the daemon should have crashed"
        );
        d.crash();
        d.start_again();
        let (st, body) = d.raw("DELETE", "/containers/rr?force=1", b"");
        assert!(
            st == 204 || st == 404,
            "{point}: {st} {}",
            String::from_utf8_lossy(&body)
        );
        let (st, _) = d.raw("GET", "/containers/rr/json", b"");
        assert_eq!(st, 404, "{point}: record still there\n{}", d.log());
        assert_nothing_left(&d, point);
        // The name is free again.
        d.ok(&["create", "--name", "rr", "busybox", "true"]);
        d.ok(&["rm", "rr"]);
    }
}

/// A record directory holding only the temp file of an interrupted first write is removed
/// at start instead of being reported as unreadable forever.
#[test]
fn half_written_records_are_cleaned_at_start() {
    wharf_testutil::require_root!();
    let mut d = Daemon::start(&[]);
    let dir = d.data_root.join("containers").join("a".repeat(64));
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join(".config.v2.json.tmp"), b"{\"Id\":").expect("tmp");
    d.crash();
    d.start_again();
    assert!(!dir.exists(), "{}", d.log());
    assert!(
        !d.log().contains("unreadable container record"),
        "{}",
        d.log()
    );
}

/// A killed shim must take its container with it: no process left, runtime state gone, the
/// exit recorded, `start` and `--restart always` working, nothing left after `rm`.
#[test]
fn killed_shim_does_not_leave_its_container_running() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&[]);
    d.import_busybox();
    let plain = d.ok(&["run", "-d", "--name", "plain", "busybox", "sleep", "600"]);
    let always = d.ok(&[
        "run",
        "-d",
        "--name",
        "always",
        "--restart",
        "always",
        "busybox",
        "sleep",
        "600",
    ]);
    for id in [&plain, &always] {
        let init: i32 = d
            .ok(&["inspect", "-f", "{{.State.Pid}}", id])
            .parse()
            .expect("pid");
        let shim = reality::shim_pid(&d, id).expect("shim.pid");
        let t = std::time::Instant::now();
        Command::new("kill")
            .args(["-KILL", &shim.to_string()])
            .status()
            .expect("kill");
        wait_for("init to be killed", || !alive(init));
        // The figure behind the choice of a daemon-side cgroup kill (see reconcile.rs).
        eprintln!("init died {:?} after its shim was killed", t.elapsed());
        if id == &plain {
            wait_for("the exit to be recorded", || {
                status(&d, "plain") == "exited"
            });
            assert!(cgroup_procs(&d, Some(id)).is_empty(), "{}", d.log());
            d.ok(&["start", "plain"]);
            assert_eq!(status(&d, "plain"), "running");
        } else {
            wait_for("the restart policy to bring it back", || {
                status(&d, "always") == "running"
                    && d.ok(&["inspect", "-f", "{{.State.Pid}}", "always"]) != init.to_string()
            });
        }
    }
    d.ok(&["rm", "-f", "plain", "always"]);
    assert_nothing_left(&d, "after rm");
    for id in [&plain, &always] {
        assert!(
            cgroup_dirs_of(&d, id).is_empty(),
            "{:?}",
            cgroup_dirs_of(&d, id)
        );
    }
}

/// An exec that cannot start reports Docker's exit code (127 not found, 126 otherwise) and
/// the runtime's message, through the docker CLI, `wharf`, the raw API and docker-py.
#[test]
fn exec_that_cannot_start_reports_dockers_exit_code() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&[]);
    d.import_busybox();
    d.ok(&["run", "-d", "--name", "ee", "busybox", "sleep", "600"]);
    let wharf = std::path::PathBuf::from(env!("CARGO_BIN_EXE_wharfd")).with_file_name("wharf");
    let cases: [(&[&str], i32); 3] = [
        (&["exec", "ee", "/nonexistent"], 127),
        (&["exec", "-w", "/nonexistent", "ee", "true"], 126),
        (&["exec", "ee", "/etc/passwd"], 126),
    ];
    for (args, code) in cases {
        let docker = d.docker(args);
        let wharf = Command::new(&wharf)
            .args(args)
            .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
            .output()
            .expect("run wharf");
        for (who, o) in [("docker", docker), ("wharf", wharf)] {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            assert_eq!(o.status.code(), Some(code), "{who} {args:?}: {text}");
            assert!(
                text.starts_with("OCI runtime exec failed: "),
                "{who} {args:?}: {text}"
            );
        }
    }
    // docker-py, high level and the exec's inspect (`/exec/ID/json` ExitCode).
    let py = "import docker\ncl = docker.from_env()\nr = cl.containers.get('ee').exec_run('/nonexistent')\nprint(r.exit_code)\nprint(r.output.decode().strip())\nx = cl.api.exec_create('ee', ['true'], workdir='/nonexistent')\ncl.api.exec_start(x['Id'])\ni = cl.api.exec_inspect(x['Id'])\nprint(i['ExitCode'], i['Running'])\n";
    let o = Command::new("timeout")
        .args(["-s", "KILL", "60", "python3", "-c", py])
        .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
        .output()
        .expect("python3 with docker-py (hack/deps.sh)");
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(text.starts_with("127\nOCI runtime exec failed: "), "{text}");
    assert!(text.ends_with("\n126 False\n"), "{text}");
}
