//! Networking end to end with the real docker CLI: the default bridge, published ports,
//! `none`/`host`/`container:` modes, Docker's errors, and no leftovers after removal or a
//! kill -9 of wharfd. Traffic goes only to loopback and to this daemon's own bridge.

mod common;

use std::net::{Ipv4Addr, TcpListener};
use std::process::Command;

use common::net::bridge_ports;
use common::{free_port, http_get, wait_for, Daemon};

const HTTPD: &str =
    "mkdir -p /www && echo hello-$HOSTNAME > /www/index.html && exec httpd -f -p 80 -h /www";

fn netns_pins(d: &Daemon) -> usize {
    std::fs::read_dir(d.exec_root.join("netns"))
        .map(|r| r.count())
        .unwrap_or(0)
}

fn state_sandboxes(d: &Daemon) -> usize {
    let s = std::fs::read_to_string(d.data_root.join("network/network.json")).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&s).unwrap_or_default();
    v["sandboxes"].as_object().map_or(0, |m| m.len())
}

#[test]
fn published_ports_answer_on_loopback() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&[]);
    d.import_busybox();
    let port = free_port();
    let spec = format!("127.0.0.1:{port}:80");
    d.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--hostname",
        "web",
        "-p",
        &spec,
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]);
    assert_eq!(http_get(port), "hello-web");
    assert_eq!(
        d.ok(&["port", "web"]),
        format!("80/tcp -> 127.0.0.1:{port}")
    );
    assert_eq!(
        d.ok(&["ps", "--format", "{{.Ports}}"]),
        format!("127.0.0.1:{port}->80/tcp")
    );

    // -P: an ephemeral port that `docker port` shows and that answers.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "auto",
        "--hostname",
        "auto",
        "-P",
        "--expose",
        "80",
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]);
    let shown = d.ok(&["port", "auto", "80"]);
    let p: u16 = shown
        .lines()
        .next()
        .and_then(|l| l.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("docker port: {shown}"));
    assert!(shown.starts_with("0.0.0.0:"), "{shown}");
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").expect("range");
    let r: Vec<u16> = range
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    assert!(p >= r[0] && p <= r[1], "{p} outside {range}");
    assert_eq!(http_get(p), "hello-auto");

    // The same host port again: dockerd's message, and nothing is left of the failed start.
    let veths = bridge_ports(&d.net.bridge).len();
    let o = d.docker(&["run", "--name", "clash", "-p", &spec, "busybox", "true"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains(&format!(
            "Bind for 127.0.0.1:{port} failed: port is already allocated"
        )) && err.contains("driver failed programming external connectivity on endpoint clash"),
        "{err}"
    );
    // The failed start's veth goes with its namespace, which the kernel frees asynchronously.
    wait_for("the failed start's veth to go", || {
        bridge_ports(&d.net.bridge).len() == veths
    });
    assert_eq!(netns_pins(&d), 2);
    assert_eq!(
        http_get(port),
        "hello-web",
        "the first container keeps its port"
    );

    // A malformed -p never reaches a start: the daemon refuses the binding at create.
    let (st, body) = d.raw(
        "POST",
        "/v1.45/containers/create",
        br#"{"Image":"busybox","HostConfig":{"PortBindings":{"80/tcp":[{"HostPort":"99999"}]}}}"#,
    );
    assert_eq!(st, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("invalid port specification"));

    d.ok(&["rm", "-f", "web", "auto", "clash"]);
    // The veths go with the namespaces, which the kernel frees asynchronously.
    wait_for("veths removed", || bridge_ports(&d.net.bridge).is_empty());
    assert_eq!(netns_pins(&d), 0);
    assert_eq!(state_sandboxes(&d), 0);
    // The port is free again once the container is gone.
    TcpListener::bind(("127.0.0.1", port)).expect("port released");
}

#[test]
fn default_bridge_addresses_and_container_to_container() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&[]);
    d.import_busybox();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "srv",
        "--hostname",
        "srv",
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]);
    let ip = d.ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "srv"]);
    let gw = d.ok(&["inspect", "-f", "{{.NetworkSettings.Gateway}}", "srv"]);
    let mac = d.ok(&["inspect", "-f", "{{.NetworkSettings.MacAddress}}", "srv"]);
    let net_ip = d.ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.bridge.IPAddress}}",
        "srv",
    ]);
    assert_eq!(ip, net_ip);
    let bip = d.net.bip.trim_end_matches("/24").to_string();
    assert_eq!(gw, bip);
    let a: Ipv4Addr = ip.parse().expect("ip");
    let g: Ipv4Addr = gw.parse().expect("gw");
    assert_eq!(a.octets()[..3], g.octets()[..3], "same /24");
    let o = a.octets();
    assert_eq!(
        mac,
        format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
    );
    // Inside: eth0 with that address and MAC, default route via the gateway.
    let addr = d.ok(&["exec", "srv", "ip", "-o", "-4", "addr", "show", "eth0"]);
    assert!(addr.contains(&format!("{ip}/24")), "{addr}");
    let link = d.ok(&["exec", "srv", "cat", "/sys/class/net/eth0/address"]);
    assert_eq!(link, mac);
    let route = d.ok(&["exec", "srv", "ip", "route"]);
    assert!(route.contains(&format!("default via {gw}")), "{route}");
    // Another container reaches it by IP (busybox nc; wget crashes in its resolver).
    let get = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc {ip} 80");
    let body = d.ok(&["run", "--rm", "busybox", "sh", "-c", &get]);
    assert!(body.ends_with("hello-srv"), "{body}");
    // Each container has its own address; the docker network shows the bridge's subnet.
    let other = d.ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "ip -o -4 addr show eth0",
    ]);
    assert!(!other.contains(&format!("{ip}/")), "{other}");
}

#[test]
fn none_host_and_container_modes() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&[]);
    d.import_busybox();
    let none = d.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "ip",
        "-o",
        "link",
    ]);
    assert_eq!(none.lines().count(), 1, "{none}");
    assert!(none.contains("lo:"), "{none}");
    let host = d.ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "busybox",
        "ip",
        "-o",
        "link",
    ]);
    let ours = Command::new("ip")
        .args(["-o", "link"])
        .output()
        .expect("ip");
    let ours = String::from_utf8_lossy(&ours.stdout);
    assert!(host.contains(&format!("{}:", d.net.bridge)), "{host}");
    assert!(host.lines().count() > 1 && ours.contains("lo:"));
    d.ok(&["run", "-d", "--name", "xx", "busybox", "sleep", "600"]);
    let xs = d.ok(&["exec", "xx", "ip", "-o", "-4", "addr", "show", "eth0"]);
    let joined = d.ok(&[
        "run",
        "--rm",
        "--network",
        "container:xx",
        "busybox",
        "ip",
        "-o",
        "-4",
        "addr",
        "show",
        "eth0",
    ]);
    assert_eq!(
        xs.split_whitespace().nth(3),
        joined.split_whitespace().nth(3),
        "{xs} / {joined}"
    );
    // Publishing in container mode is refused as dockerd does.
    let o = d.docker(&["create", "--network", "container:xx", "-p", "80", "busybox"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("conflicting options: port publishing and the container type network mode"));
    // As in dockerd, an unknown network is found out at start.
    d.ok(&[
        "create",
        "--name",
        "lost",
        "--network",
        "nosuchnet",
        "busybox",
        "true",
    ]);
    let o = d.docker(&["start", "lost"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("network nosuchnet not found"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn kill_9_leaves_no_veth_pin_or_lease() {
    wharf_testutil::require_root!();
    let mut d = Daemon::start(&[]);
    d.import_busybox();
    let port = free_port();
    let spec = format!("127.0.0.1:{port}:80");
    d.ok(&[
        "run",
        "-d",
        "--name",
        "aa",
        "--hostname",
        "aa",
        "-p",
        &spec,
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]);
    let ip_a = d.ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "aa"]);
    d.ok(&["run", "-d", "--name", "bb", "busybox", "sleep", "600"]);
    assert_eq!(bridge_ports(&d.net.bridge).len(), 2);
    d.crash();
    // The daemon comes back without live-restore: it stops the containers and removes their
    // networking, then reconciles.
    d.start_again();
    wait_for("containers stopped", || d.ok(&["ps", "-q"]).is_empty());
    wait_for("veths removed", || bridge_ports(&d.net.bridge).is_empty());
    assert_eq!(netns_pins(&d), 0);
    assert_eq!(state_sandboxes(&d), 0);
    // Starting again hands out addresses without clashes and serves the port again.
    d.ok(&["start", "aa", "bb"]);
    let ip_a2 = d.ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "aa"]);
    let ip_b2 = d.ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "bb"]);
    assert_ne!(ip_a2, ip_b2);
    assert!(!ip_a.is_empty());
    assert_eq!(http_get(port), "hello-aa");
    d.ok(&["rm", "-f", "aa", "bb"]);
    wait_for("veths removed", || bridge_ports(&d.net.bridge).is_empty());
    assert_eq!(netns_pins(&d), 0);
}

#[test]
fn live_restore_keeps_networking_and_ports() {
    wharf_testutil::require_root!();
    let mut d = Daemon::start(&["--live-restore"]);
    d.import_busybox();
    let port = free_port();
    let spec = format!("127.0.0.1:{port}:80");
    d.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--hostname",
        "web",
        "-p",
        &spec,
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]);
    assert_eq!(http_get(port), "hello-web");
    let ip = d.ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web"]);
    d.crash();
    d.start_again();
    assert_eq!(http_get(port), "hello-web");
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web"]),
        ip
    );
    assert_eq!(bridge_ports(&d.net.bridge).len(), 1);
    // A new container does not get the live one's address.
    let other = d.ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "ip -o -4 addr show eth0",
    ]);
    assert!(!other.contains(&format!("{ip}/")), "{other}");
}

#[test]
fn daemon_mtu_and_default_bind_address_take_effect() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&["--mtu", "1400", "--ip", "127.0.0.1"]);
    d.import_busybox();
    // --mtu: the container's eth0 (and the bridge) carry it.
    assert_eq!(
        d.ok(&["run", "--rm", "busybox", "cat", "/sys/class/net/eth0/mtu"]),
        "1400"
    );
    // --ip: a port published without an address binds the daemon's default address.
    let port = free_port();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--hostname",
        "web",
        "-p",
        &format!("{port}:80"),
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]);
    assert_eq!(d.ok(&["port", "web", "80"]), format!("127.0.0.1:{port}"));
    assert_eq!(http_get(port), "hello-web");
}
