//! A daemon's network footprint on the host, read independently of its API: the rules of
//! its nftables table (`nft -j`), the bridges and leases in its store, and a guard for the
//! global sysctls a test changes.

use std::collections::{BTreeSet, HashSet};
use std::process::Command;

use super::Daemon;

/// Restores a global sysctl on drop.
pub struct Sysctl(&'static str, String);

impl Sysctl {
    pub fn save(key: &'static str) -> Sysctl {
        Sysctl(key, std::fs::read_to_string(key).unwrap_or_default())
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        let _ = std::fs::write(self.0, self.1.trim());
    }
}

/// The test daemon's table (`wharf-<bridge>`).
pub fn table(d: &Daemon) -> String {
    format!("wharf-{}", d.net.bridge)
}

/// The rules of this daemon's table as `nft -j` lists them, handles left out.
pub fn rules(d: &Daemon) -> Vec<serde_json::Value> {
    let o = Command::new("nft")
        .args(["-j", "list", "table", "inet", &table(d)])
        .output()
        .expect("nft");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("nft json");
    v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.get("rule").cloned())
        .map(|mut r| {
            if let Some(o) = r.as_object_mut() {
                o.remove("handle");
            }
            r
        })
        .collect()
}

/// Every interface name the rules mention.
pub fn ruled_bridges(d: &Daemon) -> BTreeSet<String> {
    fn walk(v: &serde_json::Value, out: &mut BTreeSet<String>) {
        match v {
            serde_json::Value::Object(o) => {
                let is_if = o
                    .get("left")
                    .and_then(|l| l["meta"]["key"].as_str())
                    .is_some_and(|k| k.ends_with("ifname"));
                if let (true, Some(s)) = (is_if, o.get("right").and_then(|r| r.as_str())) {
                    out.insert(s.to_string());
                }
                o.values().for_each(|x| walk(x, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    for r in rules(d) {
        walk(&r, &mut out);
    }
    out
}

/// Bridges of the networks in the daemon's store.
pub fn state_bridges(d: &Daemon) -> BTreeSet<String> {
    let s = std::fs::read_to_string(d.data_root.join("network/network.json")).expect("state");
    let v: serde_json::Value = serde_json::from_str(&s).expect("json");
    v["networks"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, n)| n["bridge"].as_str().filter(|b| !b.is_empty()))
        .map(str::to_string)
        .collect()
}

/// Panics when an address is leased twice on one network in the store.
pub fn assert_leases_unique(d: &Daemon, ctx: &str) {
    let s = std::fs::read_to_string(d.data_root.join("network/network.json")).expect("state");
    let v: serde_json::Value = serde_json::from_str(&s).expect("json");
    let mut ips = HashSet::new();
    for (_, sb) in v["sandboxes"].as_object().into_iter().flatten() {
        for e in sb["endpoints"].as_array().into_iter().flatten() {
            let key = format!("{}/{}", e["network_id"], e["ip"]);
            assert!(ips.insert(key.clone()), "{ctx}: {key} leased twice");
        }
    }
}

/// Host interfaces enslaved to `bridge` (ip's view).
pub fn bridge_ports(bridge: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["-o", "link", "show", "master", bridge])
        .output()
        .expect("ip link");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.split(": ")
                .nth(1)
                .map(|n| n.split('@').next().unwrap_or(n).to_string())
        })
        .collect()
}
