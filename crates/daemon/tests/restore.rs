//! Daemon restarts: live-restore keeps containers running across `kill -9` of wharfd;
//! without it, shutdown stops containers and restart policies bring them back.

mod common;

use common::{wait_for, Daemon};

#[test]
fn live_restore_survives_kill_9() {
    wharf_testutil::require_root!();
    let mut d = Daemon::start(&["--live-restore"]);
    d.import_busybox();
    let mut ids = Vec::new();
    for i in 0..20 {
        let name = format!("lr{i}");
        ids.push(d.ok(&[
            "run",
            "-d",
            "--name",
            &name,
            "busybox",
            "sh",
            "-c",
            "while true; do echo tick; sleep 0.2; done",
        ]));
    }
    d.crash();
    d.start_again();
    let running = d.ok(&["ps", "--format", "{{.ID}}"]);
    assert_eq!(running.lines().count(), 20, "{running}");
    let before = d.ok(&["logs", "lr0"]).lines().count();
    wait_for("logs to continue", || {
        d.ok(&["logs", "lr0"]).lines().count() > before
    });
    d.ok(&["stop", "-t", "1", "lr0"]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "lr0"]),
        "exited"
    );
    assert_eq!(ids.len(), 20);
}

#[test]
fn without_live_restore_policies_apply_after_restart() {
    wharf_testutil::require_root!();
    let mut d = Daemon::start(&[]);
    d.import_busybox();
    d.ok(&[
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
    d.ok(&["run", "-d", "--name", "never", "busybox", "sleep", "600"]);
    d.restart();
    wait_for("always to run again", || {
        d.ok(&["inspect", "-f", "{{.State.Status}}", "always"]) == "running"
    });
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "never"]),
        "exited"
    );
}

#[test]
fn unless_stopped_comes_back_unless_the_user_stopped_it() {
    wharf_testutil::require_root!();
    let mut d = Daemon::start(&[]);
    d.import_busybox();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "us-running",
        "--restart",
        "unless-stopped",
        "busybox",
        "sleep",
        "600",
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "us-stopped",
        "--restart",
        "unless-stopped",
        "busybox",
        "sleep",
        "600",
    ]);
    d.ok(&["stop", "-t", "1", "us-stopped"]);
    d.restart();
    wait_for("unless-stopped to run again", || {
        d.ok(&["inspect", "-f", "{{.State.Status}}", "us-running"]) == "running"
    });
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "us-stopped"]),
        "exited"
    );
}

/// Whether a process other than this one mentions `needle` in its command line.
fn process_mentions(needle: &str) -> bool {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name() != me.as_str())
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .any(|c| String::from_utf8_lossy(&c).contains(needle))
}

#[test]
fn containers_that_exit_while_the_daemon_is_down_are_seen_at_start() {
    wharf_testutil::require_root!();
    let mut d = Daemon::start(&["--live-restore"]);
    d.import_busybox();
    let always = d.ok(&[
        "run",
        "-d",
        "--name",
        "down-always",
        "--restart",
        "always",
        "busybox",
        "sleep",
        "600",
    ]);
    let never = d.ok(&[
        "run",
        "-d",
        "--name",
        "down-never",
        "busybox",
        "sleep",
        "600",
    ]);
    let pid = |name: &str| {
        d.ok(&["inspect", "-f", "{{.State.Pid}}", name])
            .parse::<i32>()
            .expect("pid")
    };
    let pids = [pid("down-always"), pid("down-never")];
    d.crash();
    for p in pids {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill container");
    }
    // Let the shims record the exits and go away: the daemon must then read what they left.
    for id in [&always, &never] {
        let dir = d.exec_root.join("containers").join(id);
        wait_for("the shim to exit", || {
            !process_mentions(&dir.display().to_string())
        });
    }
    d.start_again();
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            "down-never"
        ]),
        "exited 137"
    );
    wait_for("the always container to restart", || {
        d.ok(&["inspect", "-f", "{{.State.Status}}", "down-always"]) == "running"
    });
}

#[test]
fn without_live_restore_a_crash_stops_containers_then_policies_apply() {
    wharf_testutil::require_root!();
    let mut d = Daemon::start(&[]);
    d.import_busybox();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "crash-always",
        "--restart",
        "always",
        "busybox",
        "sleep",
        "600",
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "crash-never",
        "busybox",
        "sleep",
        "600",
    ]);
    let old_pid = d.ok(&["inspect", "-f", "{{.State.Pid}}", "crash-always"]);
    d.crash();
    d.start_again();
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "crash-never"]),
        "exited"
    );
    wait_for("the always container to run in a new process", || {
        let now = d.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.Pid}}",
            "crash-always",
        ]);
        now.starts_with("running ") && !now.ends_with(&format!(" {old_pid}"))
    });
}
