//! End-to-end: the real shim binary drives a real runtime (root).

mod common;

use std::fs;

use common::{close_stdin, read_frames, Fixture};
use wharf_shim_proto::{files, ExitStatus, Request, Response, Status, StdioConfig};

fn pipes(stdin: bool) -> StdioConfig {
    StdioConfig {
        tty: false,
        stdin,
        stdin_once: stdin,
        initial_size: None,
    }
}

#[test]
fn output_is_logged_and_exit_code_recorded() {
    let f = Fixture::new(
        &["sh", "-c", "echo out; echo err >&2; exit 3"],
        pipes(false),
        |_| {},
    );
    f.launch().expect("launch");
    match f.request(&Request::State) {
        Response::State(st) => assert_eq!(st.status, Status::Created),
        other => panic!("state: {other:?}"),
    }
    let wait = f.begin_wait();
    assert!(f.start() > 0);
    let st = f.end_wait(wait);
    assert_eq!(st.exit_code, 3);
    assert!(!st.oom_killed);
    let on_disk: ExitStatus =
        serde_json::from_slice(&fs::read(f.dir().join(files::EXIT)).expect("exit.json"))
            .expect("json");
    assert_eq!(on_disk, st);
    let entries = f.log_entries(&f.cfg.log.path);
    let pairs: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e.log.as_str(), e.stream.as_str()))
        .collect();
    assert!(pairs.contains(&("out\n", "stdout")), "{pairs:?}");
    assert!(pairs.contains(&("err\n", "stderr")), "{pairs:?}");
    assert!(entries.iter().all(|e| e.time.ends_with('Z')));
}

#[test]
fn sigkill_gives_137() {
    let f = Fixture::new(&["sleep", "1000"], pipes(false), |_| {});
    f.launch().expect("launch");
    let pid = f.start();
    match f.request(&Request::State) {
        Response::State(st) => assert_eq!((st.status, st.pid), (Status::Running, pid)),
        other => panic!("state: {other:?}"),
    }
    // The shim blocks SIGCHLD for its signalfd; the container must not inherit that mask.
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("init status");
    let blocked = status
        .lines()
        .find_map(|l| l.strip_prefix("SigBlk:"))
        .expect("SigBlk");
    assert_eq!(
        u64::from_str_radix(blocked.trim(), 16).expect("mask"),
        0,
        "{blocked}"
    );
    let wait = f.begin_wait();
    assert_eq!(
        f.request(&Request::Kill {
            signal: 9,
            all: false
        }),
        Response::Ok
    );
    assert_eq!(f.end_wait(wait).exit_code, 137);
}

#[test]
fn attach_multiplexes_and_delivers_stdin() {
    let f = Fixture::new(&["sh", "-c", "cat; echo done >&2"], pipes(true), |_| {});
    f.launch().expect("launch");
    let (mut stream, resp) = f.open(&Request::Attach {
        stdin: true,
        stdout: true,
        stderr: true,
    });
    assert_eq!(resp, Response::Ok);
    let wait = f.begin_wait();
    f.start();
    use std::io::Write;
    stream.get_mut().write_all(b"hello\n").expect("stdin");
    close_stdin(&stream); // stdin_once: cat sees EOF
    let (out, err) = read_frames(&mut stream);
    assert_eq!(String::from_utf8_lossy(&out), "hello\n");
    assert_eq!(String::from_utf8_lossy(&err), "done\n");
    assert_eq!(f.end_wait(wait).exit_code, 0);
}

#[test]
fn kill_on_a_stopped_container_and_bad_requests_are_typed_errors() {
    let f = Fixture::new(&["sleep", "1000"], pipes(false), |_| {});
    f.launch().expect("launch");
    assert!(matches!(
        f.request(&Request::Resume),
        Response::Error {
            code: wharf_shim_proto::ErrorCode::Conflict,
            ..
        }
    ));
    assert!(matches!(
        f.request(&Request::ExecState {
            exec_id: "nope".into(),
            wait: false
        }),
        Response::Error {
            code: wharf_shim_proto::ErrorCode::NotFound,
            ..
        }
    ));
    f.start();
    assert!(matches!(f.request(&Request::Start), Response::Error { .. }));
    let wait = f.begin_wait();
    f.request(&Request::Kill {
        signal: 9,
        all: true,
    });
    assert_eq!(f.end_wait(wait).exit_code, 137);
}

#[test]
fn pause_and_resume() {
    let f = Fixture::new(&["sleep", "1000"], pipes(false), |_| {});
    f.launch().expect("launch");
    f.start();
    let status = |f: &Fixture| match f.request(&Request::State) {
        Response::State(st) => st.status,
        other => panic!("state: {other:?}"),
    };
    assert_eq!(f.request(&Request::Pause), Response::Ok);
    assert_eq!(status(&f), Status::Paused);
    let freezer = fs::read_to_string(format!("/sys/fs/cgroup/freezer/{}/freezer.state", f.id))
        .expect("freezer state");
    assert_eq!(freezer.trim(), "FROZEN");
    assert_eq!(f.request(&Request::Resume), Response::Ok);
    assert_eq!(status(&f), Status::Running);
    // SIGTERM would be ignored: `sleep` is pid 1 of its namespace and has no handler.
    let wait = f.begin_wait();
    f.request(&Request::Kill {
        signal: 9,
        all: false,
    });
    assert_eq!(f.end_wait(wait).exit_code, 137);
}

#[test]
fn exec_streams_output_and_keeps_its_exit_code() {
    let f = Fixture::new(&["sleep", "1000"], pipes(false), |_| {});
    f.launch().expect("launch");
    f.start();
    let process = serde_json::json!({
        "args": ["sh", "-c", "echo hi; echo oops >&2; exit 5"],
        "cwd": "/",
        "env": ["PATH=/bin:/usr/bin"],
        "user": {"uid": 0, "gid": 0},
        "terminal": false,
    });
    let (mut stream, resp) = f.open(&Request::Exec {
        exec_id: "e1".into(),
        process,
        stdin: false,
        stdout: true,
        stderr: true,
        detach: false,
    });
    assert!(
        matches!(resp, Response::Started { pid } if pid > 0),
        "{resp:?}"
    );
    let (out, err) = read_frames(&mut stream);
    assert_eq!(
        (out.as_slice(), err.as_slice()),
        (&b"hi\n"[..], &b"oops\n"[..])
    );
    match f.request(&Request::ExecState {
        exec_id: "e1".into(),
        wait: true,
    }) {
        Response::ExecState {
            running, exit_code, ..
        } => assert_eq!((running, exit_code), (false, Some(5))),
        other => panic!("exec state: {other:?}"),
    }
    // Exec output is not the container's: it must not reach the log.
    let log = fs::read_to_string(&f.cfg.log.path).unwrap_or_default();
    assert!(!log.contains("hi") && !log.contains("oops"), "{log}");
    let wait = f.begin_wait();
    f.request(&Request::Kill {
        signal: 9,
        all: false,
    });
    assert_eq!(f.end_wait(wait).exit_code, 137);
}

#[test]
fn exec_with_stdin_echoes() {
    let f = Fixture::new(&["sleep", "1000"], pipes(false), |_| {});
    f.launch().expect("launch");
    f.start();
    let process = serde_json::json!({
        "args": ["cat"], "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0},
    });
    let (mut stream, resp) = f.open(&Request::Exec {
        exec_id: "cat-1".into(),
        process,
        stdin: true,
        stdout: true,
        stderr: true,
        detach: false,
    });
    assert!(matches!(resp, Response::Started { .. }), "{resp:?}");
    use std::io::Write;
    stream.get_mut().write_all(b"ping\n").expect("stdin");
    close_stdin(&stream);
    let (out, _) = read_frames(&mut stream);
    assert_eq!(out, b"ping\n");
    let wait = f.begin_wait();
    f.request(&Request::Kill {
        signal: 9,
        all: false,
    });
    assert_eq!(f.end_wait(wait).exit_code, 137);
}

#[test]
fn log_rotation_with_small_max_size() {
    let script = "i=0; while [ $i -lt 60 ]; do echo line$i; i=$((i+1)); done";
    let mut f = Fixture::new(&["sh", "-c", script], pipes(false), |_| {});
    f.cfg.log.max_size = Some(300);
    f.cfg.log.max_file = 3;
    f.launch().expect("launch");
    let wait = f.begin_wait();
    f.start();
    assert_eq!(f.end_wait(wait).exit_code, 0);
    let base = f.cfg.log.path.clone();
    let rotated = |n: u32| std::path::PathBuf::from(format!("{}.{n}", base.display()));
    let current = f.log_entries(&base);
    assert_eq!(current.last().map(|e| e.log.as_str()), Some("line59\n"));
    let older = f.log_entries(&rotated(1));
    let oldest = f.log_entries(&rotated(2));
    assert!(!rotated(3).exists());
    // The three files hold consecutive, ordered lines.
    let all: Vec<String> = oldest
        .iter()
        .chain(&older)
        .chain(&current)
        .map(|e| e.log.clone())
        .collect();
    let first: usize = all[0]
        .trim()
        .trim_start_matches("line")
        .parse()
        .expect("number");
    for (i, l) in all.iter().enumerate() {
        assert_eq!(l, &format!("line{}\n", first + i));
    }
    for p in [base.clone(), rotated(1), rotated(2)] {
        // Docker's rule: rotate once the file reached max-size, so at most one entry over.
        assert!(
            fs::metadata(&p).expect("stat").len() < 300 + 100,
            "{}",
            p.display()
        );
    }
}

#[test]
fn create_failure_reports_the_runtime_error() {
    let f = Fixture::new(&["true"], pipes(false), |spec| {
        spec["root"]["path"] = serde_json::json!("no-such-rootfs");
    });
    let err = f.launch().expect_err("create must fail");
    assert!(!err.trim().is_empty());
    assert!(
        err.contains("no-such-rootfs") || err.contains("no such file"),
        "{err}"
    );
    assert!(!f.dir().join(files::SOCKET).exists());
}

#[test]
fn local_log_driver_writes_docker_local_records() {
    let mut f = Fixture::new(&["sh", "-c", "echo a; echo b >&2"], pipes(false), |_| {});
    f.cfg.log.driver = wharf_shim_proto::LogDriver::Local;
    f.launch().expect("launch");
    let wait = f.begin_wait();
    f.start();
    assert_eq!(f.end_wait(wait).exit_code, 0);
    let data = fs::read(&f.cfg.log.path).expect("log");
    let entries = wharf_shim_proto::log::read_local(&data).expect("decode");
    let got: Vec<(&[u8], &str)> = entries
        .iter()
        .map(|e| (e.line.as_slice(), e.source.as_str()))
        .collect();
    assert!(
        got.contains(&(&b"a"[..], "stdout")) && got.contains(&(&b"b"[..], "stderr")),
        "{got:?}"
    );
}

#[test]
fn oom_kill_is_detected() {
    let f = Fixture::new(
        &["sh", "-c", "x=aaaaaaaa; while true; do x=$x$x; done"],
        pipes(false),
        |spec| {
            spec["linux"]["resources"]["memory"] =
                serde_json::json!({"limit": 16 << 20, "swap": 16 << 20});
        },
    );
    f.launch().expect("launch");
    let wait = f.begin_wait();
    f.start();
    let st = f.end_wait(wait);
    assert_eq!(st.exit_code, 137);
    assert!(st.oom_killed);
}

#[test]
fn a_client_that_never_reads_cannot_stall_the_container_or_the_log() {
    let script = "head -c 3000000 /dev/zero | tr '\\0' x; echo; echo end";
    let f = Fixture::new(&["sh", "-c", script], pipes(false), |_| {});
    f.launch().expect("launch");
    // Attached, but never reads: it is dropped once its backlog overflows.
    let (_stalled, resp) = f.open(&Request::Attach {
        stdin: false,
        stdout: true,
        stderr: true,
    });
    assert_eq!(resp, Response::Ok);
    let wait = f.begin_wait();
    f.start();
    assert_eq!(f.end_wait(wait).exit_code, 0);
    let entries = f.log_entries(&f.cfg.log.path);
    let logged: usize = entries.iter().map(|e| e.log.len()).sum();
    assert_eq!(logged, 3_000_000 + "\n".len() + "end\n".len());
    assert_eq!(entries.last().map(|e| e.log.as_str()), Some("end\n"));
    // Docker's 16 KiB partial entries, no newline until the real one.
    assert!(entries[0].log.len() == 16 * 1024 && !entries[0].log.ends_with('\n'));
}

#[test]
fn update_changes_the_cgroup_limits() {
    let f = Fixture::new(&["sleep", "1000"], pipes(false), |_| {});
    f.launch().expect("launch");
    f.start();
    let resources = serde_json::json!({"memory": {"limit": 64 << 20, "swap": 64 << 20}});
    assert_eq!(f.request(&Request::Update { resources }), Response::Ok);
    let limit = fs::read_to_string(format!(
        "/sys/fs/cgroup/memory/{}/memory.limit_in_bytes",
        f.id
    ))
    .expect("memory limit");
    assert_eq!(limit.trim(), (64u64 << 20).to_string());
    let wait = f.begin_wait();
    f.request(&Request::Kill {
        signal: 9,
        all: false,
    });
    assert_eq!(f.end_wait(wait).exit_code, 137);
}

#[test]
fn start_failure_is_reported_and_shutdown_still_cleans_up() {
    let f = Fixture::new(&["/bin/bad"], pipes(false), |_| {});
    // Executable but not a program: runc's create checks pass, the exec at start fails.
    let bad = f.cfg.bundle.join("rootfs/bin/bad");
    fs::write(&bad, b"\x7fELF garbage").expect("write");
    fs::set_permissions(&bad, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    f.launch().expect("launch");
    let wait = f.begin_wait();
    let answer = f.request(&Request::Start);
    println!("start answer: {answer:?}");
    match answer {
        Response::Error { message, .. } => assert!(message.contains("/bin/bad"), "{message}"),
        // Some runtimes report the failed exec only through the exit status.
        Response::Started { .. } => {}
        other => panic!("start: {other:?}"),
    }
    assert_eq!(f.request(&Request::Shutdown), Response::Ok);
    let exit = f.end_wait(wait);
    assert_ne!(exit.exit_code, 0);
    assert!(f.dir().join(files::EXIT).exists());
}

#[test]
fn attach_ends_with_a_clean_eof_even_after_ignored_input() {
    let f = Fixture::new(&["sh", "-c", "echo x"], pipes(false), |_| {});
    f.launch().expect("launch");
    // The container has no stdin, so what the client writes is never consumed.
    let (mut stream, resp) = f.open(&Request::Attach {
        stdin: true,
        stdout: true,
        stderr: true,
    });
    assert_eq!(resp, Response::Ok);
    use std::io::{Read, Write};
    stream
        .get_mut()
        .write_all(b"ignored input\n")
        .expect("write");
    let wait = f.begin_wait();
    f.start();
    let mut all = Vec::new();
    stream
        .read_to_end(&mut all)
        .expect("a clean EOF, not a connection reset");
    let expect = [&wharf_shim_proto::stream::frame_header(1, 2)[..], b"x\n"].concat();
    assert_eq!(all, expect);
    assert_eq!(f.end_wait(wait).exit_code, 0);
}
