//! IPv6 on user-defined bridge networks end to end with the real docker CLI: addresses from
//! the network's IPv6 subnet (`--ipv6 --subnet`, or a random unique local /64), `--ip6`, the
//! route via the bridge, AAAA answers of the embedded resolver, isolation between networks
//! even with the host routing IPv6, and Docker's errors. Traffic stays on the bridges and
//! namespaces this daemon made.

mod common;

use common::net::Sysctl;
use common::Daemon;

fn ping6(d: &Daemon, from: &str, to: &str) -> bool {
    d.docker(&["exec", from, "ping6", "-c", "1", "-W", "2", to])
        .status
        .success()
}

#[test]
fn ipv6_networks_address_route_resolve_and_isolate() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&[]);
    d.import_busybox();
    // A prefix of this daemon's own slot, so parallel daemons never overlap.
    let pre = format!("fd77:{:x}:", d.net.index);
    let subnet = format!("{pre}:/64");
    d.ok(&["network", "create", "--ipv6", "--subnet", &subnet, "six"]);
    assert_eq!(
        d.ok(&["network", "inspect", "-f", "{{.EnableIPv6}}", "six"]),
        "true"
    );
    let ipam = d.ok(&["network", "inspect", "-f", "{{json .IPAM.Config}}", "six"]);
    assert!(
        ipam.contains(&format!(r#"{{"Subnet":"{subnet}","Gateway":"{pre}:1"}}"#)),
        "{ipam}"
    );
    assert!(
        ipam.contains(r#""Subnet":"10."#),
        "an IPv4 subnet too: {ipam}"
    );
    d.ok(&[
        "run",
        "-d",
        "--name",
        "s1",
        "--network",
        "six",
        "busybox",
        "sleep",
        "600",
    ]);
    let fixed = format!("{pre}:99");
    d.ok(&[
        "run",
        "-d",
        "--name",
        "s2",
        "--network",
        "six",
        "--ip6",
        &fixed,
        "busybox",
        "sleep",
        "600",
    ]);
    let field = |c: &str, f: &str| {
        d.ok(&[
            "inspect",
            "-f",
            &format!("{{{{.NetworkSettings.Networks.six.{f}}}}}"),
            c,
        ])
    };
    assert_eq!(field("s1", "GlobalIPv6Address"), format!("{pre}:2"));
    assert_eq!(field("s1", "GlobalIPv6PrefixLen"), "64");
    assert_eq!(field("s1", "IPv6Gateway"), format!("{pre}:1"));
    assert_eq!(field("s2", "GlobalIPv6Address"), fixed);
    assert_eq!(
        field("s2", "IPAMConfig.IPv6Address"),
        fixed,
        "what was asked for"
    );
    let routes = d.ok(&["exec", "s1", "ip", "-6", "route"]);
    assert!(
        routes.contains(&format!("default via {pre}:1 dev eth0")),
        "{routes}"
    );
    // Both ways on the network, the gateway, and names answering AAAA.
    assert!(ping6(&d, "s1", &fixed));
    assert!(ping6(&d, "s2", &format!("{pre}:2")));
    assert!(ping6(&d, "s1", &format!("{pre}:1")));
    assert!(ping6(&d, "s1", "s2"));
    let aaaa = d.ok(&["exec", "s1", "nslookup", "-type=AAAA", "s2"]);
    assert!(aaaa.contains(&fixed), "{aaaa}");
    let members = d.ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .Containers}}{{.IPv6Address}} {{end}}",
        "six",
    ]);
    assert!(members.contains(&format!("{fixed}/64")), "{members}");

    // Another IPv6 network: with the host routing IPv6, Wharf's rules still keep it apart.
    let _fwd = Sysctl::save("/proc/sys/net/ipv6/conf/all/forwarding");
    std::fs::write("/proc/sys/net/ipv6/conf/all/forwarding", "1").expect("forwarding");
    let other = format!("fd78:{:x}::/64", d.net.index);
    d.ok(&["network", "create", "--ipv6", "--subnet", &other, "other"]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "o1",
        "--network",
        "other",
        "busybox",
        "sleep",
        "600",
    ]);
    let o1 = d.ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.other.GlobalIPv6Address}}",
        "o1",
    ]);
    assert!(ping6(&d, "o1", &format!("fd78:{:x}::1", d.net.index)));
    assert!(!ping6(&d, "s1", &o1), "IPv6 crossed networks");
    assert!(!ping6(&d, "o1", &fixed), "IPv6 crossed networks");

    // --ipv6 without a subnet: a random unique local /64.
    d.ok(&["network", "create", "--ipv6", "ula"]);
    let ula = d.ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
        "ula",
    ]);
    let ula6 = ula
        .split_whitespace()
        .find(|s| s.starts_with("fd") && s.ends_with("::/64"))
        .unwrap_or_else(|| panic!("no ULA /64: {ula}"))
        .trim_end_matches(":/64")
        .to_string();
    // ... which its containers really get.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "u1",
        "--network",
        "ula",
        "busybox",
        "sleep",
        "600",
    ]);
    let addrs = d.ok(&["exec", "u1", "ip", "-6", "-o", "addr", "show", "eth0"]);
    assert!(
        addrs.contains(&format!("inet6 {ula6}:2/64")),
        "{ula6}: {addrs}"
    );

    // Docker's errors, and nothing made.
    let o = d.docker(&["network", "create", "--ipv6", "--subnet", &subnet, "clash"]);
    assert!(common::failed(&o).contains("Pool overlaps with other one on this address space"));
    let o = d.docker(&[
        "run",
        "--network",
        "six",
        "--ip6",
        "fd00:dead::5",
        "busybox",
        "true",
    ]);
    assert!(common::failed(&o)
        .contains("no configured subnet or ip-range contain the IP address fd00:dead::5"));
    let o = d.docker(&["network", "create", "-d", "macvlan", "--ipv6", "mv6"]);
    assert!(common::failed(&o).contains("IPv6 on macvlan networks is not supported yet"));
    let (st, body) = d.raw(
        "POST",
        "/v1.45/networks/create",
        br#"{"Name":"no6","IPAM":{"Config":[{"Subnet":"fd79::/64"}]}}"#,
    );
    assert_eq!(st, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("needs IPv6 enabled on the network"));
    for (family, addr) in [("IPv4", "10.1.2"), ("IPv6", "fd00::zz")] {
        let body = format!(
            r#"{{"Image":"busybox","NetworkingConfig":{{"EndpointsConfig":{{"six":{{"IPAMConfig":{{"{family}Address":"{addr}"}}}}}}}}}}"#
        );
        let (st, out) = d.raw("POST", "/v1.45/containers/create", body.as_bytes());
        let out = String::from_utf8_lossy(&out);
        assert_eq!(st, 400, "{out}");
        assert!(
            out.contains(&format!("invalid {family} address: {addr}")),
            "{out}"
        );
    }
    let names = d.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(
        ["clash", "mv6", "no6"].iter().all(|n| !names.contains(n)),
        "{names}"
    );

    d.ok(&["rm", "-f", "s1", "s2", "o1", "u1"]);
    d.ok(&["network", "rm", "six", "other", "ula"]);
}
