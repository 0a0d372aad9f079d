//! Bundles other engines and validation suites write that runc runs: each runs under runc and
//! wharf-runtime in the same test, and both must agree.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::*;
use serde_json::{json, Value};

const RUNC: &str = "/usr/sbin/runc";

fn require_runc() {
    assert!(
        Path::new(RUNC).exists(),
        "runc is required for the comparison tests"
    );
}

/// Runs `script` in a bundle patched by `patch` under `runtime`; returns (output, bundle).
fn run_with(
    runtime: &Path,
    name: &str,
    script: &str,
    patch: &dyn Fn(&mut Bundle),
) -> (Output, Bundle) {
    let mut b = Bundle::with_runtime(name, runtime);
    b.script(script);
    patch(&mut b);
    let out = b.run();
    (out, b)
}

/// The script's stdout under runc and under wharf-runtime; both must succeed.
fn both(name: &str, script: &str, patch: &dyn Fn(&mut Bundle)) -> (String, String) {
    require_runc();
    let mut outs = [RUNC, WHARF].map(|rt| {
        let (out, _b) = run_with(Path::new(rt), name, script, patch);
        assert!(
            out.status.success(),
            "{rt} failed: {}{}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    });
    let wharf = std::mem::take(&mut outs[1]);
    (std::mem::take(&mut outs[0]), wharf)
}

/// An allow list built from Docker's default profile without `close_range`, with errno as the
/// default action: what hardened or older profiles look like.
fn profile_without_close_range() -> Value {
    let docker: Value =
        serde_json::from_str(include_str!("../../seccomp/profiles/default.json")).expect("json");
    let names: Vec<Value> = docker["syscalls"][0]["names"]
        .as_array()
        .expect("names")
        .iter()
        .filter(|n| *n != "close_range")
        .cloned()
        // The profile allows this one per architecture; static binaries need it.
        .chain([json!("arch_prctl")])
        .collect();
    assert!(names.len() > 100, "the first group is the plain allow list");
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]
    })
}

#[test]
fn seccomp_profile_without_close_range_runs_as_under_runc() {
    for nnp in [true, false] {
        let (runc, wharf) = both(
            "noclose",
            "echo ran; grep Seccomp: /proc/self/status",
            &|b| {
                b.config["linux"]["seccomp"] = profile_without_close_range();
                b.config["process"]["noNewPrivileges"] = json!(nnp);
            },
        );
        assert_eq!(wharf, runc, "noNewPrivileges={nnp}");
        assert!(
            wharf.contains("ran") && wharf.contains("Seccomp:\t2"),
            "{wharf}"
        );
    }
}

#[test]
fn kernel_memory_limit_is_ignored_as_by_runc() {
    let script = "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max";
    let (runc, wharf) = both("kmem", script, &|b| {
        b.config["linux"]["resources"]["memory"] =
            json!({"kernel": 67_108_864, "limit": 134_217_728});
    });
    assert_eq!(wharf, runc);
    assert_eq!(wharf.trim(), "134217728", "the other limits still apply");
    // The runtime says what it ignored.
    let (out, _b) = run_with(Path::new(WHARF), "kmemwarn", "true", &|b| {
        b.config["linux"]["resources"]["memory"] = json!({"kernel": 67_108_864});
    });
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("memory.kernel"), "{}", stderr(&out));
}

#[test]
fn fifo_in_devices_is_created_as_by_runc() {
    let script = "ls -l /dev/myfifo | cut -c1-10; echo hi > /dev/myfifo & cat /dev/myfifo; wait";
    let (runc, wharf) = both("fifo", script, &|b| {
        b.config["linux"]["devices"] = json!([
            {"path": "/dev/myfifo", "type": "p", "fileMode": 0o620, "uid": 0, "gid": 0}
        ]);
    });
    assert_eq!(wharf, runc);
    assert_eq!(wharf, "prw--w----\nhi\n");
}

/// Runs `runtime run` in a mount namespace of its own (so a container sharing its caller's
/// mounts leaves none on the host); returns the runtime's output and that namespace's id.
fn run_in_private_mount_ns(b: &Bundle) -> (Output, String) {
    b.write();
    let ns_file = b.dir.path().join("caller-mnt-ns");
    let cmd = format!(
        "readlink /proc/self/ns/mnt > {}; exec {} --root {} run --bundle {} {}",
        ns_file.display(),
        b.runtime.display(),
        b.state_root().display(),
        b.bundle().display(),
        b.id
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &cmd])
        .stdin(Stdio::null())
        .output()
        .expect("spawn unshare");
    let ns = std::fs::read_to_string(&ns_file).unwrap_or_default();
    (out, ns.trim().to_string())
}

#[test]
fn container_without_a_mount_namespace_runs_as_under_runc() {
    require_runc();
    let script =
        "readlink /proc/self/ns/mnt; ls /; ls -a /dev | sort | tr '\\n' ' '; echo; id; hostname";
    let outputs = [RUNC, WHARF].map(|rt| {
        let mut b = Bundle::with_runtime("nomntns", Path::new(rt));
        let ns = b.config["linux"]["namespaces"]
            .as_array_mut()
            .expect("namespaces");
        ns.retain(|n| n["type"] != "mount");
        // Both runtimes refuse these without a mount namespace of the container's own.
        b.config["linux"]["maskedPaths"] = json!([]);
        b.config["linux"]["readonlyPaths"] = json!([]);
        b.config["root"]["readonly"] = json!(false);
        b.script(script);
        let (out, caller_ns) = run_in_private_mount_ns(&b);
        assert!(out.status.success(), "{rt} failed: {}", stderr(&out));
        let text = stdout(&out);
        let (container_ns, rest) = text.split_once('\n').expect("ns line");
        assert_eq!(
            container_ns, caller_ns,
            "{rt}: the container shares its caller's mounts"
        );
        rest.to_string()
    });
    assert_eq!(outputs[1], outputs[0], "wharf-runtime and runc disagree");
    assert!(outputs[1].contains("bin"), "{}", outputs[1]);
}

#[test]
fn early_init_failures_report_their_cause() {
    require_runc();
    // A first mount whose source is missing fails in init while the runtime is still
    // placing it in its cgroup.
    let missing = |b: &mut Bundle| {
        let src = b.dir.path().join("no-such-source");
        b.config["mounts"].as_array_mut().expect("mounts").insert(
            0,
            json!({"destination": "/mnt/x", "type": "bind", "source": src, "options": ["rbind"]}),
        );
    };
    for rt in [RUNC, WHARF] {
        let (out, b) = run_with(Path::new(rt), "earlyfail", "true", &missing);
        let err = stderr(&out);
        assert!(
            !out.status.success(),
            "{rt} ran a container without its mount"
        );
        assert!(err.contains("/mnt/x"), "{rt}: {err}");
        assert!(
            !err.contains("EPIPE") && !err.contains("broken pipe"),
            "{rt}: {err}"
        );
        assert!(!cgroup_left(&b.id), "{rt} left its cgroup");
    }
}

#[test]
fn unbindable_rootfs_propagation_behaves_as_under_runc() {
    require_runc();
    let results = [RUNC, WHARF].map(|rt| {
        let (out, _b) = run_with(Path::new(rt), "unbindable", "echo ran", &|b| {
            b.config["linux"]["rootfsPropagation"] = json!("unbindable");
        });
        (out.status.success(), stdout(&out), stderr(&out))
    });
    let (runc, wharf) = (&results[0], &results[1]);
    assert_eq!(wharf.0, runc.0, "runc: {runc:?}\nwharf: {wharf:?}");
    if wharf.0 {
        assert_eq!(wharf.1, runc.1);
    } else {
        // runc 1.1 cannot bind an unbindable rootfs either: the error must say so.
        assert!(
            wharf.2.contains("bind rootfs") && wharf.2.contains("EINVAL"),
            "{}",
            wharf.2
        );
    }
}
