//! End-to-end conformance with dockerd (issue 13, "Daemon and CLI"): devices through the docker
//! CLI, the create body with nulls, and the docker-py calls of
//! `tests/clients/dockerpy_conformance.py`, one test per finding.

mod common;

use common::Daemon;

fn daemon() -> Daemon {
    wharf_testutil::require_root!();
    let d = Daemon::start(&[]);
    d.import_busybox();
    d
}

/// Runs one check of the docker-py script against a fresh daemon.
fn dockerpy(check: &str) {
    let d = daemon();
    let config = d.dir.path().join("docker-config");
    std::fs::create_dir_all(&config).expect("docker config dir");
    std::fs::write(config.join("config.json"), r#"{"detachKeys": "ctrl-x"}"#).expect("config");
    d.docker_py(
        "dockerpy_conformance.py",
        &[check],
        &[
            ("DOCKER_CONFIG", config.as_os_str()),
            ("WHARF_TEST_DIR", d.dir.path().as_os_str()),
        ],
        &format!("check ok: {check}"),
    );
}

macro_rules! dockerpy_checks {
    ($($name:ident),* $(,)?) => { $( #[test] fn $name() { dockerpy(stringify!($name)); } )* };
}

dockerpy_checks!(
    kill_waits_for_exit,
    commit_right_after_exit,
    healthcheck_null_start_period,
    exec_tty_framed_by_start,
    exec_detach_keys_from_config,
    attach_logs_of_exited_container,
    log_config_in_inspect,
    rshared_bind_propagation,
    runtime_name_kept,
    unknown_log_driver_message,
    load_non_tar_reports_in_stream,
    memory_swap_reported,
    oom_in_exec_emits_event,
);

/// Replaces every member value of `v` (an object) with null, except the ones in `keep`.
fn nulls(v: &serde_json::Value, keep: &[&str]) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for k in v.as_object().expect("object").keys() {
        let val = if keep.contains(&k.as_str()) {
            v[k].clone()
        } else {
            serde_json::Value::Null
        };
        out.insert(k.clone(), val);
    }
    serde_json::Value::Object(out)
}

#[test]
fn create_body_with_nulls_for_every_optional_field() {
    let d = daemon();
    // Every field the API models know, as the CLI and SDKs may send them: null means unset.
    let full = serde_json::to_value(wharf_api_types::container::CreateRequest {
        host_config: Some(Default::default()),
        ..Default::default()
    })
    .expect("serialise");
    let mut body = nulls(&full, &[]);
    body["Image"] = "busybox".into();
    body["Cmd"] = serde_json::json!(["echo", "hi"]);
    let mut hc = nulls(&full["HostConfig"], &[]);
    for (k, v) in full["HostConfig"].as_object().expect("host config") {
        if v.is_object() {
            hc[k] = nulls(v, &[]);
        }
    }
    body["HostConfig"] = hc;
    body["Healthcheck"] = serde_json::json!({"Test": ["CMD", "true"], "Interval": null,
        "Timeout": null, "StartPeriod": null, "StartInterval": null, "Retries": null});
    let (st, resp) = d.raw(
        "POST",
        "/v1.45/containers/create?name=nulls",
        body.to_string().as_bytes(),
    );
    assert_eq!(st, 201, "{}", String::from_utf8_lossy(&resp));
    assert_eq!(d.ok(&["start", "-a", "nulls"]), "hi");
}

#[test]
fn device_node_appears_in_the_container() {
    let d = daemon();
    let out = d.ok(&[
        "run",
        "--rm",
        "--device",
        "/dev/kmsg:/dev/k2",
        "busybox",
        "ls",
        "-l",
        "/dev/k2",
    ]);
    assert!(out.starts_with("crw"), "{out}");
    assert!(out.contains("1,  11") || out.contains("1, 11"), "{out}");
    // `r` allows opening for reading only.
    let out = d.docker(&[
        "run",
        "--rm",
        "--device",
        "/dev/fuse:/dev/f:r",
        "busybox",
        "sh",
        "-c",
        "ls -l /dev/f && : < /dev/f && echo read-ok && : > /dev/f",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("10, 229") && text.contains("read-ok"),
        "{text}\n{err}"
    );
    assert!(err.contains("Operation not permitted"), "{text}\n{err}");
    assert!(!out.status.success());
    let out = d.docker(&[
        "run",
        "--rm",
        "--device",
        "/dev/no-such-device",
        "busybox",
        "true",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("error gathering device information while adding custom device"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn device_cgroup_rule_decides_node_access() {
    let d = daemon();
    // A node made with mknod (allowed for every char device) is usable only with a rule.
    let script = "mknod /dev/m c 10 229 && : < /dev/m && echo opened";
    let refused = d.docker(&["run", "--rm", "busybox", "sh", "-c", script]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("Operation not permitted"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let allowed = d.ok(&[
        "run",
        "--rm",
        "--device-cgroup-rule",
        "c 10:229 r",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(allowed, "opened");
}

#[test]
fn gpus_are_refused_clearly() {
    let d = daemon();
    let out = d.docker(&["run", "--rm", "--gpus", "all", "busybox", "true"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("could not select device driver \"\" with capabilities: [[gpu]]"),
        "{err}"
    );
}
