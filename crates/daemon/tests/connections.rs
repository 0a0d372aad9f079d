//! API connection bounds: 20,000 idle sockets must not stall `docker ps` nor exhaust the
//! daemon's descriptors or memory, and oversized or malformed requests get Docker's statuses
//! (413 body, 431 headers, 400 without Host).

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::Daemon;

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |r| r.count())
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The cap wharfd picks under this machine's 20,000-descriptor limit
/// (server::conns::max_connections).
const CAP: usize = 2048;
const IDLE: usize = 20_000;
/// Processes holding the idle connections: one alone would need more descriptors than the
/// limit (which even root cannot raise here, without CAP_SYS_RESOURCE).
const HOLDERS: usize = 4;

/// A python process holding `n` idle connections to `sock` until its stdin closes.
fn hold_connections(sock: &std::path::Path, n: usize) -> std::process::Child {
    let script = r#"
import socket, sys
conns = []
for i in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])
    conns.append(s)
print('held', flush=True)
sys.stdin.read()
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(sock)
        .arg(n.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn python3");
    let mut line = String::new();
    let out = child.stdout.as_mut().expect("stdout");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line).expect("read");
    assert_eq!(line.trim(), "held", "holder failed to connect");
    child
}

#[test]
fn docker_ps_answers_while_20000_idle_connections_are_held() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&[]);
    let pid = d.pid();
    d.ok(&["ps"]);
    let (fds_before, rss_before) = (fd_count(pid), rss_kib(pid));

    // The oldest connection, ours, to see it is the one closed first.
    let mut first = UnixStream::connect(&d.sock).expect("connect");
    let mut holders: Vec<_> = (0..HOLDERS)
        .map(|_| hold_connections(&d.sock, IDLE / HOLDERS))
        .collect();
    let mut last = UnixStream::connect(&d.sock).expect("connect");
    let started = Instant::now();
    let ps = d.docker(&["ps"]);
    let took = started.elapsed();
    assert!(
        ps.status.success(),
        "docker ps with {IDLE} idle connections: {}",
        String::from_utf8_lossy(&ps.stderr)
    );
    // The figure for the report; the property asserted is that ps got through at all.
    eprintln!("docker ps with {IDLE} idle connections held: {took:?}");
    assert_eq!(d.raw("GET", "/_ping", b"").0, 200);
    let fds_during = fd_count(pid);
    assert!(
        fds_during <= fds_before + CAP + 16,
        "{fds_during} descriptors open (cap {CAP}, {fds_before} before)"
    );
    let rss_during = rss_kib(pid);

    // The oldest idle connection was closed to make room; the newest still works.
    let mut probe = [0u8; 1];
    first
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    assert_eq!(first.read(&mut probe).expect("EOF"), 0, "oldest idle kept");
    last.write_all(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut resp = Vec::new();
    last.read_to_end(&mut resp).expect("read");
    assert!(
        resp.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&resp)
    );

    for h in &mut holders {
        drop(h.stdin.take());
        let _ = h.wait();
    }
    common::wait_for("the daemon to close the dropped connections", || {
        fd_count(pid) <= fds_before + 16
    });
    let rss_after = rss_kib(pid);
    eprintln!("wharfd RSS: {rss_before} KiB before, {rss_during} KiB with {IDLE} idle connections held, {rss_after} KiB after");
    assert!(
        rss_during <= rss_before + 96 * 1024,
        "RSS grew from {rss_before} to {rss_during} KiB"
    );
    assert!(
        rss_after <= rss_before + 96 * 1024,
        "RSS stayed at {rss_after} KiB (from {rss_before})"
    );
    d.ok(&["ps"]);
}

/// Sends `head` (and `body`) raw; returns the status line's code.
fn status_of(d: &Daemon, head: &str, body: &[u8]) -> u16 {
    let mut s = UnixStream::connect(&d.sock).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    // The daemon may answer before the whole body is in.
    let _ = s
        .write_all(head.as_bytes())
        .and_then(|()| s.write_all(body));
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    common::parse_response(&resp).0
}

#[test]
fn oversized_and_hostless_requests_get_docker_statuses() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&[]);
    // A JSON body over the 4 MiB limit: 413.
    let body = vec![b' '; 5 << 20];
    let head = format!(
        "POST /v1.45/containers/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    assert_eq!(status_of(&d, &head, &body), 413);
    // Headers over the 256 KiB limit: 431.
    let big = "a".repeat(300 << 10);
    let head =
        format!("GET /_ping HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\nConnection: close\r\n\r\n");
    assert_eq!(status_of(&d, &head, b""), 431);
    // HTTP/1.1 without Host: 400; HTTP/1.0 may omit it.
    assert_eq!(
        status_of(&d, "GET /_ping HTTP/1.1\r\nConnection: close\r\n\r\n", b""),
        400
    );
    assert_eq!(status_of(&d, "GET /_ping HTTP/1.0\r\n\r\n", b""), 200);
    d.ok(&["ps"]);
}
