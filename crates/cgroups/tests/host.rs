//! End-to-end tests on the real cgroupfs of this host (root required). v1 tests use the v1
//! controllers; v2 tests force a manager onto the unified hierarchy, which on a hybrid host has
//! no controllers but still freezes, kills and filters devices.

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use oci_spec::runtime::LinuxResources;
use wharf_cgroups::{CgroupVersion, Hierarchy, Manager};
use wharf_testutil::{busybox, require_root};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A created cgroup that kills its tasks and removes itself when the test ends, pass or fail.
struct TestCgroup {
    m: Manager,
    paths: Vec<PathBuf>,
}

impl TestCgroup {
    fn new(version: CgroupVersion) -> TestCgroup {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = format!("/wharf-test-{}-{n}", std::process::id());
        let h = Hierarchy::probe().expect("probe");
        let m = Manager::with_version(&h, version, &path, "unused").expect("manager");
        let paths = m.paths();
        let cg = TestCgroup { m, paths };
        cg.m.create().expect("create");
        cg
    }

    /// This cgroup's directory in the v1 hierarchy mounted at .../`ctrl`.
    fn v1_dir(&self, ctrl: &str) -> PathBuf {
        let suffix = format!("/{ctrl}/");
        self.paths
            .iter()
            .find(|p| p.to_string_lossy().contains(&suffix))
            .cloned()
            .unwrap_or_else(|| panic!("no {ctrl} hierarchy in {:?}", self.paths))
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = self.m.kill_all(libc::SIGKILL);
        let _ = wait_until(|| self.m.pids().map(|p| p.is_empty()).unwrap_or(true));
        let _ = self.m.destroy();
    }
}

/// A child process killed and reaped on drop. Declare it before the [`TestCgroup`] so the
/// cgroup guard (which thaws and kills) drops first: a frozen task cannot be reaped.
struct Proc(Child);

impl Proc {
    fn spawn(script: &str) -> Proc {
        let child = Command::new(busybox())
            .args(["sh", "-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn busybox sh");
        Proc(child)
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.0.id()).expect("pid")
    }

    /// Lets a script blocked in `read x` continue.
    fn go(&mut self) {
        let stdin = self.0.stdin.as_mut().expect("stdin");
        stdin.write_all(b"go\n").expect("write stdin");
        stdin.flush().expect("flush");
    }

    fn wait(&mut self) -> std::process::ExitStatus {
        self.0.wait().expect("wait")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls a condition the kernel reaches asynchronously; false only after a generous bound.
fn wait_until(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..1000 {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn proc_state(pid: i32) -> char {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("State:"))
        .and_then(|s| s.trim().chars().next())
        .expect("State line")
}

fn resources(json: &str) -> LinuxResources {
    serde_json::from_str(json).expect("resources json")
}

#[test]
fn v1_lifecycle_limits_stats_and_destroy() {
    require_root!();
    let mut child = Proc::spawn("read x; while :; do busybox true; done");
    let cg = TestCgroup::new(CgroupVersion::V1);
    cg.m.add_process(child.pid()).expect("add");
    assert_eq!(cg.m.pids().expect("pids"), [child.pid()]);
    child.go();

    cg.m.apply_resources(&resources(
        r#"{"memory":{"limit":67108864},"pids":{"limit":50}}"#,
    ))
    .expect("apply");
    let limit = std::fs::read_to_string(cg.v1_dir("memory").join("memory.limit_in_bytes"));
    assert_eq!(limit.expect("read").trim(), "67108864");

    assert!(wait_until(|| {
        let s = cg.m.stats().expect("stats");
        s.cpu.total_usage_ns > 0 && s.memory.usage > 0 && !s.cpu.percpu_usage_ns.is_empty()
    }));
    let s = cg.m.stats().expect("stats");
    assert_eq!(s.memory.limit, 67_108_864);
    assert_eq!(s.pids.limit, Some(50));
    assert!(s.pids.current >= 1);

    cg.m.kill_all(libc::SIGKILL).expect("kill_all");
    assert_eq!(child.wait().signal(), Some(libc::SIGKILL));
    assert!(wait_until(|| cg.m.pids().expect("pids").is_empty()));
    cg.m.destroy().expect("destroy");
    for p in &cg.paths {
        assert!(!p.exists(), "{} left behind", p.display());
    }
    cg.m.destroy().expect("destroy twice");
}

#[test]
fn v1_pids_limit_refuses_forks() {
    require_root!();
    let cg = TestCgroup::new(CgroupVersion::V1);
    cg.m.apply_resources(&resources(r#"{"pids":{"limit":4}}"#))
        .expect("apply");
    // The shell plus three sleeps fill the limit; the fourth fork must fail.
    let mut child = Proc::spawn(
        "read x; for i in 1 2 3 4 5 6; do busybox sleep 1000 2>/dev/null & done; echo all forked",
    );
    cg.m.add_process(child.pid()).expect("add");
    child.go();
    let out = child.0.wait_with_output_ref();
    assert!(!out.0.success(), "shell forked past pids.max");
    assert!(out.1.contains("fork"), "stderr: {}", out.1);
    assert_eq!(cg.m.pids().expect("pids").len(), 3);
}

/// `Child::wait_with_output` consumes the child; this keeps it in the Drop guard.
trait WaitRef {
    fn wait_with_output_ref(&mut self) -> (std::process::ExitStatus, String);
}

impl WaitRef for Child {
    fn wait_with_output_ref(&mut self) -> (std::process::ExitStatus, String) {
        let mut err = String::new();
        if let Some(mut e) = self.stderr.take() {
            std::io::Read::read_to_string(&mut e, &mut err).expect("stderr");
        }
        (self.wait().expect("wait"), err)
    }
}

fn freeze_thaw_real_process(version: CgroupVersion) {
    let child = Proc::spawn("while :; do :; done");
    let cg = TestCgroup::new(version);
    cg.m.add_process(child.pid()).expect("add");
    assert!(wait_until(|| proc_state(child.pid()) == 'R'));
    // v2 reads cpu.stat even without the cpu controller.
    assert!(wait_until(|| cg
        .m
        .stats()
        .expect("stats")
        .cpu
        .total_usage_ns
        > 0));
    cg.m.freeze().expect("freeze");
    assert!(cg.m.is_frozen().expect("is_frozen"));
    assert_ne!(proc_state(child.pid()), 'R', "frozen task still running");
    cg.m.thaw().expect("thaw");
    assert!(!cg.m.is_frozen().expect("is_frozen"));
    assert!(
        wait_until(|| proc_state(child.pid()) == 'R'),
        "thawed task does not run"
    );
}

#[test]
fn v1_freeze_and_thaw() {
    require_root!();
    freeze_thaw_real_process(CgroupVersion::V1);
}

#[test]
fn v2_freeze_and_thaw() {
    require_root!();
    freeze_thaw_real_process(CgroupVersion::V2);
}

#[test]
fn v2_kill_all_and_destroy() {
    require_root!();
    let mut a = Proc::spawn("busybox sleep 1000");
    let mut b = Proc::spawn("busybox sleep 1000");
    let cg = TestCgroup::new(CgroupVersion::V2);
    cg.m.add_process(a.pid()).expect("add");
    cg.m.add_process(b.pid()).expect("add");
    let mut pids = cg.m.pids().expect("pids");
    pids.sort();
    let mut want = vec![a.pid(), b.pid()];
    want.sort();
    assert_eq!(pids, want);
    cg.m.kill_all(libc::SIGKILL).expect("kill_all");
    assert_eq!(a.wait().signal(), Some(libc::SIGKILL));
    assert_eq!(b.wait().signal(), Some(libc::SIGKILL));
    assert!(wait_until(|| cg.m.pids().expect("pids").is_empty()));
    cg.m.destroy().expect("destroy");
    assert!(!cg.paths[0].exists());
}

#[test]
fn v1_kill_all_with_sigterm() {
    require_root!();
    let mut a = Proc::spawn("busybox sleep 1000");
    let cg = TestCgroup::new(CgroupVersion::V1);
    cg.m.add_process(a.pid()).expect("add");
    cg.m.kill_all(libc::SIGTERM).expect("kill_all");
    assert_eq!(a.wait().signal(), Some(libc::SIGTERM));
    assert!(!cg.m.is_frozen().expect("thawed again"));
}

/// Runs `echo > /dev/null` in a cgroup with the given device rules; true if it worked.
fn can_write_dev_null(version: CgroupVersion, rules: &str) -> bool {
    let mut child = Proc::spawn("read x; echo > /dev/null");
    let cg = TestCgroup::new(version);
    cg.m.apply_resources(&resources(&format!(r#"{{"devices":{rules}}}"#)))
        .expect("devices");
    cg.m.add_process(child.pid()).expect("add");
    child.go();
    child.wait().success()
}

fn device_rules_deny_and_allow(version: CgroupVersion) {
    assert!(
        can_write_dev_null(version, "[]"),
        "no rules must not filter"
    );
    let deny_all = r#"[{"allow":false,"access":"rwm"}]"#;
    assert!(
        !can_write_dev_null(version, deny_all),
        "deny-all let it through"
    );
    let allow_null = r#"[{"allow":false,"access":"rwm"},
        {"allow":true,"type":"c","major":1,"minor":3,"access":"rw"}]"#;
    assert!(can_write_dev_null(version, allow_null));
    let read_only = r#"[{"allow":false,"access":"rwm"},
        {"allow":true,"type":"c","major":1,"minor":3,"access":"r"}]"#;
    assert!(
        !can_write_dev_null(version, read_only),
        "read-only rule allowed a write"
    );
}

#[test]
fn v1_device_rules_deny_and_allow() {
    require_root!();
    device_rules_deny_and_allow(CgroupVersion::V1);
}

#[test]
fn v2_device_filter_denies_and_allows() {
    require_root!();
    device_rules_deny_and_allow(CgroupVersion::V2);
}

#[test]
fn v1_kernel_accepts_cpu_and_memory_updates_in_either_direction() {
    require_root!();
    let cg = TestCgroup::new(CgroupVersion::V1);
    let cpu = r#"{"cpu":{"shares":512,"quota":20000,"period":50000,"cpus":"0","mems":"0"}}"#;
    cg.m.apply_resources(&resources(cpu)).expect("cpu");
    let read = |ctrl: &str, file: &str| {
        let text = std::fs::read_to_string(cg.v1_dir(ctrl).join(file)).expect("read");
        text.trim().to_string()
    };
    assert_eq!(read("cpu", "cpu.shares"), "512");
    assert_eq!(read("cpu", "cpu.cfs_quota_us"), "20000");
    assert_eq!(read("cpu", "cpu.cfs_period_us"), "50000");
    assert_eq!(read("cpuset", "cpuset.cpus"), "0");
    // Growing needs memsw written first, shrinking needs memory first: both must work.
    for (limit, swap) in [
        (64u64 << 20, 128u64 << 20),
        (256 << 20, 512 << 20),
        (32 << 20, 48 << 20),
    ] {
        let json = format!(r#"{{"memory":{{"limit":{limit},"swap":{swap}}}}}"#);
        cg.m.apply_resources(&resources(&json)).expect("memory");
        assert_eq!(read("memory", "memory.limit_in_bytes"), limit.to_string());
        assert_eq!(
            read("memory", "memory.memsw.limit_in_bytes"),
            swap.to_string()
        );
    }
    let unlimited = resources(r#"{"memory":{"limit":-1}}"#);
    cg.m.apply_resources(&unlimited).expect("lift");
    assert_ne!(
        read("memory", "memory.memsw.limit_in_bytes"),
        (48u64 << 20).to_string()
    );
}

#[test]
fn v2_device_filter_is_replaced_on_reapply() {
    require_root!();
    let cg = TestCgroup::new(CgroupVersion::V2);
    let deny = resources(r#"{"devices":[{"allow":false,"access":"rwm"}]}"#);
    let allow = resources(r#"{"devices":[{"allow":true,"access":"rwm"}]}"#);
    cg.m.apply_resources(&deny).expect("deny");
    cg.m.apply_resources(&allow).expect("allow");
    let mut child = Proc::spawn("read x; echo > /dev/null");
    cg.m.add_process(child.pid()).expect("add");
    child.go();
    assert!(
        child.wait().success(),
        "the old deny filter is still attached"
    );
}

#[test]
fn v1_sigkill_reaches_a_paused_container() {
    require_root!();
    sigkill_reaches_a_paused_container(CgroupVersion::V1);
}

#[test]
fn v2_sigkill_reaches_a_paused_container() {
    require_root!();
    sigkill_reaches_a_paused_container(CgroupVersion::V2);
}

fn sigkill_reaches_a_paused_container(version: CgroupVersion) {
    let mut a = Proc::spawn("busybox sleep 1000");
    let cg = TestCgroup::new(version);
    cg.m.add_process(a.pid()).expect("add");
    cg.m.freeze().expect("pause");
    cg.m.kill_all(libc::SIGKILL).expect("kill_all");
    assert_eq!(a.wait().signal(), Some(libc::SIGKILL));
}

#[test]
fn probe_finds_mounted_hierarchies() {
    require_root!();
    let h = Hierarchy::probe().expect("probe");
    for m in h.v1_mounts() {
        assert!(m.mount_point.join("cgroup.procs").exists(), "{m:?}");
    }
    if let Some(u) = h.unified() {
        assert!(u.mount_point.join("cgroup.controllers").exists(), "{u:?}");
    }
    let f = wharf_cgroups::features(&h);
    assert_eq!(f["v1"], !h.v1_mounts().is_empty(), "{f}");
}

#[test]
fn v1_other_signals_keep_a_paused_container_paused() {
    require_root!();
    let a = Proc::spawn("busybox sleep 1000");
    let cg = TestCgroup::new(CgroupVersion::V1);
    cg.m.add_process(a.pid()).expect("add");
    cg.m.freeze().expect("pause");
    cg.m.kill_all(libc::SIGCONT).expect("kill_all");
    assert!(cg.m.is_frozen().expect("state"));
    assert!(cg.m.kill_all(12345).is_err(), "not a signal");
}
