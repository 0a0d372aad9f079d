//! 2,000 hostile requests over raw HTTP: each gets a 4xx with a JSON message, the daemon
//! stays up, and neither its descriptor count nor its memory grows. Half are fixed cases, half
//! come from a seeded generator (wrong JSON types, truncated bodies, unknown ids, garbage
//! filters), so a failure reproduces exactly.

mod common;

use common::Daemon;
use wharf_testutil::Rng;

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|r| r.count())
        .unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Str,
    Num,
    Bool,
    Arr,
    Obj,
}

/// Create-body fields and the JSON kinds Docker accepts for them (Cmd and CapAdd take a
/// string or a list).
const FIELDS: &[(&str, &[Kind])] = &[
    ("Image", &[Kind::Str]),
    ("Cmd", &[Kind::Str, Kind::Arr]),
    ("Entrypoint", &[Kind::Str, Kind::Arr]),
    ("Env", &[Kind::Arr]),
    ("Labels", &[Kind::Obj]),
    ("Tty", &[Kind::Bool]),
    ("OpenStdin", &[Kind::Bool]),
    ("StopTimeout", &[Kind::Num]),
    ("WorkingDir", &[Kind::Str]),
    ("User", &[Kind::Str]),
    ("ExposedPorts", &[Kind::Obj]),
    ("Healthcheck", &[Kind::Obj]),
    ("HostConfig", &[Kind::Obj]),
    ("HostConfig.Memory", &[Kind::Num]),
    ("HostConfig.Binds", &[Kind::Arr]),
    ("HostConfig.Privileged", &[Kind::Bool]),
    ("HostConfig.RestartPolicy", &[Kind::Obj]),
    ("HostConfig.CapAdd", &[Kind::Str, Kind::Arr]),
    ("HostConfig.Ulimits", &[Kind::Arr]),
    ("HostConfig.PidsLimit", &[Kind::Num]),
    ("HostConfig.ReadonlyRootfs", &[Kind::Bool]),
    ("HostConfig.NanoCpus", &[Kind::Num]),
];

const VALUES: &[(Kind, &str)] = &[
    (Kind::Str, r#""text""#),
    (Kind::Num, "42"),
    (Kind::Bool, "true"),
    (Kind::Arr, "[1,2]"),
    (Kind::Obj, r#"{"k":1}"#),
];

/// One generated request and the status it must get.
fn generated(rng: &mut Rng) -> (&'static str, String, Vec<u8>, u16) {
    match rng.below(4) {
        0 => {
            let (field, ok) = rng.pick(FIELDS);
            let wrong: Vec<&str> = VALUES
                .iter()
                .filter(|(k, _)| !ok.contains(k))
                .map(|(_, v)| *v)
                .collect();
            let value = rng.pick(&wrong);
            let body = match field.strip_prefix("HostConfig.") {
                Some(inner) => {
                    format!(r#"{{"Image":"busybox","HostConfig":{{"{inner}":{value}}}}}"#)
                }
                None if field == "Image" => format!(r#"{{"Image":{value}}}"#),
                None => format!(r#"{{"Image":"busybox","{field}":{value}}}"#),
            };
            ("POST", "/containers/create".into(), body.into_bytes(), 400)
        }
        1 => {
            let body =
                br#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"Memory":1048576,"Binds":[]}}"#;
            let cut = 1 + rng.below(body.len() - 1);
            (
                "POST",
                "/containers/create".into(),
                body[..cut].to_vec(),
                400,
            )
        }
        2 => {
            let id: String = (0..1 + rng.below(64))
                .map(|_| rng.pick(&['0', '7', 'a', 'f', 'z', '_']))
                .collect();
            let (m, path) = rng.pick(&[
                ("GET", "/containers/{}/json"),
                ("POST", "/containers/{}/stop"),
                ("POST", "/containers/{}/pause"),
                ("GET", "/containers/{}/logs?stdout=1"),
                ("DELETE", "/containers/{}"),
                ("GET", "/images/{}/json"),
                ("GET", "/images/{}/history"),
                ("GET", "/exec/{}/json"),
            ]);
            (
                m,
                path.replace("{}", &format!("nosuch{id}")),
                Vec::new(),
                404,
            )
        }
        _ => {
            let junk: String = (0..1 + rng.below(20))
                .map(|_| rng.pick(&["%7B", "%22", "x", "%5B", "%3A", "%7D", "1"]))
                .collect();
            let path = rng.pick(&[
                "/containers/json",
                "/images/json",
                "/containers/prune",
                "/images/prune",
            ]);
            let method = if path.ends_with("prune") {
                "POST"
            } else {
                "GET"
            };
            (method, format!("{path}?filters={junk}"), Vec::new(), 400)
        }
    }
}

#[test]
fn malformed_requests_get_4xx_and_nothing_leaks() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&[]);
    // With the image present, a create refused for a type error cannot pass as "no such image".
    d.import_busybox();
    let huge = vec![b'{'; 5 << 20];
    let cases: Vec<(&str, String, Vec<u8>)> = vec![
        ("POST", "/containers/create".into(), b"{not json".to_vec()),
        (
            "POST",
            "/containers/create".into(),
            br#"{"Image":"busybox","Env":"A=1"}"#.to_vec(),
        ),
        (
            "POST",
            "/containers/create".into(),
            br#"{"Image":"busybox","HostConfig":{"Memory":"lots"}}"#.to_vec(),
        ),
        (
            "POST",
            "/containers/create".into(),
            br#"{"Image":"no-such-image"}"#.to_vec(),
        ),
        (
            "POST",
            "/containers/create?name=bad%20name".into(),
            br#"{"Image":"busybox"}"#.to_vec(),
        ),
        ("POST", "/containers/create".into(), b"".to_vec()),
        ("POST", "/containers/create".into(), huge.clone()),
        ("GET", "/containers/0000deadbeef/json".into(), Vec::new()),
        ("POST", "/containers/nope/start".into(), Vec::new()),
        (
            "POST",
            "/containers/nope/kill?signal=BOGUS".into(),
            Vec::new(),
        ),
        (
            "GET",
            "/containers/json?filters=%7Bbroken".into(),
            Vec::new(),
        ),
        (
            "GET",
            "/containers/json?filters=%7B%22bogus%22%3A%5B%22x%22%5D%7D".into(),
            Vec::new(),
        ),
        ("GET", "/containers/json?limit=abc".into(), Vec::new()),
        ("POST", "/exec/nope/start".into(), b"{}".to_vec()),
        ("GET", "/images/no-such-image/json".into(), Vec::new()),
        ("DELETE", "/images/no-such-image".into(), Vec::new()),
        ("GET", "/v1.99/info".into(), Vec::new()),
        ("GET", "/v1.2/info".into(), Vec::new()),
        ("GET", "/no/such/route".into(), Vec::new()),
        ("GET", "/events?since=yesterday".into(), Vec::new()),
    ];
    let mut rng = Rng(0x5EED_0F_3A11);
    let mut send = |i: usize| {
        let (m, p, b, want) = match i % 2 {
            0 => {
                let (m, p, b) = &cases[(i / 2) % cases.len()];
                (*m, p.clone(), b.clone(), None)
            }
            _ => {
                let (m, p, b, want) = generated(&mut rng);
                (m, p, b, Some(want))
            }
        };
        let (status, body) = d.raw(m, &p, &b);
        let shown = String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned();
        match want {
            Some(w) => assert_eq!(status, w, "request {i}: {m} {p} {shown}"),
            None => assert!(
                (400..500).contains(&status),
                "request {i}: {m} {p}: status {status}"
            ),
        }
        let v: serde_json::Value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("request {i}: {m} {p}: body is not JSON ({e})"));
        assert!(
            v["message"].as_str().is_some_and(|s| !s.is_empty()),
            "request {i}: {m} {p}: {v}"
        );
    };
    // A first round lets lazily created state and the allocator's per-thread arenas (which
    // keep freed multi-megabyte bodies for reuse) reach their steady size; a leak then shows
    // as growth over the second round.
    for i in 0..1000 {
        send(i);
    }
    let (fds_before, rss_before) = (fd_count(d.pid()), rss_kib(d.pid()));
    for i in 1000..2000 {
        send(i);
    }
    assert_eq!(d.raw("GET", "/_ping", b"").0, 200);
    let (fds_after, rss_after) = (fd_count(d.pid()), rss_kib(d.pid()));
    eprintln!("RSS {rss_before} KiB -> {rss_after} KiB, fds {fds_before} -> {fds_after}");
    assert!(
        fds_after <= fds_before + 2,
        "descriptors grew from {fds_before} to {fds_after}"
    );
    // A leak of 4 KiB per request (a buffer, a body) would cross this.
    assert!(
        rss_after <= rss_before + 4 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    assert_eq!(
        d.ok(&["ps", "-aq"]),
        "",
        "a malformed request created a container"
    );
}
