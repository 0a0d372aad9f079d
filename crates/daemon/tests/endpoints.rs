//! Container endpoints end to end (issue #9): static addresses (`--ip`, `network connect
//! --ip --alias`) with Docker's errors, links on user networks and the default bridge,
//! `--add-host` with `host-gateway`. Every effect is checked inside the containers.

mod common;

use common::{wait_for, Daemon};

/// Serves `hello-db` on port 80.
const HTTPD: &str =
    "mkdir -p /www && echo hello-db > /www/index.html && exec httpd -f -p 80 -h /www";

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

/// Asks the embedded resolver of container `c` for `name` (DNS only, no traffic beyond the
/// namespace); the addresses it answered.
fn resolve(d: &Daemon, c: &str, name: &str) -> Vec<String> {
    let o = d.docker(&["exec", c, "nslookup", "-type=a", name, "127.0.0.11"]);
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .skip_while(|l| !l.starts_with("Name:"))
        .filter_map(|l| l.strip_prefix("Address:"))
        .map(|a| a.trim().to_string())
        .collect()
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
    assert!(o.status.success(), "{}", common::stderr(&o));
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
    assert!(
        common::stderr(&o).contains("Address already in use"),
        "{}",
        common::stderr(&o)
    );
    let o = run("cc", "auto", "10.0.0.9");
    assert!(!o.status.success());
    assert!(
        common::stderr(&o).contains("user specified IP address is supported only when connecting to networks with user configured subnets"),
        "{}",
        common::stderr(&o)
    );
    // What an endpoint may ask that Wharf cannot honour yet is refused, not ignored.
    for (args, msg) in [
        (
            ["--network", "fixed", "--link-local-ip", "169.254.7.7"],
            "link-local endpoint addresses are not supported yet",
        ),
        (
            [
                "--network",
                "name=fixed,driver-opt=com.docker.network.endpoint.ifname=foo0",
                "--label",
                "x=y",
            ],
            "endpoint driver options (driver-opt) are not supported yet",
        ),
    ] {
        let o = d.docker(&[&["run", "--rm"][..], &args[..], &["busybox", "true"]].concat());
        assert!(!o.status.success());
        assert!(common::stderr(&o).contains(msg), "{}", common::stderr(&o));
    }
    let o = run("cc", "fixed", "10.0.0.9");
    assert!(!o.status.success());
    assert!(
        common::stderr(&o)
            .contains("no configured subnet or ip-range contain the IP address 10.0.0.9"),
        "{}",
        common::stderr(&o)
    );
    let o = run("cc", "bridge", &format!("{p}.51"));
    assert!(!o.status.success());
    assert!(
        common::stderr(&o)
            .contains("user specified IP address is supported on user defined networks only"),
        "{}",
        common::stderr(&o)
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
    assert_eq!(resolve(&d, "ca", "extra"), [format!("{p}.60")]);
    // Kept across a restart of the container.
    d.ok(&["restart", "-t", "0", "cd"]);
    assert!(
        addrs(&d, "cd").contains(&format!("inet {p}.60/24")),
        "{}",
        addrs(&d, "cd")
    );
    let o = d.docker(&["network", "connect", "--ip", "10.0.0.9", "auto", "ca"]);
    assert!(!o.status.success());
    assert!(
        common::stderr(&o).contains("user configured subnets"),
        "{}",
        common::stderr(&o)
    );
}

fn ip_on(d: &Daemon, c: &str, net: &str) -> String {
    d.ok(&[
        "inspect",
        "-f",
        &format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}"),
        c,
    ])
}

#[test]
fn legacy_links_on_the_default_bridge() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&[]);
    d.import_busybox();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "db",
        "--hostname",
        "dbhost",
        "-e",
        "PASSWORD=x",
        "--expose",
        "80",
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]);
    let ip = ip_on(&d, "db", "bridge");
    d.ok(&[
        "run", "-d", "--name", "web", "--link", "db:my-db", "busybox", "sleep", "600",
    ]);
    let hosts = d.ok(&["exec", "web", "cat", "/etc/hosts"]);
    assert!(hosts.contains(&format!("{ip}\tmy-db dbhost db")), "{hosts}");
    let env = d.ok(&["exec", "web", "env"]);
    for want in [
        format!("MY_DB_PORT=tcp://{ip}:80"),
        format!("MY_DB_PORT_80_TCP=tcp://{ip}:80"),
        format!("MY_DB_PORT_80_TCP_ADDR={ip}"),
        "MY_DB_PORT_80_TCP_PORT=80".to_string(),
        "MY_DB_NAME=/web/my-db".to_string(),
        "MY_DB_ENV_PASSWORD=x".to_string(),
    ] {
        assert!(env.lines().any(|l| l == want), "{want} not in\n{env}");
    }
    // By its alias through /etc/hosts, once its httpd is up.
    wait_for("my-db to answer web", || {
        let o = d.docker(&["exec", "web", "wget", "-qO-", "http://my-db/"]);
        String::from_utf8_lossy(&o.stdout).trim() == "hello-db"
    });
    let links = d.ok(&["inspect", "-f", "{{json .HostConfig.Links}}", "web"]);
    assert_eq!(links, r#"["/db:/web/my-db"]"#);
    // Docker's refusals: a missing container at create, a stopped one at start.
    let o = d.docker(&["create", "--link", "nosuch:x", "busybox", "true"]);
    assert!(!o.status.success());
    assert!(
        common::stderr(&o).contains("could not get container for nosuch"),
        "{}",
        common::stderr(&o)
    );
    d.ok(&["create", "--name", "idle", "busybox", "true"]);
    let o = d.docker(&["run", "-d", "--link", "idle:i", "busybox", "sleep", "1"]);
    assert!(!o.status.success());
    assert!(
        common::stderr(&o).contains("Cannot link to a non running container: /idle AS"),
        "{}",
        common::stderr(&o)
    );
    // rm --link: gone from the next start on.
    let o = d.docker(&["rm", "--link", "/web/my-db"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    d.ok(&["restart", "-t", "0", "web"]);
    let hosts = d.ok(&["exec", "web", "cat", "/etc/hosts"]);
    assert!(!hosts.contains("my-db"), "{hosts}");
    let env = d.ok(&["exec", "web", "env"]);
    assert!(!env.contains("MY_DB_"), "{env}");
    let o = d.docker(&["rm", "--link", "/web/my-db"]);
    assert!(!o.status.success());
}

#[test]
fn links_on_user_networks_are_private_dns_aliases() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&[]);
    d.import_busybox();
    d.ok(&["network", "create", "un"]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "srv",
        "--network",
        "un",
        "busybox",
        "sleep",
        "600",
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "cli",
        "--network",
        "un",
        "--link",
        "srv:backend",
        "busybox",
        "sleep",
        "600",
    ]);
    let ip = ip_on(&d, "srv", "un");
    assert_eq!(resolve(&d, "cli", "backend"), [ip.as_str()]);
    let aliases = d.ok(&[
        "inspect",
        "-f",
        "{{json .NetworkSettings.Networks.un.Links}}",
        "cli",
    ]);
    assert_eq!(aliases, r#"["srv:backend"]"#);
    let id = d.ok(&["inspect", "-f", "{{.Id}}", "srv"]);
    let names = d.ok(&[
        "inspect",
        "-f",
        "{{json .NetworkSettings.Networks.un.DNSNames}}",
        "srv",
    ]);
    assert_eq!(names, format!(r#"["srv","{}"]"#, &id[..12]));
    assert_eq!(resolve(&d, "cli", &id[..12]), [ip.as_str()]);
    // A running default-bridge container connected to the network gets its resolver.
    d.ok(&["run", "-d", "--name", "lone", "busybox", "sleep", "600"]);
    d.ok(&["network", "connect", "un", "lone"]);
    let conf = d.ok(&["exec", "lone", "cat", "/etc/resolv.conf"]);
    assert!(conf.contains("nameserver 127.0.0.11"), "{conf}");
    assert_eq!(resolve(&d, "lone", "srv"), [ip.as_str()]);
    // Only the linking container knows the alias.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "other",
        "--network",
        "un",
        "busybox",
        "sleep",
        "600",
    ]);
    assert!(resolve(&d, "other", "backend").is_empty());
    // A hostname of its own is one of its DNS names too (dockerd 25+).
    d.ok(&[
        "run",
        "-d",
        "--name",
        "named",
        "--hostname",
        "box.example",
        "--network",
        "un",
        "busybox",
        "sleep",
        "600",
    ]);
    let named = d.ok(&["inspect", "-f", "{{.Id}}", "named"]);
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{json .NetworkSettings.Networks.un.DNSNames}}",
            "named",
        ]),
        format!(r#"["named","{}","box.example"]"#, &named[..12])
    );
    let named_ip = ip_on(&d, "named", "un");
    assert_eq!(resolve(&d, "other", "box.example"), [named_ip.as_str()]);
}

#[test]
fn add_host_with_host_gateway() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&[]);
    d.import_busybox();
    let gw = d.ok(&[
        "network",
        "inspect",
        "-f",
        "{{(index .IPAM.Config 0).Gateway}}",
        "bridge",
    ]);
    let out = d.ok(&[
        "run",
        "--rm",
        "--add-host",
        "gw:host-gateway",
        "--add-host",
        "fixed:10.9.8.7",
        "busybox",
        "sh",
        "-c",
        "cat /etc/hosts",
    ]);
    assert!(out.contains(&format!("{gw}\tgw")), "{out}");
    assert!(out.contains("10.9.8.7\tfixed"), "{out}");
    drop(d);
    let d = Daemon::start(&["--host-gateway-ip", "10.1.2.3"]);
    d.import_busybox();
    let hosts = d.ok(&[
        "run",
        "--rm",
        "--add-host",
        "gw:host-gateway",
        "busybox",
        "cat",
        "/etc/hosts",
    ]);
    assert!(hosts.contains("10.1.2.3\tgw"), "{hosts}");
}

#[test]
fn mac_address_on_both_kinds_of_network() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&[]);
    d.import_busybox();
    d.ok(&["network", "create", "macnet"]);
    for (name, net, mac) in [
        ("mb", "bridge", "02:42:aa:bb:cc:01"),
        ("mu", "macnet", "02:42:aa:bb:cc:02"),
    ] {
        d.ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            net,
            "--mac-address",
            mac,
            "busybox",
            "sh",
            "-c",
            HTTPD,
        ]);
        let inside = d.ok(&["exec", name, "cat", "/sys/class/net/eth0/address"]);
        assert_eq!(inside, mac);
        let shown = d.ok(&[
            "inspect",
            "-f",
            &format!("{{{{(index .NetworkSettings.Networks \"{net}\").MacAddress}}}}"),
            name,
        ]);
        assert_eq!(shown, mac);
    }
    // Reachable with it (the neighbour tables learn the new address).
    let ip = ip_on(&d, "mu", "macnet");
    d.ok(&[
        "run",
        "-d",
        "--name",
        "mpeer",
        "--network",
        "macnet",
        "busybox",
        "sleep",
        "600",
    ]);
    wait_for("mu to answer", || {
        let o = d.docker(&["exec", "mpeer", "wget", "-qO-", &format!("http://{ip}/")]);
        String::from_utf8_lossy(&o.stdout).trim() == "hello-db"
    });
    // The CLI's NET I/O column reads the stats' networks counters.
    let io = d.ok(&["stats", "--no-stream", "--format", "{{.NetIO}}", "mu"]);
    assert!(!io.is_empty() && io != "0B / 0B", "{io}");
    let (st, body) = d.raw(
        "POST",
        "/v1.45/containers/create",
        br#"{"Image":"busybox","Cmd":["true"],"NetworkingConfig":{"EndpointsConfig":{"bridge":{"MacAddress":"zz:00"}}}}"#,
    );
    assert_eq!(st, 400);
    assert!(
        String::from_utf8_lossy(&body).contains("invalid MAC address zz:00"),
        "{}",
        String::from_utf8_lossy(&body)
    );
}

/// `docker run --network a --network b`: every network of the create request, aliases on
/// each, the first one carrying the default route.
#[test]
fn every_network_of_the_create_request_is_joined() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&[]);
    d.import_busybox();
    d.ok(&["network", "create", "na"]);
    d.ok(&["network", "create", "nb"]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "multi",
        "--network",
        "name=na,alias=on-a",
        "--network",
        "name=nb,alias=on-b",
        "busybox",
        "sleep",
        "600",
    ]);
    let (a, b) = (ip_on(&d, "multi", "na"), ip_on(&d, "multi", "nb"));
    let inside = addrs(&d, "multi");
    assert!(
        inside.contains(&format!("inet {a}/")) && inside.contains(&format!("inet {b}/")),
        "{inside}"
    );
    let route = d.ok(&["exec", "multi", "ip", "route"]);
    let gw_a = d.ok(&[
        "network",
        "inspect",
        "-f",
        "{{(index .IPAM.Config 0).Gateway}}",
        "na",
    ]);
    assert!(route.contains(&format!("default via {gw_a}")), "{route}");
    d.ok(&[
        "run",
        "-d",
        "--name",
        "peer",
        "--network",
        "nb",
        "busybox",
        "sleep",
        "600",
    ]);
    assert_eq!(resolve(&d, "peer", "on-b"), [b.as_str()]);
    assert!(
        resolve(&d, "peer", "on-a").is_empty(),
        "on-a is an alias on na only"
    );
    // --force for a container that is gone: nothing of that name is left to remove.
    let o = d.docker(&["network", "disconnect", "-f", "nb", "ghost"]);
    assert!(!o.status.success());
    assert!(
        common::stderr(&o).contains("endpoint ghost not found"),
        "{}",
        common::stderr(&o)
    );
    d.ok(&["network", "disconnect", "-f", "nb", "multi"]);
    assert!(!addrs(&d, "multi").contains(&format!("inet {b}/")));
}
