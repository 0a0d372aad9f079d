//! `create --console-socket` with `process.terminal: true`, as containerd's shim drives it:
//! the caller receives the pty master over SCM_RIGHTS and talks to the process through it.

mod common;

use std::io::{IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::Stdio;

use common::*;
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use serde_json::json;

/// Receives the one descriptor the runtime sends on the console socket.
fn recv_master(conn: &UnixStream) -> OwnedFd {
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .expect("recvmsg on the console socket");
    let fd = msg
        .cmsgs()
        .expect("cmsgs")
        .find_map(|c| match c {
            ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
            _ => None,
        })
        .expect("SCM_RIGHTS with the pty master");
    // SAFETY: the kernel just installed this descriptor for us and nothing else owns it.
    #[allow(unsafe_code)]
    unsafe {
        OwnedFd::from_raw_fd(fd)
    }
}

#[allow(unsafe_code)]
fn set_window_size(master: &OwnedFd, rows: u16, cols: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize that lives for the whole call.
    assert_eq!(
        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) },
        0,
        "TIOCSWINSZ"
    );
}

/// Creates a terminal container under `runtime`, types a line into it, and returns what the
/// terminal showed (carriage returns dropped) and the process's exit status.
fn terminal_session(runtime: &Path) -> (String, i32) {
    // create's intermediate exits at once: adopt the orphaned init to learn its exit status.
    adopt_orphans();
    let mut b = Bundle::with_runtime("tty", runtime);
    b.config["process"]["terminal"] = json!(true);
    b.script("read line; echo got:$line; tty; stty size; exit 3");
    b.write();
    let sock = b.dir.path().join("console.sock");
    let listener = UnixListener::bind(&sock).expect("bind console socket");
    let mut create = b
        .cmd()
        .arg("create")
        .arg("--bundle")
        .arg(b.bundle())
        .arg("--console-socket")
        .arg(&sock)
        .arg(&b.id)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn create");
    let (conn, _) = listener.accept().expect("accept the runtime's connection");
    let master = recv_master(&conn);
    assert!(
        create.wait().expect("wait create").success(),
        "{} create failed",
        runtime.display()
    );
    set_window_size(&master, 24, 80);
    let mut reader = std::fs::File::from(master.try_clone().expect("dup master"));
    // Reads until the slave side is gone (EIO), i.e. every process holding it has exited.
    let output = std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut buf = [0u8; 1024];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&out).replace('\r', "")
    });
    let st: serde_json::Value =
        serde_json::from_slice(&b.verb("state", &[]).stdout).expect("state json");
    let pid = st["pid"]
        .as_i64()
        .and_then(|p| i32::try_from(p).ok())
        .expect("pid");
    let out = b.verb("start", &[]);
    assert!(out.status.success(), "start: {}", stderr(&out));
    std::fs::File::from(master)
        .write_all(b"hello\n")
        .expect("type into the terminal");
    let code = match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None)
        .expect("waitpid init")
    {
        nix::sys::wait::WaitStatus::Exited(_, code) => code,
        other => panic!("init ended with {other:?}"),
    };
    (output.join().expect("reader"), code)
}

#[allow(unsafe_code)]
fn adopt_orphans() {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer and touches no memory.
    assert_eq!(
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) },
        0,
        "subreaper"
    );
}

fn assert_session(runtime: &Path) -> String {
    let (out, code) = terminal_session(runtime);
    assert_eq!(code, 3, "{}: {out}", runtime.display());
    assert!(
        out.contains("got:hello\n/dev/pts/0\n24 80\n"),
        "{}: {out:?}",
        runtime.display()
    );
    out
}

#[test]
fn console_socket_receives_a_working_pty_master() {
    assert_session(Path::new(WHARF));
}

#[test]
fn console_socket_session_matches_runc() {
    let runc = Path::new("/usr/sbin/runc");
    assert!(runc.exists(), "runc is required for the comparison tests");
    assert_eq!(assert_session(Path::new(WHARF)), assert_session(runc));
}
