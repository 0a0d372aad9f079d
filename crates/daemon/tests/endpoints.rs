//! Container endpoints end to end (issue #9): static addresses (`--ip`, `network connect
//! --ip --alias`) with Docker's errors, links on user networks and the default bridge,
//! `--add-host` with `host-gateway`. Every effect is checked inside the containers.

mod common;

use common::Daemon;

fn err(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// The first three octets of the last /24 in this daemon's pool (never handed out
/// automatically before the other fifteen).
fn spare_prefix(d: &Daemon) -> String {
    let base = d
        .net
        .pool
        .trim_start_matches("base=")
        .split('/')
        .next()
        .unwrap_or("")
        .to_string();
    let o: Vec<u32> = base.split('.').filter_map(|x| x.parse().ok()).collect();
    assert_eq!(o.len(), 4, "pool {}", d.net.pool);
    format!("{}.{}.{}", o[0], o[1], o[2] + 15)
}

/// The IPv4 addresses of the container's interfaces, as `ip -4 -o addr` prints them.
fn addrs(d: &Daemon, c: &str) -> String {
    d.ok(&["exec", c, "ip", "-4", "-o", "addr"])
}

#[test]
fn static_addresses_and_dockers_errors() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&[]);
    d.import_busybox();
    let p = spare_prefix(&d);
    d.ok(&[
        "network",
        "create",
        "--subnet",
        &format!("{p}.0/24"),
        "fixed",
    ]);
    d.ok(&["network", "create", "auto"]);
    let run = |name: &str, net: &str, ip: &str| {
        d.docker(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            net,
            "--ip",
            ip,
            "busybox",
            "sleep",
            "600",
        ])
    };
    let o = run("ca", "fixed", &format!("{p}.50"));
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        addrs(&d, "ca").contains(&format!("inet {p}.50/24")),
        "{}",
        addrs(&d, "ca")
    );
    let ip = d.ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.fixed.IPAddress}} {{.NetworkSettings.Networks.fixed.IPAMConfig.IPv4Address}}",
        "ca",
    ]);
    assert_eq!(ip, format!("{p}.50 {p}.50"));
    // Taken: the create goes through, the start fails, as with dockerd.
    let o = run("cb", "fixed", &format!("{p}.50"));
    assert!(!o.status.success());
    assert!(err(&o).contains("Address already in use"), "{}", err(&o));
    let o = run("cc", "auto", "10.0.0.9");
    assert!(!o.status.success());
    assert!(
        err(&o).contains("user specified IP address is supported only when connecting to networks with user configured subnets"),
        "{}",
        err(&o)
    );
    let o = run("cc", "fixed", "10.0.0.9");
    assert!(!o.status.success());
    assert!(
        err(&o).contains("no configured subnet or ip-range contain the IP address 10.0.0.9"),
        "{}",
        err(&o)
    );
    let o = run("cc", "bridge", &format!("{p}.51"));
    assert!(!o.status.success());
    assert!(
        err(&o).contains("user specified IP address is supported on user defined networks only"),
        "{}",
        err(&o)
    );
    // Refused requests created nothing.
    let names = d.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(!names.lines().any(|n| n == "cc"), "{names}");
    // connect --ip --alias to a running container: the address inside, the alias in DNS.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "cd",
        "--network",
        "auto",
        "busybox",
        "sleep",
        "600",
    ]);
    d.ok(&[
        "network",
        "connect",
        "--ip",
        &format!("{p}.60"),
        "--alias",
        "extra",
        "fixed",
        "cd",
    ]);
    assert!(
        addrs(&d, "cd").contains(&format!("inet {p}.60/24")),
        "{}",
        addrs(&d, "cd")
    );
    let ping = d.ok(&["exec", "ca", "ping", "-c", "1", "-W", "2", "extra"]);
    assert!(ping.contains(&format!("({p}.60)")), "{ping}");
    // Kept across a restart of the container.
    d.ok(&["restart", "-t", "0", "cd"]);
    assert!(
        addrs(&d, "cd").contains(&format!("inet {p}.60/24")),
        "{}",
        addrs(&d, "cd")
    );
    let o = d.docker(&["network", "connect", "--ip", "10.0.0.9", "auto", "ca"]);
    assert!(!o.status.success());
    assert!(err(&o).contains("user configured subnets"), "{}", err(&o));
}
