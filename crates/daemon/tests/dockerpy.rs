//! End-to-end: docker-py, the Python SDK, against a real wharfd (tests/clients/dockerpy_smoke.py).
//! `hack/deps.sh` installs it; a machine without it fails here rather than skipping.

mod common;

use common::Daemon;

#[test]
fn docker_py_drives_wharfd() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&[]);
    d.import_busybox();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/dockerpy_smoke.py"
    );
    let out = std::process::Command::new("timeout")
        .args(["-s", "KILL", "120", "python3", script])
        .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
        .output()
        .expect("run python3 (hack/deps.sh installs it with docker-py)");
    assert!(
        out.status.success(),
        "docker-py script failed ({}):\n{}\n{}\n--- daemon log ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        d.log()
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("docker-py: ok"));
}

#[test]
fn docker_py_networks() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&[]);
    d.import_busybox();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/dockerpy_network.py"
    );
    let out = std::process::Command::new("timeout")
        .args(["-s", "KILL", "120", "python3", script])
        .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
        .output()
        .expect("run python3 (hack/deps.sh installs it with docker-py)");
    assert!(
        out.status.success(),
        "docker-py script failed ({}):\n{}\n{}\n--- daemon log ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        d.log()
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("docker-py network: ok"));
}
