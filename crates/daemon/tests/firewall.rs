//! Wharf's nftables table end to end: outbound NAT to an "upstream" namespace this test makes
//! (a veth from the host, addresses in the 198.18.0.0/15 benchmark range), the user chain,
//! `ip-masq` off, isolation between networks, `--internal` without a route out even when the
//! container adds one, `icc=false` from daemon.json, only the base rules left after removal,
//! a kill -9 and a restart or a host flush, and `iptables: false` (the table goes, bridges do
//! not forward). Traffic goes only to namespaces and bridges the test created.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{Ipv4Addr, TcpListener};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::net::{ruled_bridges, rules, state_bridges, Sysctl};
use common::{wait_for, Daemon};

const HTTPD: &str =
    "mkdir -p /www && echo hello-$HOSTNAME > /www/index.html && exec httpd -f -p 80 -h /www";

fn sh(args: &[&str]) {
    let o = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A namespace behind a veth from the host, serving on TCP the source address it sees.
struct Upstream {
    ns: String,
    host_if: String,
    ip: Ipv4Addr,
    host_ip: Ipv4Addr,
    port: u16,
    stop: Arc<AtomicBool>,
}

impl Upstream {
    /// Slot 0 or 1: two upstreams of one test differ in names, subnet and port.
    fn start(slot: u32) -> Upstream {
        let pid = std::process::id();
        let k = (pid * 2 + slot) % 512;
        let (a, b) = (18 + (k / 256) as u8, (k % 256) as u8);
        let (host_ip, ip) = (Ipv4Addr::new(198, a, b, 1), Ipv4Addr::new(198, a, b, 2));
        let u = Upstream {
            ns: format!("wfw-up-{pid}-{slot}"),
            host_if: format!("wfu{pid}{slot}"),
            ip,
            host_ip,
            port: 8000 + (pid % 1000) as u16 + slot as u16 * 1000,
            stop: Arc::new(AtomicBool::new(false)),
        };
        let peer = format!("wfp{pid}{slot}");
        let (ns, hif) = (u.ns.as_str(), u.host_if.as_str());
        sh(&["ip", "netns", "add", ns]);
        sh(&[
            "ip", "link", "add", hif, "type", "veth", "peer", "name", &peer, "netns", ns,
        ]);
        sh(&["ip", "addr", "add", &format!("{host_ip}/24"), "dev", hif]);
        sh(&["ip", "link", "set", hif, "up"]);
        sh(&[
            "ip",
            "-n",
            ns,
            "addr",
            "add",
            &format!("{ip}/24"),
            "dev",
            &peer,
        ]);
        sh(&["ip", "-n", ns, "link", "set", &peer, "up"]);
        sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        // Replies to unmasqueraded container addresses go back through the host.
        sh(&[
            "ip",
            "-n",
            ns,
            "route",
            "add",
            "default",
            "via",
            &host_ip.to_string(),
        ]);
        // Replies arrive on this veth and are routed to the bridge.
        std::fs::write(format!("/proc/sys/net/ipv4/conf/{hif}/forwarding"), "1")
            .expect("forwarding");
        let (tx, rx) = std::sync::mpsc::channel();
        let (path, stop, port) = (format!("/run/netns/{ns}"), u.stop.clone(), u.port);
        // A thread of its own enters the namespace and never leaves it.
        std::thread::spawn(move || {
            let f = std::fs::File::open(&path).expect("netns");
            nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            let l = TcpListener::bind((ip, port)).expect("bind upstream");
            l.set_nonblocking(true).expect("nonblocking");
            let _ = tx.send(());
            while !stop.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut s, peer)) => {
                        let _ = writeln!(s, "{}", peer.ip());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("upstream up");
        u
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// What `to` answers a connection from inside `from`'s namespace; "" if unreachable.
fn between(from: &Upstream, to: &Upstream) -> String {
    let (path, ip, port) = (format!("/run/netns/{}", from.ns), to.ip, to.port);
    // A thread of its own enters the namespace and ends there.
    std::thread::spawn(move || {
        let f = std::fs::File::open(&path).expect("netns");
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let addr = std::net::SocketAddr::from((ip, port));
        let mut out = String::new();
        if let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            let _ = std::io::Read::read_to_string(&mut s, &mut out);
        }
        out.trim().to_string()
    })
    .join()
    .expect("thread")
}

/// The source address the upstream saw for a connection from container `from`; "" if none.
fn seen_from(d: &Daemon, from: &str, u: &Upstream) -> String {
    let cmd = format!("nc -w 3 {} {} </dev/null", u.ip, u.port);
    let o = d.docker(&["exec", from, "sh", "-c", &cmd]);
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// GET / from inside `from` to `ip`; the body's last line, or "" when unreachable.
fn fetch(d: &Daemon, from: &str, ip: &str) -> String {
    let cmd = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {ip} 80 | tail -1");
    let o = d.docker(&["exec", from, "sh", "-c", &cmd]);
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn ip_of(d: &Daemon, c: &str, net: &str) -> String {
    d.ok(&[
        "inspect",
        "-f",
        &format!("{{{{.NetworkSettings.Networks.{net}.IPAddress}}}}"),
        c,
    ])
}

#[test]
fn outbound_nat_isolation_and_internal() {
    wharf_testutil::require_root!();
    let _fwd = Sysctl::save("/proc/sys/net/ipv4/ip_forward");
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "0").expect("ip_forward");
    let mut d = Daemon::start(&["--ip-forward=true"]);
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
            .expect("ip_forward")
            .trim(),
        "1",
        "--ip-forward sets the global switch"
    );
    assert_eq!(d.ok(&["info", "-f", "{{.IPv4Forwarding}}"]), "true");
    let (u, u2) = (Upstream::start(0), Upstream::start(1));

    // Wharf turned routing on: the host routes nothing but its containers' traffic, unless
    // ip-forward-no-drop.
    assert_eq!(between(&u, &u2), "", "the host became a router");
    std::fs::write(
        d.dir.path().join("daemon.json"),
        r#"{"ip-forward-no-drop": true}"#,
    )
    .expect("daemon.json");
    d.restart();
    assert_eq!(between(&u, &u2), u.ip.to_string());
    std::fs::write(d.dir.path().join("daemon.json"), "{}").expect("daemon.json");
    d.restart();
    assert_eq!(
        between(&u, &u2),
        "",
        "the drop is remembered across restarts"
    );
    d.import_busybox();
    let sleeper = |name: &str, net: &str, extra: &[&str]| {
        let mut args = vec!["run", "-d", "--name", name, "--network", net];
        args.extend_from_slice(extra);
        args.extend(["busybox", "sleep", "600"]);
        d.ok(&args);
    };

    // The default bridge masquerades: the upstream sees the host's address.
    sleeper("out", "bridge", &[]);
    wait_for("the upstream to answer", || {
        !seen_from(&d, "out", &u).is_empty()
    });
    assert_eq!(seen_from(&d, "out", &u), u.host_ip.to_string());

    // A rule of the user's in the `user` chain runs first and survives every rebuild.
    let t = common::net::table(&d);
    let upstream = u.ip.to_string();
    sh(&[
        "nft", "add", "rule", "inet", &t, "user", "ip", "daddr", &upstream, "drop",
    ]);
    assert_eq!(seen_from(&d, "out", &u), "", "the user's drop holds");
    d.ok(&["network", "create", "rebuilt"]);
    assert_eq!(
        seen_from(&d, "out", &u),
        "",
        "the user's drop survives a rebuild"
    );
    sh(&["nft", "flush", "chain", "inet", &t, "user"]);
    assert_eq!(seen_from(&d, "out", &u), u.host_ip.to_string());

    // ip-masq off: the container's own address arrives.
    d.ok(&[
        "network",
        "create",
        "-o",
        "com.docker.network.bridge.enable_ip_masquerade=false",
        "plain",
    ]);
    sleeper("direct", "plain", &[]);
    assert_eq!(seen_from(&d, "direct", &u), ip_of(&d, "direct", "plain"));

    // Two user networks: both reach the outside, never each other.
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
    sleeper("peer", "red", &[]);
    sleeper("other", "blue", &[]);
    let web = ip_of(&d, "web", "red");
    wait_for("web to answer on red", || {
        fetch(&d, "peer", &web) == "hello-web"
    });
    assert_eq!(seen_from(&d, "other", &u), u.host_ip.to_string());
    assert_eq!(fetch(&d, "other", &web), "", "blue must not reach red");
    assert_eq!(fetch(&d, "direct", &web), "", "plain must not reach red");

    // --internal: no route out, even when the container adds one itself.
    d.ok(&["network", "create", "--internal", "inner"]);
    sleeper("shut", "inner", &["--cap-add", "NET_ADMIN"]);
    let gw = d.ok(&[
        "network",
        "inspect",
        "-f",
        "{{(index .IPAM.Config 0).Gateway}}",
        "inner",
    ]);
    d.ok(&["exec", "shut", "ip", "route", "add", "default", "via", &gw]);
    assert_eq!(
        seen_from(&d, "shut", &u),
        "",
        "internal must have no way out"
    );
    assert_eq!(fetch(&d, "shut", &web), "", "internal must not reach red");
    drop((u, u2));
}

#[test]
fn icc_off_and_only_base_rules_after_removal_and_kill_9() {
    wharf_testutil::require_root!();
    let mut d = Daemon::start(&[]);
    std::fs::write(
        d.dir.path().join("daemon.json"),
        r#"{"icc": false, "ip-masq": false}"#,
    )
    .expect("daemon.json");
    d.restart();
    d.import_busybox();
    let base = rules(&d);
    let text = serde_json::to_string(&base).expect("json");
    assert!(!text.contains("masquerade"), "ip-masq false: {text}");
    assert_eq!(
        ruled_bridges(&d),
        BTreeSet::from([d.net.bridge.clone()]),
        "{text}"
    );
    assert_eq!(
        d.ok(&[
            "network",
            "inspect",
            "-f",
            "{{index .Options \"com.docker.network.bridge.enable_icc\"}}",
            "bridge"
        ]),
        "false"
    );

    // icc=false on the default bridge: the host reaches a container, a neighbour does not.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "quiet",
        "--hostname",
        "quiet",
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]);
    d.ok(&["run", "-d", "--name", "nosy", "busybox", "sleep", "600"]);
    let q = ip_of(&d, "quiet", "bridge");
    wait_for("quiet to answer the host", || {
        std::net::TcpStream::connect((q.as_str(), 80)).is_ok()
    });
    assert_eq!(fetch(&d, "nosy", &q), "", "icc=false must block neighbours");

    // A host ruleset flush takes the table away; the daemon puts it back at once.
    let t = common::net::table(&d);
    sh(&["nft", "delete", "table", "inet", &t]);
    wait_for("the table to come back", || {
        Command::new("nft")
            .args(["list", "table", "inet", &t])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    assert_eq!(rules(&d), base);

    // A firewall option that is not a boolean: Docker's message, nothing created.
    let o = d.docker(&[
        "network",
        "create",
        "-o",
        "com.docker.network.bridge.enable_icc=maybe",
        "odd",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success()
            && err.contains(
                "failed to parse com.docker.network.bridge.enable_icc value: maybe \
                 (strconv.ParseBool: parsing \"maybe\": invalid syntax)"
            ),
        "{err}"
    );
    assert_eq!(rules(&d), base);

    // Networks add rules; removing everything leaves the base rules.
    d.ok(&["network", "create", "a1"]);
    d.ok(&["network", "create", "--internal", "a2"]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "c1",
        "--network",
        "a1",
        "busybox",
        "sleep",
        "600",
    ]);
    assert_eq!(ruled_bridges(&d), state_bridges(&d));
    assert_eq!(ruled_bridges(&d).len(), 3);
    d.ok(&["rm", "-f", "quiet", "nosy", "c1"]);
    d.ok(&["network", "prune", "-f"]);
    assert_eq!(rules(&d), base);

    // kill -9 at seeded moments while networks come and go: after each restart the table
    // has exactly the networks in the store.
    let mut rng = wharf_testutil::Rng(0x5eed_00f1);
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
            for i in 0..6 {
                let net = format!("f{round}n{i}");
                docker(&["network", "create", &net]);
                if i % 2 == 1 {
                    docker(&["network", "rm", &format!("f{round}n{}", i - 1)]);
                }
            }
        });
        std::thread::sleep(Duration::from_millis(100 + rng.below(1200) as u64));
        d.crash();
        let _ = worker.join();
        d.start_again();
        assert_eq!(ruled_bridges(&d), state_bridges(&d), "round {round}");
    }
    d.ok(&["network", "prune", "-f"]);
    assert_eq!(rules(&d), base);
    d.crash();
    d.start_again();
    assert_eq!(rules(&d), base, "after kill -9 and a restart");
}

#[test]
fn iptables_false_removes_the_table_and_keeps_forwarding_off() {
    wharf_testutil::require_root!();
    let mut d = Daemon::start(&[]);
    assert!(!rules(&d).is_empty());
    std::fs::write(d.dir.path().join("daemon.json"), r#"{"iptables": false}"#)
        .expect("daemon.json");
    d.restart();
    d.ok(&["network", "create", "lone"]);
    let id = d.ok(&["network", "inspect", "-f", "{{.Id}}", "lone"]);
    for br in [d.net.bridge.clone(), format!("br-{}", &id[..12])] {
        let f = std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/{br}/forwarding"))
            .expect("forwarding");
        assert_eq!(f.trim(), "0", "{br} forwards without Wharf's rules");
    }
    let o = Command::new("nft")
        .args(["list", "table", "ip", &common::net::table(&d)])
        .output()
        .expect("nft");
    assert!(!o.status.success(), "a table left with iptables false");
}
