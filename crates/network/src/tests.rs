//! NetworkService against the recording fake kernel: the effects in order, rollback on
//! failure, leases across a reopen (a crash), and reconciliation.

use std::collections::HashSet;
use std::sync::Arc;

use super::*;
use crate::sys::fake::FakeKernel;

fn cfg(dir: &Path) -> Config {
    Config {
        state_dir: dir.join("state"),
        netns_dir: dir.join("netns"),
        bridge: "wtest0".into(),
        bip: None,
        mtu: 0,
        pools: ipam::default_pools(),
        default_ip: Ipv4Addr::UNSPECIFIED,
        dns: vec![],
        firewall: firewall::Settings::default(),
    }
}

#[test]
fn default_bridge_skips_host_routes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = Arc::new(FakeKernel::default());
    k.state.lock().expect("fake").routes = vec!["172.17.0.0/16".parse().expect("cidr")];
    let svc = NetworkService::open(cfg(dir.path()), k.clone()).expect("open");
    let n = svc.network("bridge").expect("bridge");
    assert_eq!(n.subnet, Some("172.18.0.0/16".parse().expect("cidr")));
    assert_eq!(n.gateway, Some(Ipv4Addr::new(172, 18, 0, 1)));
    assert_eq!(
        k.log(),
        [
            "nft wharf-wtest0 5 rules",
            "sysctl net/ipv4/ip_forward=1",
            "host: bridge wtest0 mtu 0",
            "host: addr wtest0 172.18.0.1/16",
            "host: up wtest0 master None",
            "sysctl net/ipv4/conf/wtest0/forwarding=1",
        ]
    );
    assert!(svc.network("host").is_some() && svc.network("none").is_some());
    assert_eq!(svc.firewall_error(), None);
}

#[test]
fn without_nftables_bridges_do_not_forward() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = Arc::new(FakeKernel::default());
    k.state.lock().expect("fake").fail = Some("replace table");
    let svc = NetworkService::open(cfg(dir.path()), k.clone()).expect("open");
    assert!(svc.firewall_error().is_some());
    let log = k.log();
    assert!(!log.iter().any(|l| l.contains("ip_forward")), "{log:?}");
    assert!(
        log.contains(&"sysctl net/ipv4/conf/wtest0/forwarding=0".to_string()),
        "{log:?}"
    );
    // Networks still work, isolated by forwarding alone.
    let n = svc
        .create_network(&networks::CreateRequest {
            name: "front".into(),
            ..Default::default()
        })
        .expect("create");
    assert!(k
        .log()
        .contains(&format!("sysctl net/ipv4/conf/{}/forwarding=0", n.bridge)));
}

#[test]
fn turning_routing_on_drops_everything_else_across_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = Arc::new(FakeKernel::default());
    k.state
        .lock()
        .expect("fake")
        .sysctls
        .insert("net/ipv4/ip_forward".into(), "0".into());
    let forward_drop = || k.state.lock().expect("fake").tables["wharf-wtest0"].chains[0].drop;
    let svc = NetworkService::open(cfg(dir.path()), k.clone()).expect("open");
    assert!(forward_drop());
    assert_eq!(k.read_sysctl("net/ipv4/ip_forward").expect("read"), "1");
    drop(svc);
    // Already on at the restart, still Wharf's doing.
    let svc = NetworkService::open(cfg(dir.path()), k.clone()).expect("reopen");
    assert!(forward_drop());
    drop(svc);
    let mut c = cfg(dir.path());
    c.firewall.ip_forward_no_drop = true;
    NetworkService::open(c, k.clone()).expect("reopen");
    assert!(!forward_drop());
    // A host that routed before Wharf keeps routing.
    let other = tempfile::tempdir().expect("tempdir");
    NetworkService::open(cfg(other.path()), k.clone()).expect("open");
    assert!(!forward_drop());
}

#[test]
fn the_table_follows_the_networks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = Arc::new(FakeKernel::default());
    let mut c = cfg(dir.path());
    c.firewall.ip_forward = false;
    c.firewall.icc = false;
    c.firewall.ip_masq = false;
    let svc = NetworkService::open(c.clone(), k.clone()).expect("open");
    let table = || k.state.lock().expect("fake").tables["wharf-wtest0"].to_string();
    let base = table();
    assert!(
        base.contains("iifname \"wtest0\" oifname \"wtest0\" drop"),
        "{base}"
    );
    assert!(!base.contains("masquerade"), "{base}");
    let req = |name: &str, internal: bool| networks::CreateRequest {
        name: name.into(),
        internal,
        ..Default::default()
    };
    let front = svc.create_network(&req("front", false)).expect("create");
    let inner = svc.create_network(&req("inner", true)).expect("create");
    let t = table();
    assert!(
        t.contains(&format!("oifname != \"{}\" masquerade", front.bridge)),
        "{t}"
    );
    assert!(
        t.contains(&format!("iifname \"{}\" drop", inner.bridge)),
        "{t}"
    );
    assert!(
        !t.contains(&format!("oifname != \"{}\" masquerade", inner.bridge)),
        "{t}"
    );
    let log = k.log();
    assert!(!log.iter().any(|l| l.contains("ip_forward")), "{log:?}");
    for (n, v) in [(&front, 1), (&inner, 0)] {
        let want = format!("sysctl net/ipv4/conf/{}/forwarding={v}", n.bridge);
        assert!(log.contains(&want), "{want} in {log:?}");
    }
    // A restart rebuilds the same table; removing the networks leaves the base rules.
    drop(svc);
    let svc = NetworkService::open(c, k.clone()).expect("reopen");
    assert_eq!(svc.prune(|_| false), ["front", "inner"]);
    assert_eq!(table(), base);
    // A host ruleset flush removes the table; the check puts it back.
    assert!(!svc.check_firewall().expect("check"));
    k.state.lock().expect("fake").tables.clear();
    assert!(svc.check_firewall().expect("check"));
    assert_eq!(table(), base);
    // Turning the firewall off removes the table of the earlier runs.
    drop(svc);
    let mut c = cfg(dir.path());
    c.firewall.enabled = false;
    NetworkService::open(c, k.clone()).expect("reopen");
    assert!(k.state.lock().expect("fake").tables.is_empty());
}

#[test]
fn bip_sets_subnet_and_gateway() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = Arc::new(FakeKernel::default());
    let mut c = cfg(dir.path());
    c.bip = Some("10.45.0.1/24".parse().expect("cidr"));
    let svc = NetworkService::open(c, k).expect("open");
    let n = svc.network("bridge").expect("bridge");
    assert_eq!(n.subnet, Some("10.45.0.0/24".parse().expect("cidr")));
    assert_eq!(n.gateway, Some(Ipv4Addr::new(10, 45, 0, 1)));
}

#[test]
fn connect_plumbs_a_veth_and_disconnect_removes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = Arc::new(FakeKernel::default());
    let svc = NetworkService::open(cfg(dir.path()), k.clone()).expect("open");
    let before = k.log().len();
    let sb = svc
        .connect_sandbox("c1", "web", "web", Some("bridge"), &[], &[])
        .expect("connect");
    let ep = &sb.endpoints[0];
    assert_eq!(ep.ip, Ipv4Addr::new(172, 17, 0, 2));
    assert_eq!(ep.mac, "02:42:ac:11:00:02");
    let pin = dir.path().join("netns/c1").display().to_string();
    let veth = ep.host_ifname.clone();
    assert_eq!(
        k.log()[before..],
        [
            format!("netns {pin}"),
            format!("{pin}: veth eth0 02:42:ac:11:00:02 mtu 0 peer {veth} to host"),
            format!("{pin}: addr eth0 172.17.0.2/16"),
            format!("{pin}: up eth0 master None"),
            format!("{pin}: default via 172.17.0.1"),
            format!("host: up {veth} master Some(\"wtest0\")"),
        ]
    );
    let before = k.log().len();
    svc.disconnect_sandbox("c1").expect("disconnect");
    // The pair goes with the namespace, host end included.
    assert_eq!(k.log()[before..], [format!("rm netns {pin}")]);
    assert!(!k
        .state
        .lock()
        .expect("fake state")
        .links
        .values()
        .flatten()
        .any(|l| l.name == veth));
    assert!(svc.sandbox("c1").is_none());
}

#[test]
fn a_failed_plumbing_leaves_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = Arc::new(FakeKernel::default());
    let svc = NetworkService::open(cfg(dir.path()), k.clone()).expect("open");
    k.state.lock().expect("fake").fail = Some("add default route");
    assert!(svc
        .connect_sandbox("c1", "web", "web", Some("bridge"), &[], &[])
        .is_err());
    assert!(svc.sandbox("c1").is_none());
    let s = k.state.lock().expect("fake");
    assert!(s.netns.is_empty(), "{:?}", s.netns);
    assert!(
        s.links
            .get("")
            .is_some_and(|l| l.iter().all(|l| l.name == "wtest0")),
        "{:?}",
        s.links
    );
}

#[test]
fn leases_survive_a_crash_and_are_never_handed_out_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = Arc::new(FakeKernel::default());
    let svc = NetworkService::open(cfg(dir.path()), k.clone()).expect("open");
    let a = svc
        .connect_sandbox("a", "a", "a", Some("bridge"), &[], &[])
        .expect("a");
    let b = svc
        .connect_sandbox("b", "b", "b", Some("bridge"), &[], &[])
        .expect("b");
    // A crash: the service is dropped without cleanup and opened again on the same state.
    drop(svc);
    let svc = NetworkService::open(cfg(dir.path()), k.clone()).expect("reopen");
    let live: HashSet<String> = ["a".to_string()].into();
    assert!(svc.reconcile(&live).is_empty());
    assert_eq!(svc.sandbox("a"), Some(a.clone()));
    assert!(
        svc.sandbox("b").is_none(),
        "b was not running: its lease goes"
    );
    let c = svc
        .connect_sandbox("c", "c", "c", Some("bridge"), &[], &[])
        .expect("c");
    let ips: HashSet<_> = [a.endpoints[0].ip, c.endpoints[0].ip].into();
    assert_eq!(ips.len(), 2);
    assert_ne!(c.endpoints[0].ip, b.endpoints[0].ip, "not reused at once");
}

#[test]
fn reconcile_removes_stray_veths_and_pins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = Arc::new(FakeKernel::default());
    let svc = NetworkService::open(cfg(dir.path()), k.clone()).expect("open");
    svc.connect_sandbox("a", "a", "a", Some("bridge"), &[], &[])
        .expect("a");
    {
        // A veth created just before a crash whose state never recorded it.
        let mut s = k.state.lock().expect("fake");
        let br = s.links[""]
            .iter()
            .find(|l| l.name == "wtest0")
            .map(|l| l.index);
        s.links
            .entry(String::new())
            .or_default()
            .push(sys::LinkInfo {
                index: 99,
                name: "vethdead".into(),
                master: br,
                up: true,
            });
    }
    std::fs::create_dir_all(dir.path().join("netns")).expect("dir");
    std::fs::write(dir.path().join("netns/ghost"), b"").expect("pin");
    let live: HashSet<String> = ["a".to_string()].into();
    assert!(svc.reconcile(&live).is_empty());
    let log = k.log();
    assert!(log.iter().any(|l| l == "host: delete vethdead"), "{log:?}");
    let s = k.state.lock().expect("fake");
    assert!(s.links[""].iter().all(|l| l.name != "vethdead"));
    assert!(svc.sandbox("a").is_some());
}

#[test]
fn none_gets_loopback_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = Arc::new(FakeKernel::default());
    let svc = NetworkService::open(cfg(dir.path()), k.clone()).expect("open");
    let sb = svc
        .connect_sandbox("n", "n", "n", None, &[], &[])
        .expect("none");
    assert!(sb.endpoints.is_empty());
    assert_eq!(k.state.lock().expect("fake").netns.len(), 1);
    svc.disconnect_sandbox("n").expect("disconnect");
    assert!(k.state.lock().expect("fake").netns.is_empty());
}

#[test]
fn unknown_network() {
    let dir = tempfile::tempdir().expect("tempdir");
    let svc = NetworkService::open(cfg(dir.path()), Arc::new(FakeKernel::default())).expect("open");
    let e = svc
        .connect_sandbox("x", "x", "x", Some("nope"), &[], &[])
        .expect_err("unknown");
    assert_eq!(e.to_string(), "network nope not found");
    assert!(svc.sandbox("x").is_none());
}

/// A runtime for the embedded DNS tasks a start on a user network spawns.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn user_net(svc: &NetworkService, name: &str, subnet: Option<&str>) -> model::Network {
    svc.create_network(&networks::CreateRequest {
        name: name.into(),
        subnet: subnet.map(str::to_string),
        ..Default::default()
    })
    .expect("create network")
}

fn ep(aliases: &[&str], ip: Option<[u8; 4]>) -> model::EndpointConfig {
    model::EndpointConfig {
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
        ipv4: ip.map(Ipv4Addr::from),
        ipv6: None,
        links: vec![],
        mac: None,
    }
}

/// docker-compose's order: create on the mode's network, then disconnect and connect it
/// again (with aliases) and connect the others, all before the first start.
#[test]
fn created_containers_are_connected_and_disconnected_before_start() {
    let rt = runtime();
    let _rt = rt.enter();
    let dir = tempfile::tempdir().expect("tempdir");
    let svc = NetworkService::open(cfg(dir.path()), Arc::new(FakeKernel::default())).expect("open");
    let front = user_net(&svc, "front", None);
    let back = user_net(&svc, "back", None);
    let list = svc
        .resolve(&[("front".into(), ep(&["web"], None))])
        .expect("resolve")
        .expect("known");
    svc.configure("c", list).expect("configure");
    svc.disconnect("c", "front", false)
        .expect("disconnect created");
    assert_eq!(svc.attachments("c").map(|a| a.len()), Some(0));
    svc.connect("c", "front", false, &ep(&["web", "abc"], None))
        .expect("connect");
    svc.connect("c", "back", false, &ep(&[], None))
        .expect("connect");
    assert!(svc.connect("c", "back", false, &ep(&[], None)).is_err());
    let sb = svc
        .connect_sandbox("c", "c", "c", Some("front"), &[], &[])
        .expect("start");
    let nets: Vec<&str> = sb.endpoints.iter().map(|e| e.network_id.as_str()).collect();
    assert_eq!(nets, [front.id.as_str(), back.id.as_str()]);
    let st = svc.lock().clone();
    assert_eq!(
        dns::lookup(&st, "c", "abc"),
        Some(vec![sb.endpoints[0].ip]),
        "aliases given at connect resolve"
    );
    // Removal and a create whose record never came (the journal's undo) leave nothing.
    svc.forget("c").expect("forget");
    svc.configure("lost", vec![]).expect("configure");
    svc.forget_unknown(&HashSet::new()).expect("forget unknown");
    assert!(svc.lock().attachments.is_empty());
}

#[test]
fn static_addresses_follow_dockers_rules() {
    let rt = runtime();
    let _rt = rt.enter();
    let dir = tempfile::tempdir().expect("tempdir");
    let svc = NetworkService::open(cfg(dir.path()), Arc::new(FakeKernel::default())).expect("open");
    user_net(&svc, "auto", None);
    user_net(&svc, "fixed", Some("10.77.0.0/24"));
    let err = |key: &str, ip: [u8; 4]| {
        svc.resolve(&[(key.into(), ep(&[], Some(ip)))])
            .expect_err("refused")
            .to_string()
    };
    assert!(err("auto", [10, 77, 0, 9]).contains(
        "user specified IP address is supported only when connecting to networks with user configured subnets"
    ));
    assert!(err("fixed", [10, 78, 0, 9])
        .contains("no configured subnet or ip-range contain the IP address 10.78.0.9"));
    assert!(err("bridge", [172, 17, 0, 9])
        .contains("user specified IP address is supported on user defined networks only"));
    for c in ["a", "b"] {
        let list = svc
            .resolve(&[("fixed".into(), ep(&[], Some([10, 77, 0, 9])))])
            .expect("ok")
            .expect("known");
        svc.configure(c, list).expect("configure");
    }
    let a = svc
        .connect_sandbox("a", "a", "a", Some("fixed"), &[], &[])
        .expect("a");
    assert_eq!(a.endpoints[0].ip, Ipv4Addr::new(10, 77, 0, 9));
    let e = svc
        .connect_sandbox("b", "b", "b", Some("fixed"), &[], &[])
        .expect_err("in use");
    assert_eq!(e.to_string(), "Address already in use");
    assert!(svc.sandbox("b").is_none());
}

#[test]
fn attachments_of_the_older_form_still_load() {
    let s: store::State =
        serde_json::from_str(r#"{"networks":{},"sandboxes":{},"attachments":{"c":["n1"]}}"#)
            .expect("old state");
    assert_eq!(s.attachments["c"][0].network_id, "n1");
}

/// Macvlan without a parent: a dummy of Wharf's (an IFB on a kernel without dummies), the
/// endpoint made straight into the namespace with no way out, and the parent gone with the
/// network.
#[test]
fn macvlan_endpoints_go_straight_into_the_namespace() {
    let rt = runtime();
    let _rt = rt.enter();
    let dir = tempfile::tempdir().expect("tempdir");
    let k = Arc::new(FakeKernel::default());
    k.state.lock().expect("fake").unsupported = vec!["dummy"];
    let svc = NetworkService::open(cfg(dir.path()), k.clone()).expect("open");
    let n = svc
        .create_network(&networks::CreateRequest {
            name: "mv".into(),
            driver: "macvlan".into(),
            subnet: Some("10.7.0.0/24".into()),
            ..Default::default()
        })
        .expect("create");
    assert_eq!(n.parent, format!("dm-{}", &n.id[..12]));
    assert!(n.owns_parent && n.gateway.is_none());
    let from = k.log().len();
    let list = svc
        .resolve(&[("mv".into(), ep(&[], None))])
        .expect("resolve")
        .expect("known");
    svc.configure("c1", list).expect("configure");
    let sb = svc
        .connect_sandbox("c1", "one", "one", Some("mv"), &[], &[])
        .expect("start");
    let e = &sb.endpoints[0];
    assert_eq!(e.ip, Ipv4Addr::new(10, 7, 0, 1), "no gateway is reserved");
    assert!(e.host_ifname.is_empty());
    let pin = sb.key.clone();
    assert_eq!(
        k.log()[from..],
        [
            format!("netns {pin}"),
            format!(
                "host: link eth0 macvlan 4 of {} mac Some(\"02:42:0a:07:00:01\") mtu 0 into {pin}",
                n.parent
            ),
            format!("{pin}: addr eth0 10.7.0.1/24"),
            format!("{pin}: up eth0 master None"),
            format!("{pin}: bind udp 127.0.0.11:53"),
        ]
    );
    let refused = svc.connect_sandbox(
        "c2",
        "two",
        "two",
        Some("mv"),
        &[ports::PortRequest {
            proto: model::Proto::Tcp,
            container_port: 80,
            host_ip: None,
            host_ports: None,
        }],
        &[],
    );
    assert!(refused.is_err_and(|e| e.to_string().contains("published ports are not supported")));
    svc.disconnect_sandbox("c1").expect("stop");
    svc.remove_network("mv").expect("rm");
    assert!(k.log().contains(&format!("host: delete {}", n.parent)));
}

/// An IPv6 network: the bridge holds both gateways, an endpoint both addresses and routes.
#[test]
fn ipv6_endpoints_get_both_families() {
    let rt = runtime();
    let _rt = rt.enter();
    let dir = tempfile::tempdir().expect("tempdir");
    let k = Arc::new(FakeKernel::default());
    let svc = NetworkService::open(cfg(dir.path()), k.clone()).expect("open");
    let n = svc
        .create_network(&networks::CreateRequest {
            name: "six".into(),
            subnet: Some("10.6.0.0/24".into()),
            subnet6: Some("fd00:6::/64".into()),
            ipv6: true,
            ..Default::default()
        })
        .expect("create");
    assert!(k
        .log()
        .contains(&format!("host: addr {} fd00:6::1/64", n.bridge)));
    let from = k.log().len();
    let sb = svc
        .connect_sandbox("c1", "one", "one", Some("six"), &[], &[])
        .expect("start");
    assert_eq!(sb.endpoints[0].ip6, Some("fd00:6::2".parse().expect("ip")));
    let pin = sb.key.clone();
    let log = k.log()[from..].to_vec();
    for want in [
        format!("{pin}: addr eth0 10.6.0.2/24"),
        format!("{pin}: addr eth0 fd00:6::2/64"),
        format!("{pin}: default via 10.6.0.1"),
        format!("{pin}: default via fd00:6::1"),
    ] {
        assert!(log.contains(&want), "{want} not in {log:?}");
    }
    // The address stays leased across a reopen (a crash) and is not handed out again.
    drop(svc);
    let svc = NetworkService::open(cfg(dir.path()), k.clone()).expect("reopen");
    let sb2 = svc
        .connect_sandbox("c2", "two", "two", Some("six"), &[], &[])
        .expect("start");
    assert_eq!(sb2.endpoints[0].ip6, Some("fd00:6::3".parse().expect("ip")));
}
