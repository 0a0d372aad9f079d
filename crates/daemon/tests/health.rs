//! Healthchecks end to end with the docker CLI: probes run as execs in the container, drive
//! State.Health, the `docker ps` status and filter, and `health_status` events.

mod common;

use common::{wait_for, Daemon};

fn health(d: &Daemon, name: &str) -> serde_json::Value {
    serde_json::from_str(&d.ok(&["inspect", "-f", "{{json .State.Health}}", name]))
        .expect("health json")
}

fn status(d: &Daemon, name: &str) -> String {
    health(d, name)["Status"].as_str().unwrap_or("").to_string()
}

fn names(d: &Daemon, filter: &str) -> Vec<String> {
    let mut v: Vec<String> = d
        .ok(&["ps", "--filter", filter, "--format", "{{.Names}}"])
        .lines()
        .map(String::from)
        .collect();
    v.sort();
    v
}

#[test]
fn probes_drive_health_ps_and_events() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&[]);
    d.import_busybox();
    let since = d.ok(&["system", "info", "--format", "{{.SystemTime}}"]);
    let run = |name: &str, health: &[&str]| {
        let mut args = vec!["run", "-d", "--name", name, "--health-interval", "1s"];
        args.extend_from_slice(health);
        args.extend(["busybox", "sleep", "600"]);
        d.ok(&args);
    };
    run("good", &["--health-cmd", "echo alive"]);
    run(
        "bad",
        &[
            "--health-cmd",
            "echo broken; false",
            "--health-retries",
            "2",
        ],
    );
    run(
        "slow",
        &[
            "--health-cmd",
            "sleep 30",
            "--health-timeout",
            "1s",
            "--health-retries",
            "1",
        ],
    );
    d.ok(&["run", "-d", "--name", "plain", "busybox", "sleep", "600"]);

    wait_for("good to become healthy", || status(&d, "good") == "healthy");
    let h = health(&d, "good");
    assert_eq!(h["FailingStreak"], 0, "{h}");
    assert_eq!(h["Log"][0]["ExitCode"], 0, "{h}");
    assert_eq!(h["Log"][0]["Output"], "alive\n", "{h}");

    wait_for("bad to become unhealthy", || {
        status(&d, "bad") == "unhealthy"
    });
    let h = health(&d, "bad");
    assert!(h["FailingStreak"].as_i64().unwrap_or(0) >= 2, "{h}");
    let log = h["Log"].as_array().cloned().unwrap_or_default();
    assert!(log.len() >= 2 && log.len() <= 5, "{h}");
    assert!(
        log.iter()
            .all(|e| e["ExitCode"] == 1 && e["Output"] == "broken\n"),
        "{h}"
    );

    wait_for("slow to become unhealthy", || {
        status(&d, "slow") == "unhealthy"
    });
    let h = health(&d, "slow");
    assert_eq!(h["Log"][0]["ExitCode"], -1, "{h}");
    assert_eq!(
        h["Log"][0]["Output"], "Health check exceeded timeout (1s)",
        "{h}"
    );

    assert_eq!(
        d.ok(&["inspect", "-f", "{{json .State.Health}}", "plain"]),
        "null"
    );
    assert_eq!(names(&d, "health=healthy"), ["good"]);
    assert_eq!(names(&d, "health=unhealthy"), ["bad", "slow"]);
    assert_eq!(names(&d, "health=none"), ["plain"]);
    let st = d.ok(&["ps", "--filter", "name=good", "--format", "{{.Status}}"]);
    assert!(st.starts_with("Up ") && st.ends_with(" (healthy)"), "{st}");

    let until = d.ok(&["system", "info", "--format", "{{.SystemTime}}"]);
    let events = d.ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "event=health_status",
        "--format",
        "{{.Actor.Attributes.name}} {{.Action}}",
    ]);
    for want in [
        "good health_status: healthy",
        "bad health_status: unhealthy",
        "slow health_status: unhealthy",
    ] {
        assert!(
            events.lines().any(|l| l == want),
            "missing {want:?} in:\n{events}"
        );
    }
    assert!(!events.contains("plain"), "{events}");
    let body =
        br#"{"Image":"busybox","Cmd":["true"],"Healthcheck":{"Test":["CMD","true"],"Interval":5}}"#;
    let (code, resp) = d.raw("POST", "/v1.45/containers/create", body);
    assert_eq!(code, 400, "{}", String::from_utf8_lossy(&resp));
    assert_eq!(
        String::from_utf8_lossy(&resp).trim(),
        r#"{"message":"Interval in Healthcheck cannot be less than 1ms"}"#
    );
    let execs = d.ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "container=good",
        "--format",
        "{{.Action}}",
    ]);
    assert!(
        execs
            .lines()
            .any(|l| l == "exec_start: /bin/sh -c echo alive"),
        "{execs}"
    );
}

#[test]
fn health_resets_on_start_and_persists_across_daemon_restart() {
    wharf_testutil::require_root!();
    let mut d = Daemon::start(&["--live-restore"]);
    d.import_busybox();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "hc",
        "--health-cmd",
        "true",
        "--health-interval",
        "1s",
        "busybox",
        "sleep",
        "600",
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "off",
        "--no-healthcheck",
        "busybox",
        "sleep",
        "600",
    ]);
    let since = d.ok(&["system", "info", "--format", "{{.SystemTime}}"]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "sick",
        "--health-cmd",
        "false",
        "--health-interval",
        "1s",
        "--health-retries",
        "1",
        "busybox",
        "sleep",
        "600",
    ]);
    wait_for("sick to become unhealthy", || {
        status(&d, "sick") == "unhealthy"
    });
    // A start resets the status to starting: the container turns unhealthy a second time.
    d.ok(&["restart", "-t", "1", "sick"]);
    wait_for("a second unhealthy event", || {
        let until = d.ok(&["system", "info", "--format", "{{.SystemTime}}"]);
        let ev = d.ok(&[
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "--filter",
            "container=sick",
            "--filter",
            "event=health_status",
            "--format",
            "{{.Action}}",
        ]);
        ev.lines()
            .filter(|l| *l == "health_status: unhealthy")
            .count()
            == 2
    });
    wait_for("hc to become healthy", || status(&d, "hc") == "healthy");

    // Adopted after a crash: the monitor runs again.
    d.crash();
    d.start_again();
    assert!(
        !health(&d, "hc")["Log"].as_array().is_none_or(Vec::is_empty),
        "log persisted"
    );
    wait_for("hc healthy after adoption", || {
        status(&d, "hc") == "healthy"
    });

    // Probes stop while paused and resume after unpause.
    let last_end = |d: &Daemon| {
        health(d, "hc")["Log"]
            .as_array()
            .and_then(|l| l.last())
            .map(|e| e["End"].clone())
    };
    d.ok(&["pause", "hc"]);
    let before = last_end(&d);
    d.ok(&["unpause", "hc"]);
    wait_for("a probe after unpause", || last_end(&d) != before);

    // Stopped: the last state stays visible, also after a daemon restart.
    d.ok(&["stop", "-t", "1", "hc"]);
    d.restart();
    let h = health(&d, "hc");
    assert_eq!(h["Status"], "healthy", "{h}");
    assert!(!h["Log"].as_array().is_none_or(Vec::is_empty), "{h}");
    assert_eq!(
        d.ok(&["inspect", "-f", "{{json .State.Health}}", "off"]),
        "null"
    );
    assert_eq!(names(&d, "health=none"), ["off"]);
}
