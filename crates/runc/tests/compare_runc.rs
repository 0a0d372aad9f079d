//! Runs the same bundle under runc and wharf-runtime and compares what the container saw.
//! runc is installed on the CI host; the test fails loudly if it is missing.

mod common;

use std::path::Path;

use common::*;
use serde_json::json;

const RUNC: &str = "/usr/sbin/runc";

/// Identity, capabilities, limits, devices, cgroup view, env and the set of mount points.
const PROBE: &str = "id; hostname; grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status; ulimit -n; \
    ls -a /dev | sort | tr '\\n' ' '; echo; echo $$; umask; pwd; ls /sys/fs/cgroup | sort | tr '\\n' ' '; echo; \
    awk '{print $5}' /proc/self/mountinfo | sort | tr '\\n' ' '; echo; env | sort; \
    (echo 1 > /proc/sys/kernel/domainname) 2>/dev/null && echo sys=rw || echo sys=ro";

fn probe(runtime: &Path, patch: impl Fn(&mut serde_json::Value)) -> String {
    let mut b = Bundle::with_runtime("cmp", runtime);
    patch(&mut b.config);
    b.script(PROBE);
    let out = b.run();
    assert!(
        out.status.success(),
        "{} failed: {}",
        runtime.display(),
        stderr(&out)
    );
    stdout(&out)
}

fn compare(patch: impl Fn(&mut serde_json::Value)) {
    assert!(
        Path::new(RUNC).exists(),
        "runc is required for the comparison tests"
    );
    let runc = probe(Path::new(RUNC), &patch);
    let wharf = probe(Path::new(WHARF), &patch);
    assert_eq!(wharf, runc, "wharf-runtime and runc disagree");
}

#[test]
fn default_spec_matches_runc() {
    compare(|_| {});
}

#[test]
fn non_root_user_with_limits_matches_runc() {
    compare(|c| {
        c["process"]["user"] = json!({"uid": 65534, "gid": 65534, "additionalGids": [3]});
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200}]);
        c["process"]["noNewPrivileges"] = json!(false);
        c["process"]["env"] = json!(["PATH=/bin", "FOO=bar"]);
        c["process"]["cwd"] = json!("/tmp");
        c["hostname"] = json!("cmp-host");
    });
}

#[test]
fn container_hooks_match_runc() {
    assert!(
        Path::new(RUNC).exists(),
        "runc is required for the comparison tests"
    );
    assert_eq!(
        hook_namespace_report(Path::new(WHARF)),
        hook_namespace_report(Path::new(RUNC))
    );
}
