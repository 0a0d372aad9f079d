//! End-to-end (root): terminals and resizing, detachment from the launcher, reconnection, RSS.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::process::Command;

use common::Fixture;
use wharf_shim_proto::{files, Request, Response, Status, StdioConfig, WindowSize};

/// Reads raw tty bytes until `needle` shows up or the stream ends; returns everything read.
fn read_until(stream: &mut impl Read, needle: &str) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains(needle) {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

fn tty(stdin: bool) -> StdioConfig {
    StdioConfig {
        tty: true,
        stdin,
        stdin_once: false,
        initial_size: Some(WindowSize {
            height: 20,
            width: 70,
        }),
    }
}

#[test]
fn tty_gets_initial_size_and_resizes() {
    let f = Fixture::new(
        &["sh", "-c", "stty size; read x; stty size"],
        tty(true),
        |_| {},
    );
    f.launch().expect("launch");
    let (mut stream, resp) = f.open(&Request::Attach {
        stdin: true,
        stdout: true,
        stderr: true,
    });
    assert_eq!(resp, Response::Ok);
    let wait = f.begin_wait();
    f.start();
    assert!(read_until(&mut stream, "20 70").contains("20 70"));
    let resize = Request::Resize {
        exec_id: None,
        size: WindowSize {
            height: 33,
            width: 77,
        },
    };
    assert_eq!(f.request(&resize), Response::Ok);
    stream.get_mut().write_all(b"go\n").expect("stdin");
    assert!(read_until(&mut stream, "33 77").contains("33 77"));
    assert_eq!(f.end_wait(wait).exit_code, 0);
    // With a tty there is one stream, logged as stdout, raw (\r\n from the line discipline).
    let entries = f.log_entries(&f.cfg.log.path);
    assert!(
        entries
            .iter()
            .any(|e| e.log.contains("20 70") && e.stream == "stdout"),
        "{entries:?}"
    );
}

#[test]
fn exec_with_its_own_tty_resizes_independently() {
    let f = Fixture::new(&["sleep", "1000"], StdioConfig::default(), |_| {});
    f.launch().expect("launch");
    f.start();
    let process = serde_json::json!({
        "args": ["sh", "-c", "read x; stty size; exit 4"], "cwd": "/", "env": ["PATH=/bin"],
        "user": {"uid": 0, "gid": 0}, "terminal": true,
    });
    let (mut stream, resp) = f.open(&Request::Exec {
        exec_id: "tty-exec".into(),
        process,
        stdin: true,
        stdout: true,
        stderr: true,
        detach: false,
    });
    assert!(matches!(resp, Response::Started { .. }), "{resp:?}");
    let size = WindowSize {
        height: 41,
        width: 99,
    };
    let resize = Request::Resize {
        exec_id: Some("tty-exec".into()),
        size,
    };
    assert_eq!(f.request(&resize), Response::Ok);
    // The container itself has no terminal.
    let bad = Request::Resize {
        exec_id: None,
        size,
    };
    assert!(matches!(f.request(&bad), Response::Error { .. }));
    stream.get_mut().write_all(b"go\n").expect("stdin");
    let mut out = String::new();
    let _ = stream.read_to_string(&mut out);
    assert!(out.contains("41 99"), "{out:?}");
    match f.request(&Request::ExecState {
        exec_id: "tty-exec".into(),
        wait: true,
    }) {
        Response::ExecState { exit_code, .. } => assert_eq!(exit_code, Some(4)),
        other => panic!("exec state: {other:?}"),
    }
    let wait = f.begin_wait();
    f.request(&Request::Kill {
        signal: 9,
        all: false,
    });
    assert_eq!(f.end_wait(wait).exit_code, 137);
}

/// Fields 4-6 of /proc/<pid>/stat: (ppid, pgrp, session).
fn stat_ids(pid: &str) -> (i32, i32, i32) {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after_comm = &stat[stat.rfind(')').expect("comm end") + 2..];
    let f: Vec<i32> = after_comm
        .split(' ')
        .skip(1)
        .take(3)
        .map(|x| x.parse().expect("id"))
        .collect();
    (f[0], f[1], f[2])
}

#[test]
fn shim_outlives_its_launcher_and_serves_new_connections() {
    let f = Fixture::new(&["sleep", "1000"], StdioConfig::default(), |_| {});
    fs::write(
        f.dir().join(files::CONFIG),
        serde_json::to_vec(&f.cfg).expect("ser"),
    )
    .expect("cfg");
    // Launch from an intermediate shell that exits, holding a pipe as its stdout: the shim must
    // neither keep that pipe open (output() would hang) nor stay in our session or group.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} {}; echo launched",
            env!("CARGO_BIN_EXE_wharf-shim"),
            f.dir().display()
        ))
        .output()
        .expect("launch via sh");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "launched");
    assert!(out.status.success());
    let pid = f.shim_pid();
    let (ppid, pgrp, sid) = stat_ids(&pid.to_string());
    let (_, my_pgrp, my_sid) = stat_ids("self");
    assert_ne!(ppid, std::process::id() as i32);
    assert_ne!(pgrp, my_pgrp);
    assert_ne!(sid, my_sid);
    for fd in 0..3 {
        let target = fs::read_link(format!("/proc/{pid}/fd/{fd}")).expect("fd link");
        assert_eq!(target, std::path::Path::new("/dev/null"));
    }
    // A "restarted daemon": fresh connections only.
    match f.request(&Request::State) {
        Response::State(st) => assert_eq!(st.status, Status::Created),
        other => panic!("state: {other:?}"),
    }
    let init = f.start();
    match f.request(&Request::State) {
        Response::State(st) => assert_eq!((st.status, st.pid), (Status::Running, init)),
        other => panic!("state: {other:?}"),
    }
    let wait = f.begin_wait();
    f.request(&Request::Kill {
        signal: 9,
        all: false,
    });
    let exit = f.end_wait(wait);
    // Answers after the exit are the same, from the shim and from exit.json.
    assert_eq!(f.request(&Request::Wait), Response::Exited(exit.clone()));
    match f.request(&Request::State) {
        Response::State(st) => {
            assert_eq!((st.status, st.exit), (Status::Stopped, Some(exit.clone())))
        }
        other => panic!("state: {other:?}"),
    }
    let on_disk = fs::read(f.dir().join(files::EXIT)).expect("exit.json");
    assert_eq!(
        wharf_shim_proto::decode_line::<wharf_shim_proto::ExitStatus>(&on_disk).expect("json"),
        exit
    );
    // Shutdown lets it go: the socket disappears and the process ends.
    assert_eq!(f.request(&Request::Shutdown), Response::Ok);
    assert!(!f.dir().join(files::SOCKET).exists());
    wait_gone(pid);
}

#[test]
fn idle_shim_rss_is_small() {
    let f = Fixture::new(&["sleep", "1000"], StdioConfig::default(), |_| {});
    f.launch().expect("launch");
    f.start();
    let pid = f.shim_pid();
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    println!("idle wharf-shim RSS: {rss_kb} kB");
    assert!(rss_kb < 4096, "idle shim uses {rss_kb} kB");
    let wait = f.begin_wait();
    f.request(&Request::Kill {
        signal: 9,
        all: false,
    });
    assert_eq!(f.end_wait(wait).exit_code, 137);
}

/// Waits (bounded) until process `pid` is gone or a zombie; fails the test otherwise.
fn wait_gone(pid: i32) {
    for _ in 0..600 {
        let alive = fs::read_to_string(format!("/proc/{pid}/status"))
            .map(|s| !s.contains("State:\tZ"))
            .unwrap_or(false);
        if !alive {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("shim {pid} did not exit");
}

#[test]
fn shutdown_of_a_created_container_kills_it_and_exits() {
    let f = Fixture::new(&["sleep", "1000"], StdioConfig::default(), |_| {});
    f.launch().expect("launch");
    let pid = f.shim_pid();
    let wait = f.begin_wait();
    assert_eq!(f.request(&Request::Shutdown), Response::Ok);
    assert_eq!(f.end_wait(wait).exit_code, 137);
    wait_gone(pid);
    let on_disk = fs::read(f.dir().join(files::EXIT)).expect("exit.json");
    let exit: wharf_shim_proto::ExitStatus =
        wharf_shim_proto::decode_line(&on_disk).expect("exit json");
    assert_eq!(exit.exit_code, 137);
    // The runtime no longer knows the container.
    let state = Command::new(&f.runtime)
        .arg("--root")
        .arg(f.tmp.path().join("root"))
        .args(["state", &f.id])
        .output()
        .expect("runtime state");
    assert!(!state.status.success());
}

#[test]
fn a_restarted_container_gets_a_fresh_shim_that_the_old_one_leaves_alone() {
    let f = Fixture::new(&["sh", "-c", "exit 7"], StdioConfig::default(), |_| {});
    f.launch().expect("first launch");
    let old = f.shim_pid();
    let wait = f.begin_wait();
    f.start();
    assert_eq!(f.end_wait(wait).exit_code, 7);
    // `docker start` again while the old shim still lingers after the exit.
    f.launch().expect("second launch");
    let new = f.shim_pid();
    assert_ne!(old, new);
    assert!(
        !f.dir().join(files::EXIT).exists(),
        "the previous run's exit status is gone"
    );
    // The old shim finishes its linger and exits without unlinking the new shim's socket.
    wait_gone(old);
    match f.request(&Request::State) {
        Response::State(st) => assert_eq!(st.status, Status::Created),
        other => panic!("state: {other:?}"),
    }
    let wait = f.begin_wait();
    f.start();
    assert_eq!(f.end_wait(wait).exit_code, 7);
}
