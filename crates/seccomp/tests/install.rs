//! End-to-end: compiled filters installed in real processes. Root is needed to check that an
//! unprivileged install without no_new_privs is refused (the test drops to nobody).
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output};

use oci_spec::runtime::LinuxSeccomp;
use wharf_seccomp::{
    compile, default_docker_profile, docker_profile_to_oci, Filter, DOCKER_DEFAULT_CAPS,
};

/// Exit code of a child whose filter failed to install.
const INSTALL_FAILED: i32 = 100;

fn filter(json: serde_json::Value) -> Filter {
    let spec: LinuxSeccomp = serde_json::from_value(json).unwrap();
    compile(&spec).unwrap()
}

fn docker_default_filter() -> Filter {
    let caps: Vec<String> = DOCKER_DEFAULT_CAPS.iter().map(|c| c.to_string()).collect();
    compile(&docker_profile_to_oci(default_docker_profile(), &caps).unwrap()).unwrap()
}

/// The calling thread's errno, read without allocating.
fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// no_new_privs, then the filter; only async-signal-safe calls.
fn restrict(filter: &Filter) -> Result<(), i32> {
    // SAFETY: prctl with integer arguments touches no memory of ours.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(errno());
    }
    filter.install().map_err(|_| errno())
}

/// How a forked child ended.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Exited(i32),
    Signaled(i32),
}

/// Forks, installs `filter` in the child and exits with `body`'s code. The body runs after fork
/// in a multi-threaded test process, so it must stick to raw syscalls (no allocation, no locks).
fn in_child(filter: &Filter, body: impl FnOnce() -> i32) -> Outcome {
    // SAFETY: the child only calls async-signal-safe functions (prctl, seccomp, raw syscalls
    // in `body`) and leaves with _exit, never returning into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
    if pid == 0 {
        // Children killed by SIGSYS would otherwise dump core into the crate directory.
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: setrlimit reads the struct for the duration of the call.
        unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) };
        let code = match restrict(filter) {
            Ok(()) => body(),
            Err(_) => INSTALL_FAILED,
        };
        // SAFETY: terminating the forked child without running the parent's atexit handlers.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child with a valid status pointer.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid, "waitpid: {}", io::Error::last_os_error());
    if libc::WIFSIGNALED(status) {
        Outcome::Signaled(libc::WTERMSIG(status))
    } else {
        Outcome::Exited(libc::WEXITSTATUS(status))
    }
}

/// Runs busybox with `args` under `filter`, installed between fork and exec.
fn busybox_under(filter: Filter, args: &[&str]) -> Output {
    let mut cmd = Command::new(wharf_testutil::busybox());
    cmd.args(args);
    // SAFETY: the hook only calls prctl and seccomp, which are async-signal-safe and do not
    // allocate; errors are built from a raw errno without allocation.
    unsafe {
        cmd.pre_exec(move || restrict(&filter).map_err(io::Error::from_raw_os_error));
    }
    cmd.output().unwrap()
}

#[test]
fn errno_rule_denies_mkdir_while_getpid_works() {
    wharf_testutil::require_root!();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join(format!("made-{}", std::process::id()));
    let path = CString::new(target.to_str().unwrap()).unwrap();
    let f = filter(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_TSYNC"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]
    }));
    let outcome = in_child(&f, || {
        // SAFETY: `path` is a valid NUL-terminated string that outlives the call.
        if unsafe { libc::mkdir(path.as_ptr(), 0o755) } == 0 {
            return 1;
        }
        if errno() != libc::EPERM {
            return 2;
        }
        // SAFETY: getpid has no preconditions.
        if unsafe { libc::syscall(libc::SYS_getpid) } <= 0 {
            return 3;
        }
        0
    });
    assert_eq!(outcome, Outcome::Exited(0));
    assert!(!target.exists(), "mkdir got through the filter");
}

#[test]
fn kill_and_trap_actions_end_the_process_with_sigsys() {
    wharf_testutil::require_root!();
    // TRAP raises SIGSYS, whose default disposition terminates the process.
    for action in ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP"] {
        let f = filter(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["uname"], "action": action}]
        }));
        let outcome = in_child(&f, || {
            // SAFETY: utsname is plain data and the pointer is valid for the call.
            let mut buf: libc::utsname = unsafe { std::mem::zeroed() };
            // SAFETY: as above.
            unsafe { libc::uname(&mut buf) };
            0
        });
        assert_eq!(outcome, Outcome::Signaled(libc::SIGSYS), "{action}");
    }
}

#[test]
fn argument_rule_allows_only_the_query_form_of_personality() {
    wharf_testutil::require_root!();
    // Docker-style: personality is refused unless arg0 == 0xffffffff (query the persona).
    let f = filter(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                      "args": [{"index": 0, "value": 0xffff_ffffu64, "op": "SCMP_CMP_NE"}]}]
    }));
    let outcome = in_child(&f, || {
        // SAFETY: personality takes a plain integer.
        if unsafe { libc::syscall(libc::SYS_personality, 0xffff_ffffu64) } < 0 {
            return 1;
        }
        // SAFETY: as above; PER_LINUX32 would change the persona if it were let through.
        if unsafe { libc::syscall(libc::SYS_personality, 0x0008u64) } != -1
            || errno() != libc::EPERM
        {
            return 2;
        }
        0
    });
    assert_eq!(outcome, Outcome::Exited(0));
}

#[test]
fn proc_status_reports_filter_mode() {
    wharf_testutil::require_root!();
    let f = filter(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["reboot"], "action": "SCMP_ACT_ERRNO"}]
    }));
    let out = busybox_under(f, &["cat", "/proc/self/status"]);
    assert!(out.status.success(), "{out:?}");
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(status.lines().any(|l| l == "Seccomp:\t2"), "{status}");
    assert!(status.lines().any(|l| l == "NoNewPrivs:\t1"), "{status}");
}

#[test]
fn docker_default_profile_runs_a_shell() {
    wharf_testutil::require_root!();
    let out = busybox_under(docker_default_filter(), &["sh", "-c", "echo ok; ls /"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("ok\n"), "{stdout}");
    assert!(stdout.lines().any(|l| l == "proc"), "{stdout}");
}

#[test]
fn docker_default_profile_refuses_namespace_and_mount_syscalls() {
    wharf_testutil::require_root!();
    let out = busybox_under(docker_default_filter(), &["unshare", "-n", "true"]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"),
        "{out:?}"
    );

    let target =
        CString::new(format!("/nonexistent-wharf-seccomp-{}", std::process::id())).unwrap();
    let outcome = in_child(&docker_default_filter(), || {
        // SAFETY: all strings are valid NUL-terminated and outlive the call; the target does
        // not exist, so even an unfiltered call could only fail with ENOENT.
        let mounted = unsafe {
            libc::mount(
                c"none".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if mounted == 0 || errno() != libc::EPERM {
            return 1;
        }
        // SAFETY: unshare takes flags only; it is refused before it could take effect.
        if unsafe { libc::unshare(libc::CLONE_NEWNS) } == 0 || errno() != libc::EPERM {
            return 2;
        }
        // SAFETY: clone3 with a null args pointer is rejected (EINVAL) by the kernel itself;
        // the profile must answer ENOSYS first so libcs fall back to clone.
        let r = unsafe { libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0usize) };
        if r != -1 || errno() != libc::ENOSYS {
            return 3;
        }
        // SAFETY: getppid has no preconditions.
        if unsafe { libc::getppid() } <= 0 {
            return 4;
        }
        0
    });
    assert_eq!(outcome, Outcome::Exited(0));
}

#[test]
fn install_without_privileges_or_no_new_privs_is_refused() {
    wharf_testutil::require_root!();
    // Drop CAP_SYS_ADMIN-equivalent by switching to nobody without no_new_privs: the kernel
    // must answer EACCES, which maps to a Forbidden error.
    let f = filter(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW"}));
    // SAFETY: see in_child; the child only calls setresuid/seccomp and _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: plain integer arguments.
        let code = if unsafe { libc::setresuid(65534, 65534, 65534) } != 0 {
            3
        } else {
            match f.install() {
                Ok(()) => 1,
                Err(e)
                    if wharf_errdefs::Classify::kind(&e) == wharf_errdefs::ErrorKind::Forbidden =>
                {
                    0
                }
                Err(_) => 2,
            }
        };
        // SAFETY: leave the forked child without unwinding into the harness.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "status {status:#x}"
    );
}
