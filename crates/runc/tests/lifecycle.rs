//! create/start/state/kill/delete/exec/list/pause, hooks, and bad bundles, driven through the
//! binary the way containerd and the OCI validation suite drive runc.

mod common;

use common::*;
use serde_json::json;

#[test]
fn run_prints_and_exits_with_process_status() {
    let mut b = Bundle::new("run");
    b.script("echo ok; exit 3");
    let out = b.run();
    assert_eq!(stdout(&out), "ok\n");
    assert_eq!(out.status.code(), Some(3), "stderr: {}", stderr(&out));
    assert!(
        !b.state_dir().exists(),
        "run deletes the container afterwards"
    );
    assert!(!cgroup_left(&b.id));
}

#[test]
fn run_reports_signal_death_as_128_plus_signal() {
    let mut b = Bundle::new("sig");
    // pid 1 ignores signals from inside its namespace; a child shell kills itself instead and
    // the container's init returns that status.
    b.script("sh -c 'kill -9 $$'; exit $?");
    let out = b.run();
    assert_eq!(out.status.code(), Some(137), "stderr: {}", stderr(&out));
}

#[test]
fn lifecycle_create_start_kill_delete() {
    let mut b = Bundle::new("life");
    b.script("sleep 1000");
    let pidfile = b.dir.path().join("pid");
    let out = b.create_with(&["--pid-file", pidfile.to_str().expect("utf8")]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    assert_eq!(b.status(), "created");
    let st: serde_json::Value = serde_json::from_slice(&b.verb("state", &[]).stdout).expect("json");
    let pid: i64 = std::fs::read_to_string(&pidfile)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    assert_eq!(st["pid"], json!(pid));
    assert_eq!(st["id"], json!(b.id));
    assert_eq!(st["bundle"], json!(b.bundle()));
    // A second create with the same id is refused.
    assert!(!b.create().status.success());

    let out = b.verb("start", &[]);
    assert!(out.status.success(), "start: {}", stderr(&out));
    assert_eq!(b.status(), "running");
    assert!(
        !b.verb("start", &[]).status.success(),
        "start twice must fail"
    );
    assert!(
        !b.verb("delete", &[]).status.success(),
        "delete of a running container needs --force"
    );

    let list = b
        .cmd()
        .args(["list", "--format", "json"])
        .output()
        .expect("list");
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).expect("list json");
    assert_eq!(v[0]["id"], json!(b.id));
    let quiet = b.cmd().args(["list", "-q"]).output().expect("list");
    assert_eq!(stdout(&quiet).trim(), b.id);

    let out = b
        .cmd()
        .arg("kill")
        .arg(&b.id)
        .arg("KILL")
        .output()
        .expect("kill");
    assert!(out.status.success(), "kill: {}", stderr(&out));
    b.wait_status("stopped");
    let out = b.verb("delete", &[]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    assert!(!b.state_dir().exists());
    assert!(!cgroup_left(&b.id));
    assert!(
        !b.verb("state", &[]).status.success(),
        "state of a deleted container fails"
    );
}

#[test]
fn kill_accepts_numbers_and_names() {
    let mut b = Bundle::new("killnum");
    // pid 1 only receives signals it handles: wait until the trap is installed.
    b.config["root"]["readonly"] = json!(false);
    b.script("trap 'exit 42' TERM; touch /tmp/ready; while true; do sleep 0.1; done");
    assert!(b.create().status.success());
    assert!(b.verb("start", &[]).status.success());
    let ready = b.rootfs().join("tmp/ready");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !ready.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "container never got ready"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = b
        .cmd()
        .arg("kill")
        .arg(&b.id)
        .arg("15")
        .output()
        .expect("kill");
    assert!(out.status.success(), "kill: {}", stderr(&out));
    b.wait_status("stopped");
    let bad = b
        .cmd()
        .arg("kill")
        .arg(&b.id)
        .arg("SIGNOPE")
        .output()
        .expect("kill");
    assert!(!bad.status.success());
}

#[test]
fn delete_force_of_created_and_stopped_containers() {
    let mut b = Bundle::new("delcreated");
    b.script("true");
    assert!(b.create().status.success());
    // A created container can be deleted without --force (as runc), killing its init.
    let out = b.verb("delete", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!b.state_dir().exists());
    assert!(!cgroup_left(&b.id));
    // --force of a missing container is not an error.
    assert!(b.verb("delete", &["--force"]).status.success());
}

#[test]
fn exec_joins_the_running_container() {
    let mut b = Bundle::new("exec");
    b.config["hostname"] = json!("exec-host");
    b.script("sleep 1000");
    assert!(b.create().status.success());
    assert!(b.verb("start", &[]).status.success());
    let out = b
        .cmd()
        .args([
            "exec",
            &b.id,
            "sh",
            "-c",
            "hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo; exit 7",
        ])
        .output()
        .expect("exec");
    assert_eq!(out.status.code(), Some(7), "stderr: {}", stderr(&out));
    let s = stdout(&out);
    assert!(s.contains("exec-host"), "{s}");
    assert!(
        s.contains("sleep 1000"),
        "exec sees the container's pid 1: {s}"
    );
    let out = b
        .cmd()
        .args(["exec", "--user", "65534:65534", &b.id, "id", "-u"])
        .output()
        .expect("exec");
    assert_eq!(stdout(&out).trim(), "65534");
    let missing = b
        .cmd()
        .args(["exec", &b.id, "no-such-binary"])
        .output()
        .expect("exec");
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("no-such-binary"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn pause_and_resume_freeze_the_processes() {
    let mut b = Bundle::new("pause");
    b.script("sleep 1000");
    assert!(b.create().status.success());
    assert!(b.verb("start", &[]).status.success());
    let st: serde_json::Value = serde_json::from_slice(&b.verb("state", &[]).stdout).expect("json");
    let pid = st["pid"].as_i64().expect("pid");
    assert!(b.verb("pause", &[]).status.success());
    assert_eq!(b.status(), "paused");
    let freezer = std::fs::read_to_string(format!("/sys/fs/cgroup/freezer/{}/freezer.state", b.id))
        .or_else(|_| {
            std::fs::read_to_string(format!("/sys/fs/cgroup/unified/{}/cgroup.freeze", b.id))
        })
        .expect("freezer state");
    assert!(
        freezer.trim() == "FROZEN" || freezer.trim() == "1",
        "{freezer}"
    );
    let proc_state = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let state = status_field(&proc_state, "State").expect("State");
    assert!(
        !state.starts_with('R'),
        "a frozen task does not run: {state}"
    );
    assert!(
        !b.verb("pause", &[]).status.success(),
        "pausing twice is refused"
    );
    assert!(b.verb("resume", &[]).status.success());
    assert_eq!(b.status(), "running");
    let out = b
        .cmd()
        .args(["exec", &b.id, "true"])
        .output()
        .expect("exec");
    assert!(
        out.status.success(),
        "resumed container accepts exec: {}",
        stderr(&out)
    );
    // Paused containers can be force-deleted.
    assert!(b.verb("pause", &[]).status.success());
    assert!(b.verb("delete", &["--force"]).status.success());
    assert!(!cgroup_left(&b.id));
}

#[test]
fn hooks_run_with_state_on_stdin() {
    let mut b = Bundle::new("hooks");
    let out = b.dir.path().join("hooks");
    std::fs::create_dir(&out).expect("mkdir");
    let hook = |name: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {}/{name}", out.display())]});
    b.config["hooks"] = json!({
        "prestart": [hook("prestart")],
        "createRuntime": [hook("createRuntime")],
        "poststart": [hook("poststart")],
        "poststop": [hook("poststop")]
    });
    b.script("true");
    let run = b.run();
    assert!(run.status.success(), "{}", stderr(&run));
    for name in ["prestart", "createRuntime", "poststart", "poststop"] {
        let data =
            std::fs::read(out.join(name)).unwrap_or_else(|_| panic!("{name} hook did not run"));
        let st: serde_json::Value = serde_json::from_slice(&data).expect("state json");
        assert_eq!(st["id"], json!(b.id), "{name}");
    }
}

#[test]
fn failing_prestart_hook_fails_create_and_cleans_up() {
    let mut b = Bundle::new("badhook");
    b.config["hooks"] = json!({"prestart": [{"path": "/bin/false"}]});
    b.script("true");
    let out = b.create();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("prestart"), "{}", stderr(&out));
    assert!(!b.state_dir().exists());
    assert!(!cgroup_left(&b.id));
}

#[test]
fn container_hooks_run_inside_the_container_namespaces() {
    let report = hook_namespace_report(std::path::Path::new(WHARF));
    assert_eq!(
        report,
        "createRuntime: ns=host hostname=false status=\"creating\" pid=host\n\
         createContainer: ns=container hostname=false status=\"creating\" pid=1\n\
         startContainer: ns=container hostname=true status=\"created\" pid=1\n"
    );
}

#[test]
fn failing_create_container_hook_fails_create_and_cleans_up() {
    let mut b = Bundle::new("badcchook");
    b.config["hooks"] = json!({"createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 3"]}]});
    b.script("true");
    let out = b.create();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("createContainer") && err.contains("nope"),
        "{err}"
    );
    assert!(!b.state_dir().exists());
    assert!(!cgroup_left(&b.id));
    assert!(!mount_left(&b.rootfs().display().to_string()));
}

#[test]
fn failing_start_container_hook_fails_start_and_stops_the_container() {
    let mut b = Bundle::new("badschook");
    b.config["hooks"] = json!({"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 3"]}]});
    b.script("touch /tmp/ran; sleep 1000");
    b.config["root"]["readonly"] = json!(false);
    assert!(b.create().status.success());
    let out = b.verb("start", &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("startContainer") && err.contains("nope"),
        "{err}"
    );
    assert_eq!(b.status(), "stopped");
    assert!(
        !b.rootfs().join("tmp/ran").exists(),
        "the process must not run"
    );
    let out = b.verb("delete", &[]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    assert!(!cgroup_left(&b.id));
}

/// Each bad bundle fails with exactly one error line and leaves nothing behind.
fn assert_clean_failure(b: &Bundle, clue: &str) {
    let out = b.create();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "one error line: {err}");
    assert!(err.contains(clue), "error mentions {clue}: {err}");
    assert!(!b.state_dir().exists(), "state dir left behind");
    assert!(!cgroup_left(&b.id), "cgroup left behind");
    assert!(
        !mount_left(&b.rootfs().display().to_string()),
        "mount left behind"
    );
}

#[test]
fn bad_bundles_fail_cleanly() {
    let b = Bundle::new("norootfs");
    std::fs::remove_dir_all(b.rootfs()).expect("rm rootfs");
    assert_clean_failure(&b, "rootfs");

    let mut b = Bundle::new("noargs");
    b.config["process"]["args"] = json!([]);
    assert_clean_failure(&b, "args");

    let mut b = Bundle::new("badns");
    b.config["linux"]["namespaces"] = json!([{"type": "mount"}, {"type": "bogus"}]);
    assert_clean_failure(&b, "bogus");

    let b = Bundle::new("badjson");
    b.write();
    std::fs::write(b.bundle().join("config.json"), "{ not json").expect("write");
    // create_with would rewrite config.json; this create fails before forking, so no
    // container can hold the pipes open.
    let out = b
        .cmd()
        .arg("create")
        .arg("--bundle")
        .arg(b.bundle())
        .arg(&b.id)
        .output()
        .expect("create");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("config.json"), "{}", stderr(&out));
    assert!(!b.state_dir().exists());

    // Failing inside init (after namespaces and cgroup exist) must also clean up.
    let mut b = Bundle::new("noexe");
    b.config["process"]["args"] = json!(["/no/such/program"]);
    assert_clean_failure(&b, "/no/such/program");
}

#[test]
fn json_log_format_writes_runc_style_errors() {
    let b = Bundle::new("log");
    let log = b.dir.path().join("log.json");
    let out = b
        .cmd()
        .arg("--log")
        .arg(&log)
        .args(["--log-format", "json", "state", "no-such-container"])
        .output()
        .expect("state");
    assert_eq!(out.status.code(), Some(1));
    let line = std::fs::read_to_string(&log).expect("log");
    let v: serde_json::Value =
        serde_json::from_str(line.lines().next().expect("line")).expect("json");
    assert_eq!(v["level"], json!("error"));
    assert!(v["msg"]
        .as_str()
        .expect("msg")
        .contains("no-such-container"));
}

#[test]
fn systemd_cgroup_is_refused_clearly() {
    let b = Bundle::new("systemd");
    let out = b
        .cmd()
        .args(["--systemd-cgroup", "list"])
        .output()
        .expect("list");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not supported"), "{}", stderr(&out));
}
