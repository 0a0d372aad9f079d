//! User-defined networks: create (Docker's validation and messages), remove, prune, and
//! connecting containers to them, running or not.

use std::collections::{BTreeMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use crate::error::NetworkError;
use crate::model::{Attachment, DriverKind, Endpoint, EndpointConfig, Network, Subnet, Subnet6};
use crate::{driver, ipam, new_endpoint, parent, predefined, NetworkService};

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
    /// The IPv6 IPAM config's subnet.
    pub subnet6: Option<String>,
    /// The IPv6 IPAM config's gateway.
    pub gateway6: Option<String>,
    /// IPAM `IPRange`.
    pub ip_range: Option<String>,
    /// IPAM `AuxiliaryAddresses`.
    pub aux: BTreeMap<String, String>,
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

    /// The networks `container_id` is configured for, in connect order, with what it asked
    /// for on each; `None` when create recorded none (its mode applies at start).
    pub fn attachments(&self, container_id: &str) -> Option<Vec<(Network, EndpointConfig)>> {
        let st = self.lock();
        let list = st.attachments.get(container_id)?;
        Some(
            list.iter()
                .filter_map(|a| Some((st.networks.get(&a.network_id)?.clone(), a.config.clone())))
                .collect(),
        )
    }

    /// Creates a network: a bridge one on its own Linux bridge (`br-<id>`), a macvlan or
    /// ipvlan one on its parent; the subnet given or taken from the pools clear of other
    /// networks and host routes.
    pub fn create_network(&self, req: &CreateRequest) -> Result<Network, NetworkError> {
        let kind = match req.driver.as_str() {
            "" | "bridge" => DriverKind::Bridge,
            "macvlan" => DriverKind::Macvlan,
            "ipvlan" => DriverKind::Ipvlan,
            d @ ("host" | "null") => {
                return Err(NetworkError::Forbidden(format!(
                    "only one instance of \"{d}\" network is allowed"
                )))
            }
            d => return Err(NetworkError::NotFound(format!("plugin \"{d}\""))),
        };
        if req.name.is_empty() {
            return Err(NetworkError::Invalid("network name is required".into()));
        }
        if kind == DriverKind::Bridge {
            crate::firewall::validate_options(&req.options)?;
        }
        let v6 = ipv6_config(req, kind)?;
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
        let (ip_range, aux) = ipam_extras(req, subnet)?;
        let mut routes = Vec::new();
        let mut parent_up = false;
        let mut trunk_up = false;
        let given_parent = req
            .options
            .get(parent::PARENT)
            .filter(|p| !p.is_empty() && kind.on_parent());
        if given_parent.is_some_and(|p| p == "lo") {
            return Err(NetworkError::Invalid(format!(
                "loopback interface is not a valid {} parent link",
                kind.name()
            )));
        }
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
            if let Some(p) = given_parent {
                parent_up = links.iter().any(|l| &l.name == p);
                if let Some((trunk, _)) = p.rsplit_once('.') {
                    trunk_up = links.iter().any(|l| l.name == trunk);
                }
            }
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
            if let Some((s6, _)) = v6 {
                if st
                    .networks
                    .values()
                    .filter_map(|n| n.subnet6)
                    .any(|t| t.overlaps(s6))
                {
                    return Err(pool_overlap());
                }
            }
            let taken: Vec<Subnet> = st.networks.values().filter_map(|n| n.subnet).collect();
            let subnet = match subnet {
                Some(s) => {
                    if taken.iter().any(|t| t.overlaps(s)) {
                        return Err(pool_overlap());
                    }
                    s
                }
                None => {
                    let all: Vec<Subnet> = taken.iter().copied().chain(routes).collect();
                    ipam::choose_subnet(&self.cfg.pools, &all)?
                }
            };
            let mut n = predefined(&req.name, kind);
            n.subnet = Some(subnet);
            n.ip_range = ip_range;
            n.aux = aux;
            n.subnet6 = v6.map(|(s, _)| s);
            n.gateway6 = v6.map(|(_, g)| g);
            n.mtu = req
                .options
                .get("com.docker.network.driver.mtu")
                .and_then(|m| m.parse().ok())
                .unwrap_or(self.cfg.mtu);
            n.labels = req.labels.clone();
            n.options = req.options.clone();
            n.user_subnet = req.subnet.is_some();
            n.internal = req.internal;
            n.attachable = req.attachable;
            if kind == DriverKind::Bridge {
                n.bridge = req
                    .options
                    .get("com.docker.network.bridge.name")
                    .cloned()
                    .unwrap_or_else(|| format!("br-{}", &n.id[..12]));
                n.gateway = Some(gateway.unwrap_or(subnet.nth(1)));
            } else {
                // The gateway is a router outside: only one the user names.
                n.gateway = gateway;
                parent::link_kind(&n)?;
                let others: Vec<Network> = st.networks.values().cloned().collect();
                match given_parent {
                    None => {
                        n.parent = parent::dummy_name(kind, &n.id);
                        n.owns_parent = true;
                    }
                    Some(p) => {
                        n.parent = p.clone();
                        n.owns_parent = others.iter().any(|o| o.parent == *p && o.owns_parent);
                        if !parent_up {
                            let (trunk, _) = parent::vlan_of(p)?;
                            if !trunk_up {
                                return Err(NetworkError::Invalid(format!(
                                    "failed to find master interface {trunk} on the Docker host: Link not found"
                                )));
                            }
                            n.owns_parent = true;
                        }
                    }
                }
                parent::check_sharing(&n, &others)?;
            }
            st.networks.insert(n.id.clone(), n.clone());
            self.store.save(&st)?;
            n
        };
        let made = if kind == DriverKind::Bridge {
            // Rules first: the new bridge never forwards without its isolation.
            self.sync_firewall().and_then(|()| {
                Ok(driver::ensure_bridge(
                    self.kernel.as_ref(),
                    &n,
                    self.forwards(&n),
                )?)
            })
        } else {
            driver::ensure_parent(self.kernel.as_ref(), &n).map_err(NetworkError::from)
        };
        if let Err(e) = made {
            let _ = self.remove_links(&n);
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

    /// Deletes what `n` has on the host: its bridge, or a parent Wharf made that no other
    /// network uses.
    fn remove_links(&self, n: &Network) -> Result<(), NetworkError> {
        if n.driver == DriverKind::Bridge {
            return Ok(driver::remove_link(self.kernel.as_ref(), &n.bridge)?);
        }
        let shared = self
            .networks()
            .iter()
            .any(|o| o.id != n.id && o.driver.on_parent() && o.parent == n.parent);
        if n.owns_parent && !shared {
            driver::remove_link(self.kernel.as_ref(), &n.parent)?;
        }
        Ok(())
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
        // The links go first: a crash in between leaves the network known, and start-up
        // recreates them, instead of links nobody knows.
        self.remove_links(&n)?;
        let mut st = self.lock();
        st.networks.remove(&n.id);
        for a in st.attachments.values_mut() {
            a.retain(|a| a.network_id != n.id);
        }
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

    /// Checks the networks a new container asks for (by name or id, the mode's first) and
    /// resolves them for [`NetworkService::configure`]. `None`: an unknown mode network
    /// alone, left for the start to report as dockerd does; any other unknown network is
    /// refused now.
    pub fn resolve(
        &self,
        entries: &[(String, EndpointConfig)],
    ) -> Result<Option<Vec<Attachment>>, NetworkError> {
        let mut list = Vec::new();
        for (i, (key, cfg)) in entries.iter().enumerate() {
            let Some(n) = self.network(key) else {
                if i == 0 && entries.len() == 1 {
                    return Ok(None);
                }
                return Err(NetworkError::NotFound(key.clone()));
            };
            check_config(&n, cfg).map_err(|e| {
                NetworkError::Invalid(format!(
                    "invalid config for network {}: invalid endpoint settings:\n{e}",
                    n.name
                ))
            })?;
            if !n.driver.has_endpoints() {
                return Err(NetworkError::Invalid(
                    "conflicting options: cannot attach both user-defined and non-user-defined network-modes".into(),
                ));
            }
            if list.iter().all(|a: &Attachment| a.network_id != n.id) {
                list.push(Attachment {
                    network_id: n.id,
                    config: cfg.clone(),
                });
            }
        }
        Ok(Some(list))
    }

    /// At container create, before its record: records what [`NetworkService::resolve`]
    /// found (the create journal undoes it if the record never comes).
    pub fn configure(&self, container_id: &str, list: Vec<Attachment>) -> Result<(), NetworkError> {
        let mut st = self.lock();
        st.attachments.insert(container_id.to_string(), list);
        self.store.save(&st)
    }

    /// `network connect`: remembered for every later start; for a running container the
    /// interface is added at once.
    pub fn connect(
        &self,
        container_id: &str,
        network: &str,
        running: bool,
        cfg: &EndpointConfig,
    ) -> Result<Network, NetworkError> {
        let n = self
            .network(network)
            .ok_or_else(|| NetworkError::NotFound(network.to_string()))?;
        if !n.driver.has_endpoints() {
            return Err(NetworkError::Forbidden(format!(
                "container cannot be disconnected from host network or connected to {} network",
                n.name
            )));
        }
        check_config(&n, cfg)
            .map_err(|e| NetworkError::Invalid(format!("invalid endpoint settings:\n{e}")))?;
        let ep = {
            let mut st = self.lock();
            let running_sb = st.sandboxes.get(container_id).filter(|_| running);
            let already = st.config(container_id, &n.id).is_some()
                || running_sb.is_some_and(|s| s.endpoints.iter().any(|e| e.network_id == n.id));
            if already {
                return Err(NetworkError::Forbidden(format!(
                    "endpoint with name {} already exists in network {}",
                    running_sb.map_or(container_id, |s| s.name.as_str()),
                    n.name
                )));
            }
            let mut ep = None;
            if let Some(sb) = running_sb {
                let ifname = format!("eth{}", next_if(&sb.endpoints));
                let e = new_endpoint(&mut st, &n, ifname, cfg)?;
                if let Some(sb) = st.sandboxes.get_mut(container_id) {
                    sb.endpoints.push(e.clone());
                }
                ep = Some(e);
            }
            st.attachments
                .entry(container_id.to_string())
                .or_default()
                .push(Attachment {
                    network_id: n.id.clone(),
                    config: cfg.clone(),
                });
            self.store.save(&st)?;
            ep
        };
        if let Some(ep) = ep {
            let pin = self.sandbox_key(container_id);
            let first = self
                .sandbox(container_id)
                .is_some_and(|s| s.endpoints.len() == 1);
            let p = self.plumbing(&ep, &n, first);
            if let Err(e) = driver::add_endpoint(self.kernel.as_ref(), &pin, &p) {
                let _ = self.disconnect(container_id, &n.id, true);
                return Err(e.into());
            }
            // The first user network of a running container brings the embedded resolver.
            if let Some(sb) = self.sandbox(container_id) {
                if let Some(task) = self.serve_dns(&sb)? {
                    self.proxies
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .entry(container_id.to_string())
                        .or_default()
                        .push(task);
                }
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
                    a.retain(|a| a.network_id != n.id);
                    before != a.len()
                })
                .unwrap_or(false);
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
            let pin = self.sandbox_key(container_id);
            driver::remove_endpoint(self.kernel.as_ref(), &pin, &ep.host_ifname, &ep.ifname)?;
        }
        Ok(n)
    }

    /// `network disconnect --force` of a container that no longer exists: removes the
    /// endpoint named `name` on `network` that a lost container left.
    pub fn force_disconnect(&self, name: &str, network: &str) -> Result<Network, NetworkError> {
        let n = self
            .network(network)
            .ok_or_else(|| NetworkError::NotFound(network.to_string()))?;
        let ep = {
            let mut st = self.lock();
            let sb = st
                .sandboxes
                .values_mut()
                .find(|s| s.name == name.trim_start_matches('/'));
            let ep = sb.and_then(|sb| {
                let i = sb.endpoints.iter().position(|e| e.network_id == n.id)?;
                Some((PathBuf::from(&sb.key), sb.endpoints.remove(i)))
            });
            let Some(ep) = ep else {
                return Err(NetworkError::EndpointNotFound(name.to_string()));
            };
            self.store.save(&st)?;
            ep
        };
        let (pin, ep) = ep;
        driver::remove_endpoint(self.kernel.as_ref(), &pin, &ep.host_ifname, &ep.ifname)?;
        Ok(n)
    }

    /// Forgets what `container_id` was connected to (container removal).
    pub fn forget(&self, container_id: &str) -> Result<(), NetworkError> {
        let mut st = self.lock();
        if st.attachments.remove(container_id).is_some() {
            self.store.save(&st)?;
        }
        Ok(())
    }

    /// Forgets the configured networks of every container not in `known` (a crash between
    /// [`NetworkService::configure`] and the container's record).
    pub fn forget_unknown(&self, known: &HashSet<String>) -> Result<(), NetworkError> {
        let mut st = self.lock();
        let before = st.attachments.len();
        st.attachments.retain(|id, _| known.contains(id));
        if st.attachments.len() != before {
            self.store.save(&st)?;
        }
        Ok(())
    }
}

/// Docker's checks of an endpoint's settings against its network.
fn check_config(n: &Network, cfg: &EndpointConfig) -> Result<(), String> {
    let default = PREDEFINED.contains(&n.name.as_str());
    if let Some(ip) = cfg.ipv4 {
        let subnet = n.subnet.filter(|_| n.user_subnet);
        check_static(default, subnet.map(|s| s.contains(ip)), ip)?;
    }
    if let Some(ip6) = cfg.ipv6 {
        check_static(default, n.subnet6.map(|s| s.contains(ip6)), ip6)?;
    }
    if n.driver == DriverKind::Ipvlan && cfg.mac.is_some() {
        return Err("ipvlan interfaces do not support custom mac address assignment".into());
    }
    if default && !cfg.aliases.is_empty() {
        return Err(
            "network-scoped alias is supported only for containers in user defined networks".into(),
        );
    }
    Ok(())
}

/// A requested subnet that overlaps another network's (Docker's message).
fn pool_overlap() -> NetworkError {
    NetworkError::Forbidden(
        "invalid pool request: Pool overlaps with other one on this address space".into(),
    )
}

/// Docker's checks of a static address (`--ip`, `--ip6`): a user-defined network whose
/// subnet of that family the user gave (`inside`: whether it holds the address).
fn check_static(
    default: bool,
    inside: Option<bool>,
    ip: impl std::fmt::Display,
) -> Result<(), String> {
    if default {
        return Err("user specified IP address is supported on user defined networks only".into());
    }
    match inside {
        None => Err("user specified IP address is supported only when connecting to networks with user configured subnets".into()),
        Some(false) => Err(format!(
            "no configured subnet or ip-range contain the IP address {ip}"
        )),
        Some(true) => Ok(()),
    }
}

/// The first free `ethN` index.
fn next_if(eps: &[Endpoint]) -> usize {
    (0..)
        .find(|i| eps.iter().all(|e| e.ifname != format!("eth{i}")))
        .unwrap_or(0)
}

/// The `--ip-range` and `--aux-address`es of a request, checked against its subnet with
/// Docker's messages.
fn ipam_extras(
    req: &CreateRequest,
    subnet: Option<Subnet>,
) -> Result<(Option<Subnet>, BTreeMap<String, Ipv4Addr>), NetworkError> {
    let bad = |m: String| NetworkError::Invalid(format!("invalid network config:\n{m}"));
    let Some(subnet) = subnet else {
        if req.ip_range.is_some() || !req.aux.is_empty() {
            return Err(bad("invalid subnet : invalid CIDR block notation".into()));
        }
        return Ok((None, BTreeMap::new()));
    };
    let range = match &req.ip_range {
        None => None,
        Some(r) => {
            let p: Subnet = r
                .parse()
                .map_err(|_| bad(format!("invalid ip-range {r}: invalid CIDR block notation")))?;
            if p.prefix < subnet.prefix {
                return Err(bad(format!(
                    "invalid ip-range {r}: CIDR block is bigger than its parent subnet {subnet}"
                )));
            }
            if p != p.canonical() {
                return Err(bad(format!(
                    "invalid ip-range {r}: it should be {}",
                    p.canonical()
                )));
            }
            if !subnet.overlaps(p) {
                return Err(bad(format!(
                    "invalid ip-range {r}: parent subnet {subnet} doesn't contain ip-range"
                )));
            }
            Some(p)
        }
    };
    let mut aux = BTreeMap::new();
    for (name, a) in &req.aux {
        let ip: Ipv4Addr = a
            .parse()
            .map_err(|_| bad(format!("invalid auxiliary address {name}: invalid address")))?;
        if !subnet.contains(ip) {
            return Err(bad(format!(
                "invalid auxiliary address {name}: parent subnet {subnet} doesn't contain this address"
            )));
        }
        aux.insert(name.clone(), ip);
    }
    Ok((range, aux))
}

/// The IPv6 subnet and gateway of a request: with `--ipv6`, the subnet given or a random
/// unique local /64 (as dockerd since 27 when none is given), the gateway given or its first
/// address; an IPv6 subnet without `--ipv6` is refused rather than ignored.
fn ipv6_config(
    req: &CreateRequest,
    kind: DriverKind,
) -> Result<Option<(Subnet6, Ipv6Addr)>, NetworkError> {
    if !req.ipv6 {
        return match &req.subnet6 {
            Some(s) => Err(NetworkError::Invalid(format!(
                "IPv6 subnet {s} needs IPv6 enabled on the network (--ipv6)"
            ))),
            None => Ok(None),
        };
    }
    if kind != DriverKind::Bridge {
        return Err(NetworkError::NotSupported(format!(
            "IPv6 on {} networks is not supported yet",
            kind.name()
        )));
    }
    let subnet = match &req.subnet6 {
        Some(s) => s
            .parse::<Subnet6>()
            .map_err(|_| {
                NetworkError::Invalid(format!("invalid subnet {s}: invalid CIDR address: {s}"))
            })?
            .canonical(),
        None => {
            let g: [u8; 5] = rand::random();
            let mut a = [0u8; 16];
            a[0] = 0xfd;
            a[1..6].copy_from_slice(&g);
            Subnet6 {
                addr: Ipv6Addr::from(a),
                prefix: 64,
            }
        }
    };
    let gateway = match &req.gateway6 {
        Some(g) => {
            let ip: Ipv6Addr = g
                .parse()
                .map_err(|_| NetworkError::Invalid(format!("invalid gateway address {g}")))?;
            if !subnet.contains(ip) || ip == subnet.network() {
                return Err(NetworkError::Invalid(format!(
                    "no matching subnet for gateway {g}"
                )));
            }
            ip
        }
        None => subnet.nth(1),
    };
    Ok(Some((subnet, gateway)))
}
