//! End-to-end: docker-py, the Python SDK, against a real wharfd (tests/clients/dockerpy_smoke.py).
//! `hack/deps.sh` installs it; a machine without it fails here rather than skipping.

mod common;

use common::Daemon;

#[test]
fn docker_py_drives_wharfd() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&[]);
    d.import_busybox();
    d.docker_py("dockerpy_smoke.py", &[], &[], "docker-py: ok");
}

#[test]
fn docker_py_networks() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&[]);
    d.import_busybox();
    d.docker_py("dockerpy_network.py", &[], &[], "docker-py network: ok");
}
