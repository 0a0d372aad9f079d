//! User-defined bridge networks end to end: the network API with the docker CLI and `wharf`,
//! Docker's errors, isolation between networks, connect/disconnect of running containers,
//! prune, events, and a seeded kill -9 during network work. Traffic goes only to bridges and
//! namespaces this daemon created.

mod common;

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use common::{wait_for, Daemon};

const HTTPD: &str =
    "mkdir -p /www && echo hello-$HOSTNAME > /www/index.html && exec httpd -f -p 80 -h /www";

fn link_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", name])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn bridge_of(d: &Daemon, net: &str) -> String {
    let id = d.ok(&["network", "inspect", "-f", "{{.Id}}", net]);
    format!("br-{}", &id[..12])
}

/// GET / from inside `from` to `ip`; the body's last line, or "" when unreachable.
fn fetch(d: &Daemon, from: &str, ip: &str) -> String {
    let cmd = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {ip} 80 | tail -1");
    let o = d.docker(&["exec", from, "sh", "-c", &cmd]);
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn create_inspect_and_dockers_errors() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&[]);
    let id = d.ok(&["network", "create", "--label", "team=a", "front"]);
    assert_eq!(id.len(), 64);
    let br = bridge_of(&d, "front");
    assert!(link_exists(&br), "{br}");
    let subnet = d.ok(&[
        "network",
        "inspect",
        "-f",
        "{{(index .IPAM.Config 0).Subnet}}",
        "front",
    ]);
    let pool_base = d
        .net
        .pool
        .trim_start_matches("base=")
        .split('/')
        .next()
        .unwrap_or("")
        .to_string();
    let prefix: String = pool_base.rsplitn(3, '.').last().unwrap_or("").to_string();
    assert!(
        subnet.starts_with(&prefix) && subnet.ends_with("/24"),
        "{subnet} from {}",
        d.net.pool
    );
    // Docker's key order, so `docker network inspect` prints what it would with dockerd.
    let (_, raw) = d.raw("GET", "/networks/front", b"");
    let raw = String::from_utf8_lossy(&raw).to_string();
    let keys = [
        "\"Name\"",
        "\"Id\"",
        "\"Created\"",
        "\"Scope\"",
        "\"Driver\"",
        "\"EnableIPv4\"",
        "\"IPAM\"",
        "\"Containers\"",
        "\"Labels\"",
    ];
    let pos: Vec<usize> = keys
        .iter()
        .map(|k| raw.find(k).unwrap_or(usize::MAX))
        .collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{raw}");
    assert_eq!(
        d.ok(&["network", "ls", "-q", "--filter", "label=team=a"]),
        id[..12]
    );
    let names = d.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert_eq!(names, "bridge\nfront\nhost\nnone");
    let custom = d.ok(&[
        "network",
        "ls",
        "--filter",
        "type=custom",
        "--format",
        "{{.Name}} {{.Driver}} {{.Scope}}",
    ]);
    assert_eq!(custom, "front bridge local");

    // Docker's refusals, each changing nothing.
    let o = d.docker(&["network", "create", "front"]);
    assert!(
        common::stderr(&o).contains("network with name front already exists"),
        "{}",
        common::stderr(&o)
    );
    let o = d.docker(&["network", "create", "--subnet", &subnet, "again"]);
    assert!(
        common::stderr(&o)
            .contains("invalid pool request: Pool overlaps with other one on this address space"),
        "{}",
        common::stderr(&o)
    );
    let (st, body) = d.raw(
        "POST",
        "/networks/create",
        br#"{"Name":"gw","IPAM":{"Config":[{"Subnet":"10.191.7.0/24","Gateway":"10.191.8.1"}]}}"#,
    );
    assert_eq!(st, 400);
    assert!(String::from_utf8_lossy(&body).contains("no matching subnet for gateway 10.191.8.1"));
    // What Wharf cannot honour yet is refused, never ignored, and nothing is made.
    for (flag, body, status, msg) in [
        (
            "--ipam-driver",
            &br#"{"Name":"x1","IPAM":{"Driver":"dhcp"}}"#[..],
            404,
            "plugin \"dhcp\" not found",
        ),
        (
            "--ipam-opt",
            br#"{"Name":"x2","IPAM":{"Options":{"a":"b"}}}"#,
            501,
            "IPAM driver options are not supported yet",
        ),
        (
            "--config-only",
            br#"{"Name":"x3","ConfigOnly":true}"#,
            501,
            "config-only networks",
        ),
        (
            "--config-from",
            br#"{"Name":"x4","ConfigFrom":{"Network":"front"}}"#,
            501,
            "config-only networks",
        ),
        (
            "--scope",
            br#"{"Name":"x5","Scope":"swarm"}"#,
            501,
            "swarm-scoped and ingress networks",
        ),
        (
            "--ingress",
            br#"{"Name":"x6","Ingress":true}"#,
            501,
            "swarm-scoped and ingress networks",
        ),
    ] {
        let (st, out) = d.raw("POST", "/networks/create", body);
        let out: serde_json::Value = serde_json::from_slice(&out).unwrap_or_default();
        let message = out["message"].as_str().unwrap_or("");
        assert_eq!(st, status, "{flag}: {message}");
        assert!(message.contains(msg), "{flag}: {message}");
    }
    let names = d.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!names.lines().any(|n| n.starts_with('x')), "{names}");
    let o = d.docker(&["network", "rm", "bridge"]);
    assert!(
        common::stderr(&o).contains("bridge is a pre-defined network and cannot be removed"),
        "{}",
        common::stderr(&o)
    );
    let o = d.docker(&["network", "inspect", "nosuch"]);
    assert!(
        common::stderr(&o).contains("No such network: nosuch")
            || common::stderr(&o).contains("network nosuch not found"),
        "{}",
        common::stderr(&o)
    );
    assert_eq!(d.ok(&["network", "ls", "-q"]).lines().count(), 4);

    // wharf prints what docker prints.
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_wharfd")).with_file_name("wharf");
    let wharf = Command::new(bin)
        .args([
            "-H",
            &format!("unix://{}", d.sock.display()),
            "network",
            "ls",
        ])
        .output()
        .expect("wharf");
    assert_eq!(
        String::from_utf8_lossy(&wharf.stdout).trim(),
        d.ok(&["network", "ls"])
    );

    d.ok(&["network", "rm", "front"]);
    assert!(!link_exists(&br), "{br} left behind");
}

#[test]
fn isolation_connect_disconnect_and_removal() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&[]);
    d.import_busybox();
    let since = d.ok(&["version", "-f", "{{.Server.Version}}"]);
    assert!(!since.is_empty());
    let start = chrono_now();
    d.ok(&["network", "create", "red"]);
    d.ok(&["network", "create", "blue"]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--hostname",
        "web",
        "--network",
        "red",
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "peer",
        "--network",
        "red",
        "busybox",
        "sleep",
        "600",
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "other",
        "--network",
        "blue",
        "busybox",
        "sleep",
        "600",
    ]);
    let ip = d.ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.red.IPAddress}}",
        "web",
    ]);
    wait_for("web to answer on red", || {
        fetch(&d, "peer", &ip) == "hello-web"
    });
    assert_eq!(fetch(&d, "other", &ip), "", "blue must not reach red");
    let members = d.ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .Containers}}{{.Name}} {{end}}",
        "red",
    ]);
    assert_eq!(
        members.split_whitespace().collect::<HashSet<_>>(),
        HashSet::from(["web", "peer"])
    );

    // Connect a running container: a second interface, and red is reachable from it.
    d.ok(&["network", "connect", "red", "other"]);
    let addrs = d.ok(&["exec", "other", "ip", "-o", "-4", "addr"]);
    assert!(addrs.contains("eth1"), "{addrs}");
    assert_eq!(fetch(&d, "other", &ip), "hello-web");
    let o = d.docker(&["network", "connect", "red", "other"]);
    assert!(
        common::stderr(&o).contains("already exists in network red"),
        "{}",
        common::stderr(&o)
    );
    // Removing a network in use is refused with Docker's message.
    let o = d.docker(&["network", "rm", "red"]);
    assert!(
        common::stderr(&o).contains("has active endpoints"),
        "{}",
        common::stderr(&o)
    );
    d.ok(&["network", "disconnect", "red", "other"]);
    let addrs = d.ok(&["exec", "other", "ip", "-o", "-4", "addr"]);
    assert!(!addrs.contains("eth1"), "{addrs}");
    assert_eq!(fetch(&d, "other", &ip), "");

    // A stopped container connected to a network gets it at its next start.
    d.ok(&["stop", "-t", "0", "other"]);
    d.ok(&["network", "connect", "red", "other"]);
    d.ok(&["start", "other"]);
    let nets = d.ok(&[
        "inspect",
        "-f",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        "other",
    ]);
    assert_eq!(nets, "blue red");
    assert_eq!(fetch(&d, "other", &ip), "hello-web");

    // icc=false: containers on one bridge cannot reach each other; the host still can.
    d.ok(&[
        "network",
        "create",
        "-o",
        "com.docker.network.bridge.enable_icc=false",
        "noicc",
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "quiet",
        "--hostname",
        "quiet",
        "--network",
        "noicc",
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "nosy",
        "--network",
        "noicc",
        "busybox",
        "sleep",
        "600",
    ]);
    let qip = d.ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.noicc.IPAddress}}",
        "quiet",
    ]);
    wait_for("quiet to answer the host", || {
        std::net::TcpStream::connect((qip.as_str(), 80)).is_ok()
    });
    assert_eq!(
        fetch(&d, "nosy", &qip),
        "",
        "icc=false must block container to container"
    );
    d.ok(&["rm", "-f", "quiet", "nosy"]);
    d.ok(&["network", "rm", "noicc"]);

    // --internal: no default route in the container (and the host forwards nothing).
    d.ok(&["network", "create", "--internal", "inner"]);
    assert_eq!(
        d.ok(&["network", "inspect", "-f", "{{.Internal}}", "inner"]),
        "true"
    );
    let routes = d.ok(&[
        "run",
        "--rm",
        "--network",
        "inner",
        "busybox",
        "ip",
        "route",
    ]);
    assert!(!routes.contains("default"), "{routes}");
    d.ok(&["network", "rm", "inner"]);

    let (red, blue) = (bridge_of(&d, "red"), bridge_of(&d, "blue"));
    d.ok(&["rm", "-f", "web", "peer", "other"]);
    let pruned = d.ok(&["network", "prune", "-f"]);
    assert_eq!(pruned, "Deleted Networks:\nblue\nred");
    assert!(!link_exists(&red) && !link_exists(&blue));
    assert_eq!(d.ok(&["network", "ls", "-q"]).lines().count(), 3);
    let end = chrono_now();
    let ev = d.ok(&[
        "events",
        "--since",
        &start,
        "--until",
        &end,
        "--filter",
        "type=network",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}}",
    ]);
    for want in [
        "create red",
        "create blue",
        "connect red",
        "disconnect red",
        "destroy red",
        "destroy blue",
    ] {
        assert!(ev.lines().any(|l| l == want), "{want} missing in\n{ev}");
    }
}

fn chrono_now() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    format!("{}.{:09}", t.as_secs(), t.subsec_nanos())
}

/// kill -9 of wharfd at seeded moments while networks (IPv6 bridges and macvlans) are
/// created, containers connected and started: after each restart no address (IPv4 or IPv6)
/// is leased twice, every
/// veth on our bridges belongs to a running container, and every network in the state has
/// its bridge or the parent Wharf made for it.
#[test]
fn kill_9_during_network_work_leaks_nothing() {
    wharf_testutil::require_root!();
    let mut d = Daemon::start(&["--live-restore"]);
    d.import_busybox();
    let mut rng = wharf_testutil::Rng(0x5eed_0009);
    for round in 0..3 {
        let sock = d.sock.clone();
        let cfg = d.dir.path().join("docker-config");
        let worker = std::thread::spawn(move || {
            let docker = |args: &[&str]| {
                let _ = Command::new(common::DOCKER)
                    .args(args)
                    .env("DOCKER_HOST", format!("unix://{}", sock.display()))
                    .env("DOCKER_CONFIG", &cfg)
                    .output();
            };
            for i in 0..4 {
                let net = format!("k{round}n{i}");
                // Every other one a macvlan on a parent Wharf makes, the others with IPv6.
                if i % 2 == 1 {
                    docker(&["network", "create", "-d", "macvlan", &net]);
                } else {
                    docker(&["network", "create", "--ipv6", &net]);
                }
                docker(&[
                    "run",
                    "-d",
                    "--name",
                    &format!("k{round}c{i}"),
                    "--network",
                    &net,
                    "busybox",
                    "sleep",
                    "600",
                ]);
                docker(&["network", "connect", "bridge", &format!("k{round}c{i}")]);
            }
        });
        std::thread::sleep(Duration::from_millis(200 + rng.below(1500) as u64));
        d.crash();
        let _ = worker.join();
        d.start_again();
        check_invariants(&d);
    }
}

/// kill -9 of wharfd at seeded moments while running containers are connected to and
/// disconnected from a network: after each restart the same invariants hold, and the
/// container can still be disconnected and removed with its network.
#[test]
fn kill_9_during_disconnect_leaks_nothing() {
    wharf_testutil::require_root!();
    let mut d = Daemon::start(&["--live-restore"]);
    d.import_busybox();
    let mut rng = wharf_testutil::Rng(0x5eed_d15c);
    for round in 0..3 {
        let (net, c) = (format!("d{round}n"), format!("d{round}c"));
        // The middle round's network is a macvlan: its endpoint lives in the namespace.
        if round == 1 {
            d.ok(&["network", "create", "-d", "macvlan", &net]);
        } else {
            d.ok(&["network", "create", &net]);
        }
        d.ok(&["run", "-d", "--name", &c, "busybox", "sleep", "600"]);
        let sock = d.sock.clone();
        let cfg = d.dir.path().join("docker-config");
        let (net2, c2) = (net.clone(), c.clone());
        let worker = std::thread::spawn(move || {
            let docker = |args: &[&str]| {
                let _ = Command::new(common::DOCKER)
                    .args(args)
                    .env("DOCKER_HOST", format!("unix://{}", sock.display()))
                    .env("DOCKER_CONFIG", &cfg)
                    .output();
            };
            for _ in 0..6 {
                docker(&["network", "connect", &net2, &c2]);
                docker(&["network", "disconnect", &net2, &c2]);
            }
        });
        std::thread::sleep(Duration::from_millis(200 + rng.below(1500) as u64));
        d.crash();
        let _ = worker.join();
        d.start_again();
        check_invariants(&d);
        // Whatever the crash interrupted, the container leaves the network cleanly.
        let _ = d.docker(&["network", "disconnect", &net, &c]);
        d.ok(&["rm", "-f", &c]);
        d.ok(&["network", "rm", &net]);
        check_invariants(&d);
    }
}

fn check_invariants(d: &Daemon) {
    let state = std::fs::read_to_string(d.data_root.join("network/network.json")).expect("state");
    let v: serde_json::Value = serde_json::from_str(&state).expect("json");
    let mut ips = HashSet::new();
    let mut owned = HashSet::new();
    let running = d.ok(&["ps", "-q", "--no-trunc"]);
    let running: HashSet<&str> = running.lines().collect();
    for (cid, sb) in v["sandboxes"].as_object().into_iter().flatten() {
        assert!(
            running.contains(cid.as_str()),
            "sandbox of a stopped container {cid}"
        );
        for e in sb["endpoints"].as_array().into_iter().flatten() {
            let key = format!("{}/{}", e["network_id"], e["ip"]);
            assert!(ips.insert(key.clone()), "{key} leased twice");
            if let Some(ip6) = e["ip6"].as_str() {
                let key = format!("{}/{ip6}", e["network_id"]);
                assert!(ips.insert(key.clone()), "{key} leased twice");
            }
            owned.insert(e["host_ifname"].as_str().unwrap_or("").to_string());
        }
    }
    let pins: HashSet<String> = std::fs::read_dir(d.exec_root.join("netns"))
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    for p in &pins {
        assert!(running.contains(p.as_str()), "stale netns pin {p}");
    }
    for (_, n) in v["networks"].as_object().into_iter().flatten() {
        let parent = n["parent"].as_str().unwrap_or("");
        if n["owns_parent"].as_bool() == Some(true) {
            assert!(
                link_exists(parent),
                "parent {parent} of a known network is missing"
            );
        }
        let br = n["bridge"].as_str().unwrap_or("");
        if br.is_empty() {
            continue;
        }
        assert!(link_exists(br), "bridge {br} of a known network is missing");
        let strays = || {
            common::net::bridge_ports(br)
                .into_iter()
                .filter(|name| !owned.contains(name))
                .collect::<Vec<_>>()
        };
        // A removed sandbox's veths go with its namespace, which the kernel frees
        // asynchronously.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !strays().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let left = strays();
        assert!(left.is_empty(), "stray veths {left:?} on {br}");
    }
}

/// A stand-in upstream resolver on a loopback address of its own: `upstream.test` is 1.2.3.4,
/// everything else NXDOMAIN (a hand-built answer, independent of the code under test).
fn fake_upstream() -> (std::net::Ipv4Addr, std::thread::JoinHandle<()>) {
    let mut rng = wharf_testutil::Rng(u64::from(std::process::id()) << 8 | 0x53);
    let sock = loop {
        let ip = std::net::Ipv4Addr::new(
            127,
            200 + rng.below(50) as u8,
            rng.below(250) as u8,
            1 + rng.below(250) as u8,
        );
        if let Ok(s) = std::net::UdpSocket::bind((ip, 53)) {
            break s;
        }
    };
    let ip = match sock.local_addr().expect("addr") {
        std::net::SocketAddr::V4(a) => *a.ip(),
        _ => unreachable!("bound to IPv4"),
    };
    let _ = sock.set_read_timeout(Some(Duration::from_secs(120)));
    let h = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = sock.recv_from(&mut buf) {
            if n < 12 {
                continue;
            }
            // The question: labels up to the zero byte, then type and class.
            let mut end = 12;
            while end < n && buf[end] != 0 {
                end += 1 + buf[end] as usize;
            }
            let qend = (end + 5).min(n);
            let name: Vec<u8> = buf[12..end.min(n)].to_vec();
            let ours = name == b"\x08upstream\x04test";
            let mut r = Vec::new();
            r.extend_from_slice(&buf[0..2]);
            r.extend_from_slice(if ours { &[0x81, 0x80] } else { &[0x81, 0x83] });
            r.extend_from_slice(&[0, 1, 0, u8::from(ours), 0, 0, 0, 0]);
            r.extend_from_slice(&buf[12..qend]);
            if ours {
                r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 1, 2, 3, 4]);
            }
            let _ = sock.send_to(&r, peer);
        }
    });
    (ip, h)
}

/// nslookup through the container's resolver: the answered address, or "" when none.
fn resolve(d: &Daemon, from: &str, name: &str) -> String {
    let o = d.docker(&["exec", from, "nslookup", name]);
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    text.lines()
        .skip_while(|l| !l.starts_with("Name:"))
        .find_map(|l| l.strip_prefix("Address:").map(|a| a.trim().to_string()))
        .unwrap_or_default()
}

#[test]
fn embedded_dns_names_aliases_and_forwarding() {
    wharf_testutil::require_root!();
    let (upstream, _responder) = fake_upstream();
    let d = Daemon::start(&["--dns", &upstream.to_string()]);
    d.import_busybox();
    d.ok(&["network", "create", "app"]);
    d.ok(&["network", "create", "elsewhere"]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "db",
        "--hostname",
        "db",
        "--network",
        "app",
        "--network-alias",
        "database",
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "client",
        "--network",
        "app",
        "busybox",
        "sleep",
        "600",
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "outsider",
        "--network",
        "elsewhere",
        "busybox",
        "sleep",
        "600",
    ]);
    let ip = d.ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.app.IPAddress}}",
        "db",
    ]);
    let conf = d.ok(&["exec", "client", "cat", "/etc/resolv.conf"]);
    assert!(conf.contains("nameserver 127.0.0.11"), "{conf}");
    assert_eq!(resolve(&d, "client", "db"), ip);
    assert_eq!(resolve(&d, "client", "database"), ip);
    assert_eq!(
        resolve(&d, "client", "upstream.test"),
        "1.2.3.4",
        "forwarded to the daemon's dns"
    );
    assert_eq!(resolve(&d, "outsider", "db"), "", "not on a shared network");
    // The name works for traffic too (busybox nc resolves through the same resolver).
    let body = d.ok(&[
        "exec",
        "client",
        "sh",
        "-c",
        "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 database 80 | tail -1",
    ]);
    assert_eq!(body, "hello-db");
    // The default bridge keeps plain resolvers, as in Docker.
    let conf = d.ok(&["run", "--rm", "busybox", "cat", "/etc/resolv.conf"]);
    assert!(!conf.contains("127.0.0.11"), "{conf}");
    // --network-alias on the default bridge is refused with Docker's message.
    let (st, body) = d.raw(
        "POST",
        "/v1.45/containers/create",
        br#"{"Image":"busybox","NetworkingConfig":{"EndpointsConfig":{"bridge":{"Aliases":["x"]}}}}"#,
    );
    assert_eq!(st, 400);
    assert!(String::from_utf8_lossy(&body).contains(
        "network-scoped alias is supported only for containers in user defined networks"
    ));
}
