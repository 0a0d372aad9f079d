//! docker-compose 1.29 (issues #9, #10) on wharfd: a two-service project whose client reaches
//! the server by service name, a published port, `down` removing the project network, and a
//! named volume that keeps its data across `down`/`up` until `down -v`.

mod common;

use common::compose::Project;
use common::{free_port, http_get, Daemon};

fn exists(d: &Daemon, kind: &str, name: &str) -> bool {
    d.docker(&[kind, "inspect", name]).status.success()
}

#[test]
fn services_reach_each_other_by_name_and_publish_ports() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&[]);
    d.import_busybox();
    let port = free_port();
    let yaml = format!(
        r#"version: "3.7"
services:
  web:
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo hello-compose > /www/index.html && exec httpd -f -p 80 -h /www"]
    ports:
      - "127.0.0.1:{port}:80"
    stop_grace_period: 1s
  client:
    image: busybox
    command: ["sleep", "600"]
    stop_grace_period: 1s
"#
    );
    let p = Project::new(&d, "cmp", &yaml);
    p.ok(&["up", "-d"]);
    assert!(exists(&d, "network", "cmp_default"));
    assert_eq!(http_get(port), "hello-compose");
    // By service name, through the embedded DNS of the project network.
    let body = d.ok(&["exec", "cmp_client_1", "wget", "-qO-", "http://web/"]);
    assert_eq!(body, "hello-compose");
    // Up again changes nothing. (`--force-recreate` fails in compose 1.29 itself against
    // API 1.45, with KeyError 'ContainerConfig', as against dockerd 25 and later.)
    let again = p.run(&["up", "-d"]);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("is up-to-date"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    // A stopped project starts again with its network and names.
    p.ok(&["stop", "-t", "1"]);
    p.ok(&["start"]);
    assert_eq!(http_get(port), "hello-compose");
    let body = d.ok(&["exec", "cmp_client_1", "wget", "-qO-", "http://web/"]);
    assert_eq!(body, "hello-compose");
    let ps = p.ok(&["ps"]);
    assert!(ps.contains("cmp_web_1") && ps.contains("Up"), "{ps}");
    p.ok(&["down", "-t", "1"]);
    assert!(!exists(&d, "network", "cmp_default"));
    assert!(!exists(&d, "container", "cmp_web_1"));
}

#[test]
fn named_volume_survives_down_until_down_v() {
    wharf_testutil::require_root!();
    let d = Daemon::start(&[]);
    d.import_busybox();
    let yaml = r#"version: "3.7"
services:
  db:
    image: busybox
    command: ["sleep", "600"]
    stop_grace_period: 1s
    volumes:
      - data:/data
volumes:
  data:
"#;
    let p = Project::new(&d, "vol", yaml);
    p.ok(&["up", "-d"]);
    d.ok(&["exec", "vol_db_1", "sh", "-c", "echo kept > /data/f"]);
    p.ok(&["down", "-t", "1"]);
    assert!(exists(&d, "volume", "vol_data"));
    p.ok(&["up", "-d"]);
    assert_eq!(d.ok(&["exec", "vol_db_1", "cat", "/data/f"]), "kept");
    p.ok(&["down", "-v", "-t", "1"]);
    assert!(!exists(&d, "volume", "vol_data"));
    assert!(!exists(&d, "network", "vol_default"));
}

/// A create killed between recording its networks and writing its record leaks neither:
/// the name is free, and the network state holds nothing for the lost container.
#[test]
fn crash_between_endpoints_and_record_leaks_nothing() {
    wharf_testutil::require_root!();
    let mut d = Daemon::start(&[]);
    d.import_busybox();
    d.ok(&["network", "create", "crashnet"]);
    d.env = vec![("WHARFD_CRASH_AT".into(), "create:after-endpoints".into())];
    d.crash();
    d.start_again();
    d.env.clear();
    let o = d.docker(&[
        "create",
        "--name",
        "lost",
        "--network",
        "crashnet",
        "--network-alias",
        "x",
        "busybox",
        "true",
    ]);
    assert!(!o.status.success(), "the daemon should have crashed");
    d.crash();
    d.start_again();
    let state =
        std::fs::read_to_string(d.data_root.join("network/network.json")).expect("network state");
    let v: serde_json::Value = serde_json::from_str(&state).expect("json");
    assert_eq!(v["attachments"], serde_json::json!({}), "{state}");
    d.ok(&[
        "create",
        "--name",
        "lost",
        "--network",
        "crashnet",
        "busybox",
        "true",
    ]);
    d.ok(&["rm", "lost"]);
    d.ok(&["network", "rm", "crashnet"]);
}
