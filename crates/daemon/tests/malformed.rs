//! 1,000 hostile requests over raw HTTP: each gets a 4xx with a JSON message, the daemon
//! stays up, and its descriptor count does not grow.

mod common;

use common::Daemon;

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|r| r.count()).unwrap_or(0)
}

#[test]
fn malformed_requests_get_4xx_and_nothing_leaks() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&[]);
    let huge = vec![b'{'; 5 << 20];
    let cases: Vec<(&str, String, Vec<u8>)> = vec![
        ("POST", "/containers/create".into(), b"{not json".to_vec()),
        ("POST", "/containers/create".into(), br#"{"Image":"busybox","Env":"A=1"}"#.to_vec()),
        ("POST", "/containers/create".into(), br#"{"Image":"busybox","HostConfig":{"Memory":"lots"}}"#.to_vec()),
        ("POST", "/containers/create".into(), br#"{"Image":"no-such-image"}"#.to_vec()),
        ("POST", "/containers/create?name=bad%20name".into(), br#"{"Image":"busybox"}"#.to_vec()),
        ("POST", "/containers/create".into(), b"".to_vec()),
        ("POST", "/containers/create".into(), huge.clone()),
        ("GET", "/containers/0000deadbeef/json".into(), Vec::new()),
        ("POST", "/containers/nope/start".into(), Vec::new()),
        ("POST", "/containers/nope/kill?signal=BOGUS".into(), Vec::new()),
        ("GET", "/containers/json?filters=%7Bbroken".into(), Vec::new()),
        ("GET", "/containers/json?filters=%7B%22bogus%22%3A%5B%22x%22%5D%7D".into(), Vec::new()),
        ("GET", "/containers/json?limit=abc".into(), Vec::new()),
        ("POST", "/exec/nope/start".into(), b"{}".to_vec()),
        ("GET", "/images/no-such-image/json".into(), Vec::new()),
        ("DELETE", "/images/no-such-image".into(), Vec::new()),
        ("GET", "/v1.99/info".into(), Vec::new()),
        ("GET", "/v1.2/info".into(), Vec::new()),
        ("GET", "/no/such/route".into(), Vec::new()),
        ("GET", "/events?since=yesterday".into(), Vec::new()),
    ];
    // Warm up lazily created state so the fd baseline is stable.
    for (m, p, b) in &cases {
        d.raw(m, p, b);
    }
    let before = fd_count(d.pid());
    for i in 0..1000 {
        let (m, p, b) = &cases[i % cases.len()];
        let (status, body) = d.raw(m, p, b);
        assert!((400..500).contains(&status), "{m} {p}: status {status}");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{m} {p}: body is not JSON ({e})"));
        assert!(v["message"].as_str().is_some_and(|s| !s.is_empty()), "{m} {p}: {v}");
    }
    assert_eq!(d.raw("GET", "/_ping", b"").0, 200);
    let after = fd_count(d.pid());
    assert!(after <= before + 2, "descriptors grew from {before} to {after}");
}
