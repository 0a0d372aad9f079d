//! Drives the client against a scripted HTTP peer on a real unix socket.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixListener;
use std::thread;

use wharf_client::{Client, ClientError, Host, Query, RequestBody};

/// Serves one canned response per connection, returning each request head it saw.
fn serve(responses: Vec<&'static [u8]>) -> (tempfile::TempDir, thread::JoinHandle<Vec<String>>) {
    let dir = tempfile::tempdir().unwrap();
    let listener = UnixListener::bind(dir.path().join("d.sock")).unwrap();
    let handle = thread::spawn(move || {
        let mut seen = Vec::new();
        for resp in responses {
            let (mut s, _) = listener.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                head.push_str(&line);
            }
            if let Some(len) = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.trim().parse::<usize>().ok())
            {
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                head.push_str(&String::from_utf8_lossy(&body));
            }
            s.write_all(resp).unwrap();
            seen.push(head);
        }
        seen
    });
    (dir, handle)
}

#[test]
fn negotiates_then_reads_chunked_json() {
    let (dir, server) = serve(vec![
        b"HTTP/1.1 200 OK\r\nApi-Version: 1.43\r\nContent-Length: 2\r\n\r\nOK",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n[{\"I\r\na\r\nd\":\"abc\"}]\r\n0\r\n\r\n",
    ]);
    let mut c = Client::new(Host::Unix(dir.path().join("d.sock")), None).unwrap();
    c.negotiate_version().unwrap();
    assert_eq!(c.version(), Some("1.43"));
    let v: serde_json::Value = c
        .get_json("/containers/json", &Query::new().flag("all", true))
        .unwrap();
    assert_eq!(v[0]["Id"], "abc");
    let seen = server.join().unwrap();
    assert!(seen[0].starts_with("GET /_ping HTTP/1.1\r\n"));
    assert!(seen[1].starts_with("GET /v1.43/containers/json?all=1 HTTP/1.1\r\n"));
}

#[test]
fn error_status_carries_daemon_message() {
    let (dir, server) = serve(vec![
        b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 35\r\n\r\n{\"message\":\"No such container: x\"}",
    ]);
    let c = Client::new(Host::Unix(dir.path().join("d.sock")), None).unwrap();
    let err = c
        .post(
            "/containers/x/start",
            &Query::new(),
            Some(&serde_json::json!({"a": 1})),
        )
        .err()
        .unwrap();
    assert!(matches!(&err, ClientError::Api { status: 404, .. }));
    assert_eq!(
        err.to_string(),
        "Error response from daemon: No such container: x"
    );
    let seen = server.join().unwrap();
    assert!(seen[0].contains("Content-Type: application/json"));
    assert!(seen[0].ends_with("{\"a\":1}"));
}

#[test]
fn hijack_reads_upgraded_stream_and_writes_input() {
    let dir = tempfile::tempdir().unwrap();
    let listener = UnixListener::bind(dir.path().join("d.sock")).unwrap();
    let server = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut head = String::new();
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        s.write_all(b"HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n\x01\x00\x00\x00\x00\x00\x00\x03hi\n")
            .unwrap();
        let mut input = String::new();
        r.read_to_string(&mut input).unwrap();
        s.write_all(b"\x01\x00\x00\x00\x00\x00\x00\x03bye").unwrap();
        (head, input)
    });
    let c = Client::new(Host::Unix(dir.path().join("d.sock")), None).unwrap();
    let h = c
        .hijack(
            "POST",
            "/containers/x/attach",
            &Query::new().flag("stream", true),
            None,
        )
        .unwrap();
    let (mut reader, writer) = h.into_split();
    let mut writer = writer.unwrap();
    writer.write_all(b"typed").unwrap();
    writer.shutdown_write().unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    wharf_client::copy_multiplexed(&mut reader, &mut out, &mut err).unwrap();
    assert_eq!(out, b"hi\nbye");
    let (head, input) = server.join().unwrap();
    assert!(head.contains("Connection: Upgrade\r\nUpgrade: tcp\r\n"));
    assert_eq!(input, "typed");
}

#[test]
fn streamed_request_body_is_chunked() {
    let dir = tempfile::tempdir().unwrap();
    let listener = UnixListener::bind(dir.path().join("d.sock")).unwrap();
    let server = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut all = Vec::new();
        // Read until the terminating zero chunk.
        while !all.ends_with(b"0\r\n\r\n") {
            let mut b = [0u8; 1];
            r.read_exact(&mut b).unwrap();
            all.push(b[0]);
        }
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
        String::from_utf8(all).unwrap()
    });
    let c = Client::new(Host::Unix(dir.path().join("d.sock")), None).unwrap();
    let mut data: &[u8] = b"tarbytes";
    c.request(
        "POST",
        "/images/load",
        &Query::new(),
        RequestBody::Stream {
            content_type: "application/x-tar",
            reader: &mut data,
        },
    )
    .unwrap();
    let sent = server.join().unwrap();
    assert!(sent.contains("Transfer-Encoding: chunked\r\n\r\n8\r\ntarbytes\r\n0\r\n\r\n"));
}

#[test]
fn send_then_read_response_later() {
    let (dir, server) = serve(vec![
        b"HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n{\"StatusCode\":3}",
    ]);
    let c = Client::new(Host::Unix(dir.path().join("d.sock")), None).unwrap();
    let pending = c
        .send(
            "POST",
            "/containers/x/wait",
            &Query::new().set("condition", "next-exit"),
            None,
        )
        .unwrap();
    let v: serde_json::Value = pending.response().unwrap().json().unwrap();
    let seen = server.join().unwrap();
    assert!(seen[0].starts_with("POST /containers/x/wait?condition=next-exit HTTP/1.1"));
    assert_eq!(v["StatusCode"], 3);
}
