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

fn err(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
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
        err(&o).contains("network with name front already exists"),
        "{}",
        err(&o)
    );
    let o = d.docker(&["network", "create", "--subnet", &subnet, "again"]);
    assert!(
        err(&o)
            .contains("invalid pool request: Pool overlaps with other one on this address space"),
        "{}",
        err(&o)
    );
    let (st, body) = d.raw(
        "POST",
        "/networks/create",
        br#"{"Name":"gw","IPAM":{"Config":[{"Subnet":"10.191.7.0/24","Gateway":"10.191.8.1"}]}}"#,
    );
    assert_eq!(st, 400);
    assert!(String::from_utf8_lossy(&body).contains("no matching subnet for gateway 10.191.8.1"));
    let o = d.docker(&["network", "rm", "bridge"]);
    assert!(
        err(&o).contains("bridge is a pre-defined network and cannot be removed"),
        "{}",
        err(&o)
    );
    let o = d.docker(&["network", "inspect", "nosuch"]);
    assert!(
        err(&o).contains("No such network: nosuch") || err(&o).contains("network nosuch not found"),
        "{}",
        err(&o)
    );
    assert_eq!(d.ok(&["network", "ls", "-q"]).lines().count(), 4);
    let o = d.docker(&[
        "network",
        "create",
        "-o",
        "com.docker.network.bridge.enable_icc=false",
        "noicc",
    ]);
    assert!(
        !o.status.success() && err(&o).contains("not supported"),
        "{}",
        err(&o)
    );

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
        err(&o).contains("already exists in network red"),
        "{}",
        err(&o)
    );
    // Removing a network in use is refused with Docker's message.
    let o = d.docker(&["network", "rm", "red"]);
    assert!(err(&o).contains("has active endpoints"), "{}", err(&o));
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

/// kill -9 of wharfd at seeded moments while networks are created, containers connected and
/// started: after each restart no address is leased twice, every veth on our bridges belongs
/// to a running container, and every network in the state has its bridge.
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
                docker(&["network", "create", &net]);
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
        let br = n["bridge"].as_str().unwrap_or("");
        if br.is_empty() {
            continue;
        }
        assert!(link_exists(br), "bridge {br} of a known network is missing");
        let out = Command::new("ip")
            .args(["-o", "link", "show", "master", br])
            .output()
            .expect("ip");
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            let name = l
                .split(": ")
                .nth(1)
                .unwrap_or("")
                .split('@')
                .next()
                .unwrap_or("");
            assert!(owned.contains(name), "stray veth {name} on {br}");
        }
    }
}
