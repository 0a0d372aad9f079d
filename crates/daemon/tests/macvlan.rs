//! Macvlan and ipvlan networks end to end with the real docker CLI: sub-interfaces of a
//! parent the test makes (a dummy link of its own, so no frame leaves the host), ip-range and
//! aux addresses, names resolving between containers, connect/disconnect, Docker's errors,
//! the parents Wharf makes itself (a dummy for a network given none, a VLAN link for
//! `<parent>.<id>`), and a kill -9 of wharfd with such networks in use.

mod common;

use std::process::Command;

use common::{wait_for, Daemon};

/// A host link the test made, deleted on drop.
struct Link(String);

impl Link {
    /// A link that drops what it is sent: a dummy, or an IFB where the kernel has no dummy
    /// driver (as Wharf itself does).
    fn sink(name: String) -> Link {
        let _ = Command::new("ip").args(["link", "del", &name]).output();
        let made = ["dummy", "ifb"].iter().any(|kind| {
            Command::new("ip")
                .args(["link", "add", &name, "type", kind])
                .output()
                .is_ok_and(|o| o.status.success())
        });
        assert!(made, "ip link add {name}");
        let up = Command::new("ip")
            .args(["link", "set", &name, "up"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(up, "ip link set {name} up");
        Link(name)
    }
}

/// Whether the kernel can make `args` (`ip link add ...`); the probe is deleted again.
fn kernel_makes(name: &str, args: &[&str]) -> bool {
    let ok = Command::new("ip")
        .args(["link", "add"])
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success());
    let _ = Command::new("ip").args(["link", "del", name]).output();
    ok
}

impl Drop for Link {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).output();
    }
}

fn link_details(name: &str) -> Option<String> {
    let o = Command::new("ip")
        .args(["-d", "-o", "link", "show", name])
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).to_string())
}

/// `ip <args>` inside a container's network namespace, seen from the host.
fn ip_in(d: &Daemon, container: &str, args: &[&str]) -> String {
    let key = d.ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.SandboxKey}}",
        container,
    ]);
    let o = Command::new("nsenter")
        .arg(format!("--net={key}"))
        .arg("ip")
        .args(args)
        .output()
        .expect("nsenter");
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// The `n`th /24 of the daemon's slot (the pool hands out the low ones first).
fn slot_subnet(d: &Daemon, n: u32) -> String {
    let base = d.net.bip.split('/').next().unwrap_or("");
    let o: Vec<u32> = base.split('.').filter_map(|x| x.parse().ok()).collect();
    format!("{}.{}.{}.0", o[0], o[1], o[2] + n)
}

fn ping(d: &Daemon, from: &str, to: &str) -> bool {
    d.docker(&["exec", from, "ping", "-c", "1", "-W", "2", to])
        .status
        .success()
}

#[test]
fn macvlan_and_ipvlan_on_a_parent() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&[]);
    d.import_busybox();
    let parent = Link::sink(format!("wtp{}", d.net.index));
    let net = slot_subnet(&d, 14);
    let pre = net.trim_end_matches(".0");
    let (subnet, range, gw) = (
        format!("{net}/24"),
        format!("{net}/28"),
        format!("{pre}.254"),
    );
    let aux = format!("router={pre}.2");
    let opt = format!("parent={}", parent.0);
    d.ok(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "--subnet",
        &subnet,
        "--ip-range",
        &range,
        "--gateway",
        &gw,
        "--aux-address",
        &aux,
        "-o",
        &opt,
        "mv",
    ]);
    let ipam = d.ok(&["network", "inspect", "-f", "{{json .IPAM.Config}}", "mv"]);
    assert_eq!(
        ipam,
        format!(
            r#"[{{"Subnet":"{subnet}","IPRange":"{range}","Gateway":"{gw}","AuxiliaryAddresses":{{"router":"{pre}.2"}}}}]"#
        )
    );
    assert_eq!(
        d.ok(&["network", "inspect", "-f", "{{.Driver}} {{.Options}}", "mv"]),
        format!("macvlan map[parent:{}]", parent.0)
    );
    for c in ["ma", "mb"] {
        d.ok(&[
            "run",
            "-d",
            "--name",
            c,
            "--network",
            "mv",
            "busybox",
            "sleep",
            "600",
        ]);
    }
    // Addresses from the range, past the network address and the aux address.
    let ip = |c: &str| {
        d.ok(&[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.mv.IPAddress}}",
            c,
        ])
    };
    assert_eq!(ip("ma"), format!("{pre}.1"));
    assert_eq!(ip("mb"), format!("{pre}.3"));
    let mac = d.ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.mv.MacAddress}}",
        "ma",
    ]);
    let eth0 = ip_in(&d, "ma", &["-d", "-o", "link", "show", "eth0"]);
    assert!(eth0.contains("macvlan mode bridge"), "{eth0}");
    assert!(eth0.contains(&mac), "{mac} in {eth0}");
    let routes = ip_in(&d, "ma", &["route"]);
    assert!(
        routes.contains(&format!("default via {gw} dev eth0")),
        "{routes}"
    );
    // Siblings on one parent reach each other; names resolve on the network.
    assert!(ping(&d, "ma", "mb"));
    assert!(ping(&d, "mb", &format!("{pre}.1")));
    // Nothing of theirs is on the host.
    assert_eq!(children_on_host(&parent.0), Vec::<String>::new());

    // Private mode, made with wharf's own flags: its siblings cannot reach each other, and
    // the range and aux address hold as with docker's.
    let parent3 = Link::sink(format!("wtr{}", d.net.index));
    let pre3 = slot_subnet(&d, 13);
    let pre3 = pre3.trim_end_matches(".0");
    let made = d.wharf(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "--subnet",
        &format!("{pre3}.0/24"),
        "--ip-range",
        &format!("{pre3}.8/29"),
        "--aux-address",
        &format!("r={pre3}.8"),
        "-o",
        "macvlan_mode=private",
        "-o",
        &format!("parent={}", parent3.0),
        "pv",
    ]);
    assert!(made.status.success(), "{}", common::stderr(&made));
    for c in ["p1", "p2"] {
        d.ok(&[
            "run",
            "-d",
            "--name",
            c,
            "--network",
            "pv",
            "busybox",
            "sleep",
            "600",
        ]);
    }
    let pv_ip = |c: &str| {
        d.ok(&[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.pv.IPAddress}}",
            c,
        ])
    };
    assert_eq!(pv_ip("p1"), format!("{pre3}.9"));
    assert_eq!(pv_ip("p2"), format!("{pre3}.10"));
    let p1 = ip_in(&d, "p1", &["-d", "-o", "link", "show", "eth0"]);
    assert!(p1.contains("macvlan mode private"), "{p1}");
    assert!(
        !ping(&d, "p1", &format!("{pre3}.10")),
        "private mode let siblings talk"
    );

    // Published ports cannot be relayed to a macvlan address: refused, not ignored.
    let o = d.docker(&["run", "--network", "mv", "-p", "8080:80", "busybox", "true"]);
    assert!(
        common::failed(&o).contains("published ports are not supported on macvlan network mv"),
        "{}",
        common::failed(&o)
    );

    // A container of the default bridge joins and leaves at run time.
    d.ok(&["run", "-d", "--name", "mc", "busybox", "sleep", "600"]);
    d.ok(&["network", "connect", "mv", "mc"]);
    let eth1 = ip_in(&d, "mc", &["-d", "-o", "link", "show", "eth1"]);
    assert!(eth1.contains("macvlan"), "{eth1}");
    assert!(ping(&d, "mc", "ma"));
    d.ok(&["network", "disconnect", "mv", "mc"]);
    assert!(ip_in(&d, "mc", &["-o", "link"])
        .lines()
        .all(|l| !l.contains("eth1")));

    // ipvlan l2 on a parent of its own (the kernel lets a link carry macvlans or ipvlans,
    // not both): the parent's MAC, none reported.
    let parent2 = Link::sink(format!("wti{}", d.net.index));
    let opt2 = format!("parent={}", parent2.0);
    let net2 = slot_subnet(&d, 15);
    let subnet2 = format!("{net2}/24");
    d.ok(&[
        "network", "create", "-d", "ipvlan", "--subnet", &subnet2, "-o", &opt2, "iv",
    ]);
    let probe = format!("{}p", parent2.0);
    if kernel_makes(&probe, &[&probe, "link", &parent2.0, "type", "ipvlan"]) {
        for c in ["ix", "iy"] {
            d.ok(&[
                "run",
                "-d",
                "--name",
                c,
                "--network",
                "iv",
                "busybox",
                "sleep",
                "600",
            ]);
        }
        let x = ip_in(&d, "ix", &["-d", "-o", "link", "show", "eth0"]);
        assert!(x.contains("ipvlan") && x.contains("mode l2"), "{x}");
        assert_eq!(
            d.ok(&[
                "inspect",
                "-f",
                "{{.NetworkSettings.Networks.iv.MacAddress}}",
                "ix"
            ]),
            ""
        );
        // No gateway given: no default route, as in Docker.
        assert!(!ip_in(&d, "ix", &["route"]).contains("default"));
        assert!(ping(&d, "ix", "iy"));
    } else {
        // This kernel has no ipvlan driver: the start says so and leaves nothing behind.
        eprintln!("no ipvlan in this kernel: checking the refusal instead");
        let o = d.docker(&["run", "--name", "ix", "--network", "iv", "busybox", "true"]);
        let e = common::failed(&o);
        assert!(
            e.contains("create ipvlan link") && e.contains("EOPNOTSUPP"),
            "{e}"
        );
        d.ok(&["run", "-d", "--name", "iy", "busybox", "sleep", "600"]);
    }

    // Docker's errors, and nothing made.
    for (driver, opts, msg) in [
        (
            "macvlan",
            vec!["macvlan_mode=bogus", opt.as_str()],
            "requested macvlan mode 'bogus' is not valid, 'bridge' mode is the macvlan driver default",
        ),
        (
            "ipvlan",
            vec!["parent=lo"],
            "loopback interface is not a valid ipvlan parent link",
        ),
        (
            "macvlan",
            vec!["parent=nosuch9"],
            "invalid subinterface vlan name nosuch9, example formatting is eth0.10",
        ),
    ] {
        let mut args = vec!["network", "create", "-d", driver];
        for o in opts {
            args.extend(["-o", o]);
        }
        args.push("bad");
        assert!(common::failed(&d.docker(&args)).contains(msg), "{args:?}");
    }
    // (the docker CLI checks ranges against subnets itself: the API's answer, raw)
    let (st, body) = d.raw(
        "POST",
        "/v1.45/networks/create",
        br#"{"Name":"bad","Driver":"macvlan","IPAM":{"Config":[{"Subnet":"10.250.0.0/24","IPRange":"10.251.0.0/28"}]}}"#,
    );
    let body = String::from_utf8_lossy(&body);
    assert_eq!(st, 400, "{body}");
    assert!(
        body.contains(
            "invalid ip-range 10.251.0.0/28: parent subnet 10.250.0.0/24 doesn't contain ip-range"
        ),
        "{body}"
    );
    let o = d.docker(&[
        "run",
        "--network",
        "iv",
        "--mac-address",
        "02:42:0a:00:00:09",
        "busybox",
        "true",
    ]);
    assert!(common::failed(&o)
        .contains("ipvlan interfaces do not support custom mac address assignment"));
    assert!(!d
        .ok(&["network", "ls", "--format", "{{.Name}}"])
        .contains("bad"));

    let _ = d.docker(&["rm", "-f", "ix"]);
    d.ok(&["rm", "-f", "ma", "mb", "mc", "iy", "p1", "p2"]);
    d.ok(&["network", "rm", "mv", "iv", "pv"]);
    // The user's parent stays.
    assert!(link_details(&parent.0).is_some());
    assert_eq!(children_on_host(&parent.0), Vec::<String>::new());
}

/// Host links on top of `parent` (`ip` shows them as `name@parent`).
fn children_on_host(parent: &str) -> Vec<String> {
    let o = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .expect("ip");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .filter(|n| n.split_once('@').is_some_and(|(_, p)| p == parent))
        .map(str::to_string)
        .collect()
}

#[test]
fn parents_wharf_makes_come_and_go_also_across_kill_9() {
    wharf_testutil::require_root!();
    let mut d = Daemon::start(&[]);
    d.import_busybox();
    let trunk = Link::sink(format!("wtq{}", d.net.index));
    // No parent: a dummy of Wharf's, internal (no way out), siblings still talk.
    let id = d.ok(&["network", "create", "-d", "macvlan", "inner"]);
    let dummy = format!("dm-{}", &id[..12]);
    let details = link_details(&dummy).unwrap_or_default();
    assert!(
        (details.contains("dummy") || details.contains("ifb")) && details.contains(",UP"),
        "{details}"
    );
    for c in ["pp", "pq"] {
        d.ok(&[
            "run",
            "-d",
            "--name",
            c,
            "--network",
            "inner",
            "busybox",
            "sleep",
            "600",
        ]);
    }
    assert!(ping(&d, "pp", "pq"));
    assert!(!ip_in(&d, "pp", &["route"]).contains("default"));

    // `<trunk>.<id>`: a VLAN link made for the first network, shared by the next, deleted
    // with the last.
    let vlan = format!("{}.42", trunk.0);
    let opt = format!("parent={vlan}");
    let probe = format!("{}.41", trunk.0);
    let vlans = kernel_makes(
        &probe,
        &["link", &trunk.0, "name", &probe, "type", "vlan", "id", "41"],
    );
    let macvlan_on_vlan = ["network", "create", "-d", "macvlan", "-o", &opt, "v1"];
    if vlans {
        d.ok(&macvlan_on_vlan);
        d.ok(&["network", "create", "-d", "macvlan", "-o", &opt, "v2"]);
        let details = link_details(&vlan).unwrap_or_default();
        assert!(details.contains("vlan protocol 802.1Q id 42"), "{details}");
    } else {
        // No 802.1Q in this kernel: refused at create, and neither network nor link stays.
        eprintln!("no VLAN support in this kernel: checking the refusal instead");
        let e = common::failed(&d.docker(&macvlan_on_vlan));
        assert!(
            e.contains("create vlan link") && e.contains("EOPNOTSUPP"),
            "{e}"
        );
        assert!(d.docker(&["network", "inspect", "v1"]).status.code() == Some(1));
        assert!(link_details(&vlan).is_none());
        // What the rest checks needs two more networks of Wharf's.
        d.ok(&["network", "create", "-d", "macvlan", "v1"]);
        d.ok(&["network", "create", "-d", "macvlan", "v2"]);
    }
    d.ok(&[
        "run",
        "-d",
        "--name",
        "pr",
        "--network",
        "v1",
        "busybox",
        "sleep",
        "600",
    ]);

    // kill -9, restart without live-restore: containers stopped, their interfaces gone with
    // their namespaces, the networks and the links Wharf made still there.
    d.crash();
    d.start_again();
    wait_for("containers stopped", || d.ok(&["ps", "-q"]).is_empty());
    assert!(link_details(&dummy).is_some());
    assert_eq!(link_details(&vlan).is_some(), vlans);
    // A crash after the network was saved but before its link was made: start-up makes it.
    let _ = Command::new("ip").args(["link", "del", &dummy]).output();
    d.restart();
    assert!(link_details(&dummy).is_some_and(|l| l.contains(",UP")));
    d.ok(&["start", "pp", "pq", "pr"]);
    assert!(ping(&d, "pp", "pq"));

    d.ok(&["rm", "-f", "pp", "pq", "pr"]);
    d.ok(&["network", "rm", "v1"]);
    assert_eq!(link_details(&vlan).is_some(), vlans, "v2 still uses it");
    d.ok(&["network", "rm", "v2", "inner"]);
    assert!(link_details(&vlan).is_none());
    assert!(link_details(&dummy).is_none());
    assert!(link_details(&trunk.0).is_some());
}
