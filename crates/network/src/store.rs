//! The network state on disk: one JSON document, replaced atomically (temp file, fsync,
//! rename, fsync of the directory) before every effect it describes, so a crash leaves the
//! old or the new state and start-up reconciles the kernel with it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::NetworkError;
use crate::model::{Attachment, EndpointConfig, Network, Sandbox};

const FILE: &str = "network.json";

/// Everything the service knows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// By id.
    pub networks: BTreeMap<String, Network>,
    /// By container id.
    pub sandboxes: BTreeMap<String, Sandbox>,
    /// The networks each container is configured for (container id -> attachments in
    /// connect order), written at create and by `network connect`/`disconnect`, applied at
    /// each start. A container without an entry (unknown network at create) uses its mode.
    #[serde(default)]
    pub attachments: BTreeMap<String, Vec<Attachment>>,
}

impl State {
    /// Addresses leased on a network.
    pub fn leases(&self, network_id: &str) -> BTreeSet<Ipv4Addr> {
        self.sandboxes
            .values()
            .flat_map(|s| &s.endpoints)
            .filter(|e| e.network_id == network_id)
            .map(|e| e.ip)
            .collect()
    }

    /// IPv6 addresses leased on a network.
    pub fn leases6(&self, network_id: &str) -> BTreeSet<std::net::Ipv6Addr> {
        self.sandboxes
            .values()
            .flat_map(|s| &s.endpoints)
            .filter(|e| e.network_id == network_id)
            .filter_map(|e| e.ip6)
            .collect()
    }

    /// What `container_id` asked for on `network_id`, if it is configured for it.
    pub fn config(&self, container_id: &str, network_id: &str) -> Option<&EndpointConfig> {
        self.attachments
            .get(container_id)?
            .iter()
            .find(|a| a.network_id == network_id)
            .map(|a| &a.config)
    }

    /// A network by name, id or unique id prefix.
    pub fn find(&self, key: &str) -> Option<&Network> {
        if let Some(n) = self.networks.get(key) {
            return Some(n);
        }
        if let Some(n) = self.networks.values().find(|n| n.name == key) {
            return Some(n);
        }
        let mut m = self.networks.values().filter(|n| n.id.starts_with(key));
        match (m.next(), m.next()) {
            (Some(n), None) if !key.is_empty() => Some(n),
            _ => None,
        }
    }
}

/// Reads and writes [`State`] under one directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// The store in `dir` (created on first save).
    pub fn new(dir: &Path) -> Store {
        Store {
            dir: dir.to_path_buf(),
        }
    }

    /// The saved state; empty when none was saved yet.
    pub fn load(&self) -> Result<State, NetworkError> {
        let p = self.dir.join(FILE);
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| NetworkError::Store {
                path: p,
                source: std::io::Error::other(e),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(source) => Err(NetworkError::Store { path: p, source }),
        }
    }

    /// Replaces the saved state atomically.
    pub fn save(&self, s: &State) -> Result<(), NetworkError> {
        let path = self.dir.join(FILE);
        let io = |source| NetworkError::Store {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        let bytes = serde_json::to_vec(s).map_err(|e| io(std::io::Error::other(e)))?;
        let tmp = self.dir.join(format!(".{FILE}.tmp"));
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DriverKind, Endpoint};

    #[test]
    fn round_trips_and_counts_leases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let st = Store::new(&dir.path().join("network"));
        assert_eq!(st.load().expect("empty"), State::default());
        let mut s = State::default();
        s.networks.insert(
            "abc".into(),
            Network {
                id: "abc".into(),
                name: "bridge".into(),
                driver: DriverKind::Bridge,
                created: String::new(),
                subnet: Some("172.17.0.0/16".parse().expect("cidr")),
                gateway: Some(Ipv4Addr::new(172, 17, 0, 1)),
                ip_range: None,
                aux: BTreeMap::new(),
                subnet6: None,
                gateway6: None,
                last_ip6: None,
                bridge: "wharf0".into(),
                parent: String::new(),
                owns_parent: false,
                mtu: 0,
                labels: BTreeMap::new(),
                options: BTreeMap::new(),
                last_ip: None,
                internal: false,
                attachable: false,
                user_subnet: false,
            },
        );
        s.sandboxes.insert(
            "c1".into(),
            Sandbox {
                container_id: "c1".into(),
                name: "web".into(),
                hostname: String::new(),
                key: "/x".into(),
                dns: vec![],
                endpoints: vec![Endpoint {
                    id: "e".into(),
                    network_id: "abc".into(),
                    ip: Ipv4Addr::new(172, 17, 0, 2),
                    ip6: None,
                    mac: "02:42:ac:11:00:02".into(),
                    host_ifname: "veth0".into(),
                    ifname: "eth0".into(),
                    ports: vec![],
                }],
            },
        );
        st.save(&s).expect("save");
        let back = st.load().expect("load");
        assert_eq!(back, s);
        assert_eq!(back.leases("abc"), [Ipv4Addr::new(172, 17, 0, 2)].into());
        assert_eq!(back.find("bridge").map(|n| n.id.as_str()), Some("abc"));
        assert_eq!(back.find("ab").map(|n| n.id.as_str()), Some("abc"));
        assert!(back.find("nope").is_none());
        std::fs::write(dir.path().join("network/network.json"), b"{").expect("corrupt");
        assert!(st.load().is_err());
    }
}
