//! Attack tests: each tries an escape that hit runc and shows it fails here.

mod common;

use std::os::fd::RawFd;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// Opens `path` without O_CLOEXEC at a descriptor >= 100, as a careless caller would leak it.
fn leak_fd(path: &Path) -> RawFd {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("cstr");
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY) };
    assert!(fd >= 0, "open {}", path.display());
    // SAFETY: F_DUPFD on a descriptor we own; the original is closed right after.
    let high = unsafe { libc::fcntl(fd, libc::F_DUPFD, 100) };
    // SAFETY: closing the descriptor opened above, which nothing else uses.
    unsafe { libc::close(fd) };
    assert!(high >= 100);
    high
}

fn close_fd(fd: RawFd) {
    // SAFETY: closing a descriptor this test opened.
    unsafe { libc::close(fd) };
}

fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn caller_descriptors_do_not_leak_into_the_container() {
    let mut b = Bundle::new("fdleak");
    let fd = leak_fd(b.dir.path());
    b.script("ls /proc/self/fd");
    let out = b.run();
    close_fd(fd);
    assert!(out.status.success(), "{}", stderr(&out));
    let fds: Vec<String> = stdout(&out)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert!(!fds.contains(&fd.to_string()), "fd {fd} leaked: {fds:?}");
    // 0-2 plus the directory ls itself opened.
    assert!(fds.len() <= 4, "unexpected descriptors: {fds:?}");
}

#[test]
fn cwd_through_a_leaked_fd_is_refused() {
    let mut b = Bundle::new("cwdleak");
    let host_dir = b.dir.path().join("host-secret");
    std::fs::create_dir(&host_dir).expect("mkdir");
    std::fs::write(host_dir.join("secret"), "x").expect("write");
    let fd = leak_fd(&host_dir);
    b.config["process"]["cwd"] = json!(format!("/proc/self/fd/{fd}"));
    b.script("ls; cat secret");
    let out = b.run();
    close_fd(fd);
    assert!(
        !out.status.success(),
        "the container started in a host directory: {}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains("secret"), "{}", stdout(&out));
}

#[test]
fn mount_targets_cannot_escape_through_symlinks() {
    let mut b = Bundle::new("symlink");
    let outside = b.dir.path().join("outside");
    std::fs::create_dir(&outside).expect("mkdir");
    // Absolute and relative links that point out of the rootfs on the host.
    std::os::unix::fs::symlink(&outside, b.rootfs().join("evil")).expect("symlink");
    std::os::unix::fs::symlink("../../../outside", b.rootfs().join("up")).expect("symlink");
    let inside = b
        .rootfs()
        .join(outside.strip_prefix("/").expect("absolute"));
    std::fs::create_dir_all(&inside).expect("mkdir");
    // `..` is clamped at the rootfs, so "up" names <rootfs>/outside.
    std::fs::create_dir_all(b.rootfs().join("outside")).expect("mkdir");
    let mounts = b.config["mounts"].as_array_mut().expect("mounts");
    mounts.push(
        json!({"destination": "/evil", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]}),
    );
    mounts.push(json!({"destination": "/up/sub", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]}));
    b.config["root"]["readonly"] = json!(false);
    b.script("touch /evil/marker /up/sub/marker && echo ok");
    let out = b.run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !outside.join("marker").exists(),
        "mount landed on the host through /evil"
    );
    assert!(
        !outside.join("sub").exists(),
        "mount landed on the host through /up"
    );
    assert!(!mount_left(&outside.display().to_string()));
    assert!(
        b.rootfs().join("outside/sub").is_dir(),
        "the relative link resolved inside the rootfs"
    );
}

#[test]
fn runtime_binary_cannot_be_overwritten_from_the_container() {
    let mut b = Bundle::new("cve5736");
    // Attack a private copy so a regression cannot destroy the binary under test.
    let victim = b.dir.path().join("wharf-runtime-copy");
    std::fs::copy(WHARF, &victim).expect("copy runtime");
    let original = std::fs::read(&victim).expect("read");
    b.runtime = victim.clone();
    b.config["root"]["readonly"] = json!(false);
    b.script("sleep 1000");
    let out = b.create();
    assert!(out.status.success(), "{}", stderr(&out));
    // While init (runtime code) is pid 1, grab its executable; after start, when no runtime
    // process runs any more, try to write through that handle.
    let attack =
        "exec 3</proc/1/exe; touch /tmp/opened; while [ ! -e /tmp/go ]; do sleep 0.05; done; \
                  if (echo pwned > /proc/self/fd/3) 2>/dev/null; then echo wrote > /tmp/result; \
                  else echo denied > /tmp/result; fi";
    let st = b
        .cmd()
        .args(["exec", "-d", &b.id, "sh", "-c", attack])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("exec");
    assert!(st.success());
    let tmp = b.rootfs().join("tmp");
    wait_for(&tmp.join("opened"));
    assert!(b.verb("start", &[]).status.success());
    std::fs::write(tmp.join("go"), "").expect("go");
    wait_for(&tmp.join("result"));
    let result = std::fs::read_to_string(tmp.join("result")).expect("result");
    assert_eq!(result.trim(), "denied");
    assert!(
        std::fs::read(&victim).expect("read") == original,
        "runtime binary was modified"
    );
}

#[test]
fn container_does_not_hold_the_callers_pipes() {
    let mut b = Bundle::new("pipes");
    b.script("sleep 1000");
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe() writes.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // The write end is inherited by `create` (no O_CLOEXEC), as a careless caller's would be.
    let out = b.create();
    close_fd(fds[1]);
    assert!(out.status.success(), "{}", stderr(&out));
    // EOF on the read end proves no process (init included) kept the write end.
    let mut pfd = libc::pollfd {
        fd: fds[0],
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd; bounded wait so a regression fails instead of hanging.
    let n = unsafe { libc::poll(&mut pfd, 1, 20_000) };
    close_fd(fds[0]);
    assert_eq!(n, 1, "the container still holds the caller's pipe");
    assert!(pfd.revents & libc::POLLHUP != 0);
}
