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
        ids.push(d.ok(&["run", "-d", "--name", &name, "busybox", "sh", "-c", "while true; do echo tick; sleep 0.2; done"]));
    }
    d.crash();
    d.start_again();
    let running = d.ok(&["ps", "--format", "{{.ID}}"]);
    assert_eq!(running.lines().count(), 20, "{running}");
    let before = d.ok(&["logs", "lr0"]).lines().count();
    wait_for("logs to continue", || d.ok(&["logs", "lr0"]).lines().count() > before);
    d.ok(&["stop", "-t", "1", "lr0"]);
    assert_eq!(d.ok(&["inspect", "-f", "{{.State.Status}}", "lr0"]), "exited");
    assert_eq!(ids.len(), 20);
}

#[test]
fn without_live_restore_policies_apply_after_restart() {
    wharf_testutil::require_root!();
    let mut d = Daemon::start(&[]);
    d.import_busybox();
    d.ok(&["run", "-d", "--name", "always", "--restart", "always", "busybox", "sleep", "600"]);
    d.ok(&["run", "-d", "--name", "never", "busybox", "sleep", "600"]);
    d.restart();
    wait_for("always to run again", || d.ok(&["inspect", "-f", "{{.State.Status}}", "always"]) == "running");
    assert_eq!(d.ok(&["inspect", "-f", "{{.State.Status}}", "never"]), "exited");
}
