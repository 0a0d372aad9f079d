//! User-defined networks: create (Docker's validation and messages), remove, prune, and
//! connecting containers to them, running or not.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::error::NetworkError;
use crate::model::{DriverKind, Endpoint, Network, Subnet};
use crate::{driver, ipam, new_endpoint, predefined, NetworkService};

/// `POST /networks/create`, parsed.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    /// Name.
    pub name: String,
    /// Driver ("" = bridge).
    pub driver: String,
    /// IPAM subnet.
    pub subnet: Option<String>,
    /// IPAM gateway.
    pub gateway: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Driver options.
    pub options: BTreeMap<String, String>,
    /// `--internal`.
    pub internal: bool,
    /// `--attachable`.
    pub attachable: bool,
    /// `--ipv6`.
    pub ipv6: bool,
}

/// A container's endpoint on a network (inspect's `Containers`).
#[derive(Debug, Clone)]
pub struct Member {
    /// Container id.
    pub container_id: String,
    /// Container name.
    pub name: String,
    /// The endpoint.
    pub endpoint: Endpoint,
}

const PREDEFINED: &[&str] = &["bridge", "host", "none"];

impl NetworkService {
    /// Every network.
    pub fn networks(&self) -> Vec<Network> {
        self.lock().networks.values().cloned().collect()
    }

    /// The running containers with an endpoint on `network_id`.
    pub fn members(&self, network_id: &str) -> Vec<Member> {
        let st = self.lock();
        st.sandboxes
            .values()
            .flat_map(|s| {
                s.endpoints
                    .iter()
                    .filter(|e| e.network_id == network_id)
                    .map(|e| Member {
                        container_id: s.container_id.clone(),
                        name: s.name.clone(),
                        endpoint: e.clone(),
                    })
            })
            .collect()
    }

    /// Networks `container_id` was connected to beyond its mode.
    pub fn attachments(&self, container_id: &str) -> Vec<Network> {
        let st = self.lock();
        st.attachments
            .get(container_id)
            .into_iter()
            .flatten()
            .filter_map(|id| st.networks.get(id).cloned())
            .collect()
    }

    /// Creates a bridge network: its own Linux bridge (`br-<id>`), a subnet given or taken
    /// from the pools clear of other networks and host routes.
    pub fn create_network(&self, req: &CreateRequest) -> Result<Network, NetworkError> {
        match req.driver.as_str() {
            "" | "bridge" => {}
            d @ ("host" | "null") => {
                return Err(NetworkError::Forbidden(format!(
                    "only one instance of \"{d}\" network is allowed"
                )))
            }
            d => return Err(NetworkError::NotFound(format!("plugin \"{d}\""))),
        }
        if req.name.is_empty() {
            return Err(NetworkError::Invalid("network name is required".into()));
        }
        crate::firewall::validate_options(&req.options)?;
        if req.ipv6 {
            return Err(NetworkError::NotSupported(
                "IPv6 networks are not supported yet".into(),
            ));
        }
        let subnet = match &req.subnet {
            Some(s) => Some(
                s.parse::<Subnet>()
                    .map_err(|_| {
                        NetworkError::Invalid(format!(
                            "invalid subnet {s}: invalid CIDR address: {s}"
                        ))
                    })?
                    .canonical(),
            ),
            None => None,
        };
        let gateway = match &req.gateway {
            Some(g) => Some(
                g.parse::<Ipv4Addr>()
                    .map_err(|_| NetworkError::Invalid(format!("invalid gateway address {g}")))?,
            ),
            None => None,
        };
        if let (Some(g), None) = (gateway, subnet) {
            return Err(NetworkError::Invalid(format!(
                "no matching subnet for gateway {g}"
            )));
        }
        if let (Some(g), Some(s)) = (gateway, subnet) {
            if !s.contains(g) {
                return Err(NetworkError::Invalid(format!(
                    "no matching subnet for gateway {g}"
                )));
            }
        }
        let mut routes = Vec::new();
        let ours: Vec<String> = self.networks().into_iter().map(|n| n.bridge).collect();
        self.kernel.host(&mut |nl| {
            let links = nl.links()?;
            let own: Vec<u32> = links
                .iter()
                .filter(|l| ours.contains(&l.name))
                .map(|l| l.index)
                .collect();
            routes = nl
                .routes()?
                .into_iter()
                .filter(|(_, oif)| !own.contains(oif))
                .map(|(s, _)| s)
                .collect();
            Ok(())
        })?;
        let n = {
            let mut st = self.lock();
            if st.networks.values().any(|n| n.name == req.name) {
                return Err(NetworkError::Conflict(format!(
                    "network with name {} already exists",
                    req.name
                )));
            }
            let taken: Vec<Subnet> = st.networks.values().filter_map(|n| n.subnet).collect();
            let subnet = match subnet {
                Some(s) => {
                    if taken.iter().any(|t| t.overlaps(s)) {
                        return Err(NetworkError::Forbidden(
                            "invalid pool request: Pool overlaps with other one on this address space"
                                .into(),
                        ));
                    }
                    s
                }
                None => {
                    let all: Vec<Subnet> = taken.iter().copied().chain(routes).collect();
                    ipam::choose_subnet(&self.cfg.pools, &all)?
                }
            };
            let mut n = predefined(&req.name, DriverKind::Bridge);
            n.bridge = req
                .options
                .get("com.docker.network.bridge.name")
                .cloned()
                .unwrap_or_else(|| format!("br-{}", &n.id[..12]));
            n.subnet = Some(subnet);
            n.gateway = Some(gateway.unwrap_or(subnet.nth(1)));
            n.mtu = req
                .options
                .get("com.docker.network.driver.mtu")
                .and_then(|m| m.parse().ok())
                .unwrap_or(self.cfg.mtu);
            n.labels = req.labels.clone();
            n.options = req.options.clone();
            n.internal = req.internal;
            n.attachable = req.attachable;
            st.networks.insert(n.id.clone(), n.clone());
            self.store.save(&st)?;
            n
        };
        // Rules first: the new bridge never forwards without its isolation.
        let made = self.sync_firewall().and_then(|()| {
            Ok(driver::ensure_bridge(
                self.kernel.as_ref(),
                &n,
                self.forwards(&n),
            )?)
        });
        if let Err(e) = made {
            let _ = driver::remove_bridge(self.kernel.as_ref(), &n.bridge);
            {
                let mut st = self.lock();
                st.networks.remove(&n.id);
                let _ = self.store.save(&st);
            }
            let _ = self.sync_firewall();
            return Err(e);
        }
        Ok(n)
    }

    /// Removes a user-defined network without endpoints.
    pub fn remove_network(&self, key: &str) -> Result<Network, NetworkError> {
        let n = self
            .network(key)
            .ok_or_else(|| NetworkError::NotFound(key.to_string()))?;
        if PREDEFINED.contains(&n.name.as_str()) {
            return Err(NetworkError::Forbidden(format!(
                "{} is a pre-defined network and cannot be removed",
                n.name
            )));
        }
        if !self.members(&n.id).is_empty() {
            return Err(NetworkError::Forbidden(format!(
                "error while removing network: network {} id {} has active endpoints",
                n.name, n.id
            )));
        }
        // The bridge goes first: a crash in between leaves the network known, and start-up
        // recreates its bridge, instead of a bridge nobody knows.
        driver::remove_bridge(self.kernel.as_ref(), &n.bridge)?;
        let mut st = self.lock();
        st.networks.remove(&n.id);
        for a in st.attachments.values_mut() {
            a.retain(|id| *id != n.id);
        }
        st.attachments.retain(|_, a| !a.is_empty());
        self.store.save(&st)?;
        drop(st);
        self.sync_firewall()?;
        Ok(n)
    }

    /// Removes every user-defined network without endpoints for which `keep` is false;
    /// returns the removed names.
    pub fn prune(&self, keep: impl Fn(&Network) -> bool) -> Vec<String> {
        let mut out = Vec::new();
        for n in self.networks() {
            if PREDEFINED.contains(&n.name.as_str()) || keep(&n) || !self.members(&n.id).is_empty()
            {
                continue;
            }
            if self.remove_network(&n.id).is_ok() {
                out.push(n.name);
            }
        }
        out.sort();
        out
    }

    /// `network connect`: remembered for every later start; for a running container the
    /// interface is added at once.
    pub fn connect(
        &self,
        container_id: &str,
        network: &str,
        running: bool,
    ) -> Result<Network, NetworkError> {
        let n = self
            .network(network)
            .ok_or_else(|| NetworkError::NotFound(network.to_string()))?;
        if n.driver != DriverKind::Bridge {
            return Err(NetworkError::Forbidden(format!(
                "container cannot be disconnected from host network or connected to {} network",
                n.name
            )));
        }
        let already = |st: &crate::store::State| {
            st.attachments
                .get(container_id)
                .is_some_and(|a| a.contains(&n.id))
                || st
                    .sandboxes
                    .get(container_id)
                    .is_some_and(|s| s.endpoints.iter().any(|e| e.network_id == n.id))
        };
        let ep = {
            let mut st = self.lock();
            if already(&st) {
                return Err(NetworkError::Forbidden(format!(
                    "endpoint with name {} already exists in network {}",
                    st.sandboxes
                        .get(container_id)
                        .map_or(container_id, |s| s.name.as_str()),
                    n.name
                )));
            }
            st.attachments
                .entry(container_id.to_string())
                .or_default()
                .push(n.id.clone());
            let ep = match st.sandboxes.get(container_id).filter(|_| running) {
                Some(sb) => {
                    let ifname = format!("eth{}", next_if(&sb.endpoints));
                    let ep = new_endpoint(&mut st, &n, ifname)?;
                    if let Some(sb) = st.sandboxes.get_mut(container_id) {
                        sb.endpoints.push(ep.clone());
                    }
                    Some(ep)
                }
                None => None,
            };
            self.store.save(&st)?;
            ep
        };
        if let Some(ep) = ep {
            let pin = self.sandbox_key(container_id);
            let first = self
                .sandbox(container_id)
                .is_some_and(|s| s.endpoints.len() == 1);
            let p = self.plumbing(&ep, &n, first);
            let r = self
                .kernel
                .enter_netns(&pin, &mut |nl, host_ns| {
                    driver::plumb_inside(nl, host_ns, &p)
                })
                .and_then(|()| self.kernel.host(&mut |nl| driver::plumb_host(nl, &p)));
            if let Err(e) = r {
                let _ = self.disconnect(container_id, &n.id, true);
                return Err(e.into());
            }
        }
        Ok(n)
    }

    /// `network disconnect`: forgotten for later starts; a running container loses the
    /// interface at once.
    pub fn disconnect(
        &self,
        container_id: &str,
        network: &str,
        running: bool,
    ) -> Result<Network, NetworkError> {
        let n = self
            .network(network)
            .ok_or_else(|| NetworkError::NotFound(network.to_string()))?;
        let ep = {
            let mut st = self.lock();
            let attached = st
                .attachments
                .get_mut(container_id)
                .map(|a| {
                    let before = a.len();
                    a.retain(|id| *id != n.id);
                    before != a.len()
                })
                .unwrap_or(false);
            st.attachments.retain(|_, a| !a.is_empty());
            let mut ep = None;
            if let Some(sb) = st.sandboxes.get_mut(container_id).filter(|_| running) {
                if let Some(i) = sb.endpoints.iter().position(|e| e.network_id == n.id) {
                    ep = Some(sb.endpoints.remove(i));
                }
            }
            if !attached && ep.is_none() {
                return Err(NetworkError::Forbidden(format!(
                    "container {container_id} is not connected to network {}",
                    n.name
                )));
            }
            self.store.save(&st)?;
            ep
        };
        if let Some(ep) = ep {
            driver::remove_veth(self.kernel.as_ref(), &ep.host_ifname)?;
        }
        Ok(n)
    }

    /// Forgets what `container_id` was connected to (container removal).
    pub fn forget(&self, container_id: &str) -> Result<(), NetworkError> {
        let mut st = self.lock();
        let a = st.attachments.remove(container_id).is_some();
        if st.aliases.remove(container_id).is_some() || a {
            self.store.save(&st)?;
        }
        Ok(())
    }
}

/// The first free `ethN` index.
fn next_if(eps: &[Endpoint]) -> usize {
    (0..)
        .find(|i| eps.iter().all(|e| e.ifname != format!("eth{i}")))
        .unwrap_or(0)
}
