//! What the container's process sees: namespaces, identity, capabilities, limits, masks,
//! seccomp, cgroup limits, user namespaces.

mod common;

use common::*;
use serde_json::json;

fn run_ok(b: &Bundle) -> String {
    let out = b.run();
    assert!(
        out.status.success(),
        "run failed ({:?}): {}",
        out.status,
        stderr(&out)
    );
    stdout(&out)
}

#[test]
fn pid_hostname_caps_and_nnp() {
    let mut b = Bundle::new("view");
    b.config["hostname"] = json!("box1");
    b.config["process"]["capabilities"] = json!({
        "bounding": ["CAP_KILL", "CAP_CHOWN"],
        "effective": ["CAP_KILL"],
        "permitted": ["CAP_KILL", "CAP_CHOWN"],
        "inheritable": [],
        "ambient": []
    });
    b.config["process"]["noNewPrivileges"] = json!(true);
    b.script("echo pid=$$; hostname; cat /proc/self/status");
    let s = run_ok(&b);
    assert!(s.contains("pid=1\n"), "{s}");
    assert!(s.contains("\nbox1\n"), "{s}");
    assert_eq!(
        status_field(&s, "CapBnd").as_deref(),
        Some("0000000000000021")
    );
    assert_eq!(
        status_field(&s, "CapPrm").as_deref(),
        Some("0000000000000021")
    );
    // Root exec()s with effective = permitted (no SECBIT_NOROOT), as under runc.
    assert_eq!(
        status_field(&s, "CapEff").as_deref(),
        Some("0000000000000021")
    );
    assert_eq!(
        status_field(&s, "CapInh").as_deref(),
        Some("0000000000000000")
    );
    assert_eq!(status_field(&s, "NoNewPrivs").as_deref(), Some("1"));
}

#[test]
fn user_groups_umask_and_cwd() {
    let mut b = Bundle::new("user");
    b.config["process"]["user"] =
        json!({"uid": 65534, "gid": 65534, "additionalGids": [5, 7], "umask": 63});
    b.config["process"]["cwd"] = json!("/work/dir");
    b.script("id -u; id -g; id -G; umask; pwd");
    let s = run_ok(&b);
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(lines[0], "65534");
    assert_eq!(lines[1], "65534");
    assert!(lines[2].contains('5') && lines[2].contains('7'), "{s}");
    assert_eq!(lines[3], "0077");
    assert_eq!(lines[4], "/work/dir", "a missing cwd is created");
}

#[test]
fn rlimits_are_applied_and_raising_above_hard_is_explained() {
    let mut b = Bundle::new("rlimit");
    b.config["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 321, "hard": 654}]);
    b.script("ulimit -n; ulimit -Hn");
    let s = run_ok(&b);
    assert_eq!(s, "321\n654\n");

    // Above the caller's hard limit only works with CAP_SYS_RESOURCE.
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let bnd =
        u64::from_str_radix(&status_field(&status, "CapBnd").expect("CapBnd"), 16).expect("hex");
    let has_sys_resource = bnd & (1 << 24) != 0;
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `cur` is a valid out-parameter.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut cur) };
    let mut b = Bundle::new("rlimit-high");
    b.config["process"]["rlimits"] =
        json!([{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": cur.rlim_max.saturating_add(1)}]);
    b.script("true");
    let out = b.run();
    if has_sys_resource {
        assert!(out.status.success(), "{}", stderr(&out));
    } else {
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("CAP_SYS_RESOURCE"),
            "{}",
            stderr(&out)
        );
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    }
}

#[test]
fn masked_and_readonly_paths_hold() {
    let mut b = Bundle::new("masks");
    b.script(
        "echo keys=$(wc -c < /proc/keys); echo fw=$(ls /sys/firmware | wc -l); \
         (echo 1 > /proc/sys/kernel/domainname) 2>/dev/null && echo sys=rw || echo sys=ro; \
         (echo x > /proc/sysrq-trigger) 2>/dev/null && echo sysrq=rw || echo sysrq=ro; \
         touch /rootwrite 2>/dev/null && echo root=rw || echo root=ro",
    );
    b.config["root"]["readonly"] = json!(true);
    let s = run_ok(&b);
    assert!(s.contains("keys=0\n"), "masked file reads empty: {s}");
    assert!(s.contains("fw=0\n"), "{s}");
    assert!(s.contains("sys=ro\n"), "{s}");
    assert!(s.contains("sysrq=ro\n"), "{s}");
    assert!(s.contains("root=ro\n"), "{s}");
}

#[test]
fn docker_default_seccomp_profile_loads_and_filters() {
    let mut b = Bundle::new("seccomp");
    let caps: Vec<String> = b.config["process"]["capabilities"]["bounding"]
        .as_array()
        .expect("caps")
        .iter()
        .filter_map(|c| c.as_str().map(str::to_string))
        .collect();
    let profile =
        wharf_seccomp::docker_profile_to_oci(wharf_seccomp::default_docker_profile(), &caps)
            .expect("docker profile");
    b.config["linux"]["seccomp"] = serde_json::to_value(profile).expect("json");
    b.script("grep Seccomp: /proc/self/status; unshare -U true 2>/dev/null && echo unshare=ok || echo unshare=denied");
    let s = run_ok(&b);
    assert!(s.contains("Seccomp:\t2"), "{s}");
    assert!(s.contains("unshare=denied"), "{s}");
}

#[test]
fn memory_limit_oom_kills_with_137() {
    let mut b = Bundle::new("oom");
    let limit = 32 * 1024 * 1024;
    let mut mem = json!({"limit": limit});
    if std::path::Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists() {
        mem["swap"] = json!(limit);
    }
    b.config["linux"]["resources"] = json!({"memory": mem});
    b.script("x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done");
    let out = b.run();
    assert_eq!(out.status.code(), Some(137), "stderr: {}", stderr(&out));
    assert!(!cgroup_left(&b.id));
}

#[test]
fn pids_limit_refuses_forks() {
    let mut b = Bundle::new("pids");
    b.config["linux"]["resources"] = json!({"pids": {"limit": 4}});
    b.script("n=0; for i in 1 2 3 4 5 6 7 8; do sleep 30 & done; echo done");
    let out = b.run();
    assert!(
        stderr(&out).contains("fork"),
        "forks beyond the limit fail: {}",
        stderr(&out)
    );
}

#[test]
fn cpu_quota_is_visible_in_the_cgroup() {
    let mut b = Bundle::new("cpu");
    b.config["linux"]["resources"] = json!({"cpu": {"quota": 50000, "period": 100000}});
    b.script("cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cat /sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us 2>/dev/null || cat /sys/fs/cgroup/cpu.max");
    let s = run_ok(&b);
    assert!(s.trim() == "50000" || s.trim() == "50000 100000", "{s}");
}

#[test]
fn update_changes_limits_of_a_running_container() {
    let mut b = Bundle::new("update");
    b.script("sleep 1000");
    assert!(b.create().status.success());
    assert!(b.verb("start", &[]).status.success());
    let out = b
        .cmd()
        .args(["update", "--pids-limit", "17", &b.id])
        .output()
        .expect("update");
    assert!(out.status.success(), "{}", stderr(&out));
    let out = b
        .cmd()
        .args(["exec", &b.id, "cat", "/sys/fs/cgroup/pids/pids.max"])
        .output()
        .expect("exec");
    assert_eq!(stdout(&out).trim(), "17", "{}", stderr(&out));
    let ev = b
        .cmd()
        .args(["events", "--stats", &b.id])
        .output()
        .expect("events");
    let v: serde_json::Value = serde_json::from_slice(&ev.stdout).expect("stats json");
    assert_eq!(v["type"], json!("stats"));
}

#[test]
fn user_namespace_maps_ids() {
    let mut b = Bundle::new("userns");
    // The mapped root must be able to reach the bundle inside our private tempdir.
    std::fs::set_permissions(
        b.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let st = std::process::Command::new("chown")
        .arg("-R")
        .arg("100000:100000")
        .arg(b.rootfs())
        .status()
        .expect("chown");
    assert!(st.success());
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .expect("ns")
        .push(json!({"type": "user"}));
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.script("cat /proc/self/uid_map /proc/self/gid_map; id -u");
    let s = run_ok(&b);
    let norm: Vec<String> = s
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(norm, vec!["0 100000 65536", "0 100000 65536", "0"], "{s}");
}
