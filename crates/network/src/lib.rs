//! Wharf's networking, after Docker's Container Network Model: networks (the predefined
//! `bridge`, `host` and `none`, and user-defined bridge, macvlan and ipvlan networks),
//! sandboxes (a container's network namespace, pinned under the exec root) and endpoints (a
//! veth into a Linux bridge, or a macvlan/ipvlan of the network's parent interface, with an
//! address from IPAM: the subnet, its `--ip-range`, never the gateway or an aux address),
//! published ports and the embedded DNS resolver. Macvlan and ipvlan endpoints are created
//! straight into the container's namespace and need no rules: the parent isolates them
//! ([`driver`], [`parent`]); ports cannot be published on them (nothing on the host can
//! relay to them), which is refused rather than ignored as dockerd does. IPv6 (`--ipv6`,
//! bridge networks): each endpoint also gets an address of the network's IPv6 subnet (given,
//! or a random unique local /64) and a route via the bridge, which holds the IPv6 gateway;
//! the resolver answers AAAA. There is no IPv6 NAT and Wharf never turns IPv6 forwarding on:
//! containers reach their network and the host; where the host routes IPv6 itself, the
//! firewall's interface rules keep the networks apart for IPv6 too.
//!
//! The daemon calls [`NetworkService`] at container create ([`NetworkService::resolve`] and
//! [`NetworkService::configure`]: the networks it is configured for, with aliases, static
//! address, MAC and links, changed later by `network connect`/`disconnect`), start
//! ([`NetworkService::connect_sandbox`]) and exit ([`NetworkService::disconnect_sandbox`]) and
//! once at start-up ([`NetworkService::reconcile`]). Every change is written to the store before it is made in
//! the kernel, and reconciliation removes what a crash left behind: veths on our bridges that
//! no endpoint owns, namespace pins of containers that are not running, and their leases.
//!
//! Firewall ([`firewall`]): Wharf owns one nftables table, `inet wharf` (`inet wharf-<bridge>`
//! for a daemon whose default bridge is not `wharf0`, so test daemons never share one), and
//! nothing else: no iptables rules, no other table touched. It is rebuilt from the store in
//! one atomic netlink batch at start-up (which also clears what a kill -9 left) and whenever
//! a network is created or removed: a `forward` chain (isolation between Wharf bridges,
//! `--internal` without a route out, `icc=false`) and a `postrouting` chain (masquerading of
//! each bridge subnet leaving through another interface, unless `enable_ip_masquerade` is
//! false). Bridges then forward (`net.ipv4.conf.<bridge>.forwarding=1`, internal ones not) and
//! with `ip-forward` (default) the daemon sets `net.ipv4.ip_forward=1` as dockerd does; when
//! that turned routing on, `forward` drops what is not a bridge's own traffic, as dockerd's
//! FORWARD policy does, unless `ip-forward-no-drop`. If nftables cannot be used, every bridge
//! keeps forwarding off instead: isolated, no outbound NAT, and
//! [`NetworkService::firewall_error`] says why; so with `iptables: false`, which also deletes
//! the table an earlier run left. Published ports need no rules: a userland proxy in the
//! daemon serves them (host sockets really bound, relayed to the container, answering on
//! 127.0.0.1 without `route_localnet`). `icc=false` is also done by bridge port isolation,
//! since bridged traffic skips the IP hooks without br_netfilter.
//!
//! Coexistence with a host firewall: every base chain on a hook sees each packet, whatever
//! other tables decided; a drop anywhere is final, an accept only ends its own chain. So the
//! host's rules (nftables or iptables-nft) can always drop container traffic, and Wharf can
//! neither flush nor shadow them; a host forward policy of drop (ufw, firewalld) still drops
//! container traffic and needs the host's own accept for the Wharf bridges. For Docker's
//! `DOCKER-USER` idea the table has a regular chain `user` that `forward` jumps to first:
//! Wharf creates it when missing and never flushes or deletes it (each rebuild deletes and
//! re-adds only its own chains), so `nft add rule inet wharf user ip daddr 10.0.0.0/8 drop`
//! holds across restarts, and an `accept` there skips Wharf's forward rules. A host that
//! flushes its whole ruleset (`nft flush ruleset`, a firewall service reload) removes the
//! table too: the daemon watches nf_tables' change notifications and rebuilds it at once
//! ([`NetworkService::watch_firewall`]).
//!
//! nftables over hand-written netlink ([`sys::nft`]), not a crate: `nftnl` (Mullvad) binds
//! libnftnl and libmnl, C libraries our static musl/glibc-static binaries would have to
//! carry; `rustables` 0.9 speaks netlink itself but is GPL-3.0-or-later (we are Apache-2.0)
//! and runs bindgen (libclang, kernel headers) at build time. The few messages needed (table,
//! chain, rule with meta/cmp/payload/bitwise/ct/immediate/masq) fit on the route socket's
//! message builder. Measured against `nft -f` of the same ruleset: see [`sys::nft`].

pub mod dns;
pub mod driver;
pub mod error;
pub mod firewall;
pub mod ipam;
pub mod model;
pub mod networks;
pub mod parent;
pub mod ports;
pub mod store;
pub mod sys;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;

pub use error::NetworkError;
use ipam::Pool;
use model::{mac_for, DriverKind, Endpoint, EndpointConfig, Network, Sandbox, Subnet};
use ports::PortRequest;
use store::{State, Store};
use sys::Kernel;

/// The daemon's network settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the state file lives (`<data-root>/network`).
    pub state_dir: PathBuf,
    /// Where namespaces are pinned (`<exec-root>/netns`).
    pub netns_dir: PathBuf,
    /// The default bridge's Linux name (`bridge`/`-b`; `none` disables it).
    pub bridge: String,
    /// The default bridge's address and subnet (`bip`).
    pub bip: Option<Subnet>,
    /// MTU for the default bridge and its veths (0: kernel default).
    pub mtu: u32,
    /// Where network subnets come from (`default-address-pools`).
    pub pools: Vec<Pool>,
    /// Default host address of published ports (`ip`).
    pub default_ip: Ipv4Addr,
    /// Where the embedded DNS forwards what is not a container (`dns`, else the host's).
    pub dns: Vec<std::net::SocketAddr>,
    /// nftables, masquerading, icc and IP forwarding.
    pub firewall: firewall::Settings,
}

/// The bridge driver option that turns inter-container traffic off.
pub const ICC: &str = "com.docker.network.bridge.enable_icc";

/// Docker's default bridge name is docker0; ours.
pub const DEFAULT_BRIDGE: &str = "wharf0";

/// The networks, sandboxes and proxies of one daemon.
pub struct NetworkService {
    cfg: Config,
    kernel: Arc<dyn Kernel>,
    store: Store,
    state: Arc<Mutex<State>>,
    proxies: Mutex<HashMap<String, Vec<JoinHandle<()>>>>,
    /// The nftables table while Wharf manages one; the lock orders replacements.
    fw: Mutex<Option<String>>,
    /// Why nftables could not be used (forwarding stays off).
    fw_error: Option<String>,
    /// Forwarded traffic other than the bridges' own is dropped (Wharf turned routing on).
    fw_drop: bool,
    /// Containers whose embedded resolver runs (its task is among their proxies).
    resolving: Mutex<HashSet<String>>,
}

fn random_id() -> String {
    let b: [u8; 32] = rand::random();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn predefined(name: &str, driver: DriverKind) -> Network {
    Network {
        id: random_id(),
        name: name.to_string(),
        driver,
        created: now(),
        subnet: None,
        gateway: None,
        ip_range: None,
        aux: BTreeMap::new(),
        subnet6: None,
        gateway6: None,
        last_ip6: None,
        bridge: String::new(),
        parent: String::new(),
        owns_parent: false,
        mtu: 0,
        labels: BTreeMap::new(),
        options: BTreeMap::new(),
        last_ip: None,
        internal: false,
        attachable: false,
        user_subnet: false,
    }
}

impl NetworkService {
    /// Loads the state, creates the predefined networks and the default bridge.
    pub fn open(cfg: Config, kernel: Arc<dyn Kernel>) -> Result<NetworkService, NetworkError> {
        let store = Store::new(&cfg.state_dir);
        let mut st = store.load()?;
        for (name, kind) in [("host", DriverKind::Host), ("none", DriverKind::Null)] {
            if st.find(name).is_none() {
                let n = predefined(name, kind);
                st.networks.insert(n.id.clone(), n);
            }
        }
        let mut svc = NetworkService {
            cfg,
            kernel,
            store,
            state: Arc::new(Mutex::new(State::default())),
            proxies: Mutex::new(HashMap::new()),
            fw: Mutex::new(None),
            fw_error: None,
            fw_drop: false,
            resolving: Mutex::new(HashSet::new()),
        };
        if svc.cfg.bridge != "none" {
            svc.default_bridge(&mut st)?;
        }
        // The table is rebuilt from the store, which also undoes whatever a crash left: the
        // rules exist before any bridge forwards.
        let table = firewall::table_name(svc.bridge_name());
        if !svc.cfg.firewall.enabled {
            // Rules of an earlier run with the firewall on must not outlive it (without
            // nftables there is nothing to delete, so no error matters).
            let _ = svc.kernel.delete_table(&table);
        } else {
            let fwc = svc.cfg.firewall.clone();
            // Remembered across restarts (the switch is on by then), and written before the
            // switch is turned on, so that a crash in between keeps the drop.
            let marker = svc.cfg.state_dir.join("ip-forward-set-by-wharf");
            if fwc.ip_forward
                && !fwc.ip_forward_no_drop
                && svc.kernel.read_sysctl("net/ipv4/ip_forward")? == "0"
            {
                let io = |source| {
                    NetworkError::Sys(sys::SysError::Io {
                        what: "writing",
                        path: marker.clone(),
                        source,
                    })
                };
                std::fs::create_dir_all(&svc.cfg.state_dir).map_err(io)?;
                std::fs::write(&marker, b"").map_err(io)?;
            }
            svc.fw_drop = fwc.ip_forward && !fwc.ip_forward_no_drop && marker.exists();
            match svc.kernel.replace_table(&ruleset(&table, &st, svc.fw_drop)) {
                Ok(()) => *svc.fw.get_mut().unwrap_or_else(|p| p.into_inner()) = Some(table),
                Err(e) => svc.fw_error = Some(e.to_string()),
            }
        }
        // Before the bridges: writing it resets every interface's own forwarding.
        if svc.cfg.firewall.ip_forward && svc.fw_error.is_none() && svc.cfg.firewall.enabled {
            svc.kernel.sysctl("net/ipv4/ip_forward", "1")?;
        }
        // Also a crash between saving a new network and creating its bridge: create it now.
        for n in st.networks.values() {
            match n.driver {
                DriverKind::Bridge => {
                    driver::ensure_bridge(svc.kernel.as_ref(), n, svc.forwards(n))?
                }
                DriverKind::Macvlan | DriverKind::Ipvlan => {
                    driver::ensure_parent(svc.kernel.as_ref(), n)?
                }
                DriverKind::Host | DriverKind::Null => {}
            }
        }
        svc.store.save(&st)?;
        *svc.lock() = st;
        Ok(svc)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Why the firewall is off although enabled (nftables unavailable): containers then
    /// have no outbound NAT.
    pub fn firewall_error(&self) -> Option<&str> {
        self.fw_error.as_deref()
    }

    /// Whether `n`'s bridge routes: only under Wharf's rules, and never for `--internal`.
    fn forwards(&self, n: &Network) -> bool {
        !n.internal && self.fw.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// Rebuilds Wharf's table when someone removed it (a host `nft flush ruleset`); true if
    /// it had to.
    pub fn check_firewall(&self) -> Result<bool, NetworkError> {
        let table = self.fw.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match table {
            Some(t) if !self.kernel.table_exists(&t)? => self.sync_firewall().map(|()| true),
            _ => Ok(false),
        }
    }

    /// Watches nftables on a thread of its own and restores the table whenever it goes,
    /// until the service is dropped.
    pub fn watch_firewall(svc: &Arc<NetworkService>) -> Result<(), NetworkError> {
        if svc.fw.lock().unwrap_or_else(|p| p.into_inner()).is_none() {
            return Ok(());
        }
        let mut next = svc.kernel.nft_events()?;
        let weak = Arc::downgrade(svc);
        let spawned = std::thread::Builder::new()
            .name("nft-watch".into())
            .spawn(move || loop {
                if next().is_err() {
                    std::thread::sleep(std::time::Duration::from_secs(1));
                }
                let Some(svc) = weak.upgrade() else {
                    return;
                };
                // A failure here is retried at the next change.
                let _ = svc.check_firewall();
            });
        spawned.map(drop).map_err(|e| {
            NetworkError::Sys(sys::SysError::Io {
                what: "starting the nftables watch",
                path: PathBuf::new(),
                source: e,
            })
        })
    }

    /// Rebuilds the nftables table from the networks now in the store.
    fn sync_firewall(&self) -> Result<(), NetworkError> {
        let fw = self.fw.lock().unwrap_or_else(|p| p.into_inner());
        let Some(table) = fw.as_ref() else {
            return Ok(());
        };
        let t = ruleset(table, &self.lock(), self.fw_drop);
        Ok(self.kernel.replace_table(&t)?)
    }

    fn bridge_name(&self) -> &str {
        if self.cfg.bridge.is_empty() {
            DEFAULT_BRIDGE
        } else {
            &self.cfg.bridge
        }
    }

    /// Sets up the `bridge` network: `bip`, or the subnet it had, or the first pool that
    /// overlaps no host route (as dockerd does).
    fn default_bridge(&self, st: &mut State) -> Result<(), NetworkError> {
        let name = self.bridge_name().to_string();
        let old = st.find("bridge").cloned();
        let keep = old.as_ref().filter(|o| {
            o.bridge == name
                && (self.cfg.bip.is_none() || o.subnet == self.cfg.bip.map(|b| b.canonical()))
        });
        let (subnet, gateway) = match (keep, self.cfg.bip) {
            (Some(o), _) => (o.subnet, o.gateway),
            (None, Some(bip)) => {
                let gw = if bip.addr == bip.network() {
                    bip.nth(1)
                } else {
                    bip.addr
                };
                (Some(bip.canonical()), Some(gw))
            }
            (None, None) => {
                let mut routes = Vec::new();
                self.kernel.host(&mut |nl| {
                    let own = nl.link(&name)?.map(|l| l.index);
                    routes = nl
                        .routes()?
                        .into_iter()
                        .filter(|(_, oif)| Some(*oif) != own)
                        .map(|(s, _)| s)
                        .collect();
                    Ok(())
                })?;
                let s = ipam::choose_subnet(&self.cfg.pools, &routes)?;
                (Some(s), Some(s.nth(1)))
            }
        };
        let mut n = old
            .clone()
            .unwrap_or_else(|| predefined("bridge", DriverKind::Bridge));
        n.subnet = subnet;
        n.gateway = gateway;
        n.bridge = name;
        n.mtu = self.cfg.mtu;
        n.options = [
            ("com.docker.network.bridge.default_bridge", "true"),
            (
                ICC,
                if self.cfg.firewall.icc {
                    "true"
                } else {
                    "false"
                },
            ),
            (
                firewall::IP_MASQ,
                if self.cfg.firewall.ip_masq {
                    "true"
                } else {
                    "false"
                },
            ),
            ("com.docker.network.bridge.host_binding_ipv4", "0.0.0.0"),
            ("com.docker.network.bridge.name", n.bridge.as_str()),
            (
                "com.docker.network.driver.mtu",
                &n.mtu.max(1500).to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        if let Some(o) = old.filter(|o| o.bridge != n.bridge && !o.bridge.is_empty()) {
            let _ = driver::remove_link(self.kernel.as_ref(), &o.bridge);
        }
        st.networks.insert(n.id.clone(), n);
        Ok(())
    }

    /// Where `container_id`'s namespace is pinned.
    pub fn sandbox_key(&self, container_id: &str) -> PathBuf {
        self.cfg.netns_dir.join(container_id)
    }

    /// A container's sandbox, if it has one.
    pub fn sandbox(&self, container_id: &str) -> Option<Sandbox> {
        self.lock().sandboxes.get(container_id).cloned()
    }

    /// A network by name, id or unique id prefix.
    pub fn network(&self, key: &str) -> Option<Network> {
        self.lock().find(key).cloned()
    }

    /// Creates `container_id`'s namespace: loopback, plus an endpoint on `network` (its mode,
    /// `None` for `none`) with `ports` published, and one on each network it was connected to.
    /// The leases are saved before anything is created; any failure undoes all of it.
    pub fn connect_sandbox(
        &self,
        container_id: &str,
        name: &str,
        hostname: &str,
        network: Option<&str>,
        ports: &[PortRequest],
        dns: &[std::net::SocketAddr],
    ) -> Result<Sandbox, NetworkError> {
        let pin = self.sandbox_key(container_id);
        let _ = self.disconnect_sandbox(container_id);
        let mut sb = Sandbox {
            container_id: container_id.to_string(),
            name: name.to_string(),
            hostname: hostname.to_string(),
            key: pin.display().to_string(),
            endpoints: Vec::new(),
            dns: dns.to_vec(),
        };
        let primary = match network {
            Some(key) => Some(
                self.network(key)
                    .ok_or_else(|| NetworkError::NotFound(key.into()))?,
            ),
            None => None,
        };
        {
            let mut st = self.lock();
            let mut nets: Vec<(Network, EndpointConfig)> = match st.attachments.get(container_id) {
                Some(list) => list
                    .iter()
                    .filter_map(|a| {
                        Some((st.networks.get(&a.network_id)?.clone(), a.config.clone()))
                    })
                    .collect(),
                None => primary
                    .iter()
                    .map(|n| (n.clone(), EndpointConfig::default()))
                    .collect(),
            };
            // The mode's network first: it carries the default route and the published ports.
            if let Some(p) = &primary {
                if let Some(i) = nets.iter().position(|(n, _)| n.id == p.id) {
                    let first = nets.remove(i);
                    nets.insert(0, first);
                }
            }
            for (n, cfg) in nets.iter().filter(|(n, _)| n.driver.has_endpoints()) {
                let ifname = format!("eth{}", sb.endpoints.len());
                let ep = new_endpoint(&mut st, n, ifname, cfg)?;
                sb.endpoints.push(ep);
            }
            st.sandboxes.insert(container_id.to_string(), sb.clone());
            self.store.save(&st)?;
        }
        let r = self.plumb(&mut sb, ports);
        if r.is_err() {
            let _ = self.disconnect_sandbox(container_id);
        }
        r.map(|()| sb)
    }

    /// What the kernel needs for `ep` (the default route only through the first network).
    fn plumbing<'a>(&self, ep: &'a Endpoint, n: &'a Network, first: bool) -> driver::Plumbing<'a> {
        let mac = model::parse_mac(&ep.mac);
        let (attach, route) = match n.driver {
            DriverKind::Macvlan | DriverKind::Ipvlan => {
                let (kind, l3) = parent::link_kind(n)
                    .unwrap_or((sys::LinkKind::Macvlan { parent: 0, mode: 4 }, false));
                // A network without a parent of the user's is internal, as in Docker.
                let out = first && !n.internal && !n.on_dummy();
                let route = match (n.gateway, l3) {
                    (Some(gw), _) => Some(Some(gw)),
                    (None, true) => Some(None),
                    (None, false) => None,
                };
                (
                    driver::Attach::Parent {
                        parent: &n.parent,
                        kind,
                    },
                    route.filter(|_| out),
                )
            }
            _ => (
                driver::Attach::Bridge {
                    host_ifname: &ep.host_ifname,
                    bridge: &n.bridge,
                    isolated: firewall::option_off(n, ICC),
                },
                n.gateway.filter(|_| first && !n.internal).map(Some),
            ),
        };
        driver::Plumbing {
            ifname: &ep.ifname,
            ip: ep.ip,
            mac: if n.driver == DriverKind::Ipvlan {
                None
            } else {
                Some(mac.unwrap_or(mac_for(ep.ip)))
            },
            subnet: n.subnet.unwrap_or(Subnet::new(ep.ip, 32)),
            route,
            ip6: ep.ip6.zip(n.subnet6.map(|s| s.prefix)),
            route6: n
                .gateway6
                .filter(|_| first && !n.internal && ep.ip6.is_some()),
            mtu: n.mtu,
            attach,
        }
    }

    fn plumb(&self, sb: &mut Sandbox, ports: &[PortRequest]) -> Result<(), NetworkError> {
        let pin = PathBuf::from(&sb.key);
        let Some(first) = sb.endpoints.first().cloned() else {
            return Ok(self.kernel.create_netns(&pin, &mut |_, _| Ok(()))?);
        };
        if !ports.is_empty() {
            let st = self.lock();
            if let Some(n) = st
                .networks
                .get(&first.network_id)
                .filter(|n| n.driver.on_parent())
            {
                // Nothing on the host reaches a macvlan/ipvlan endpoint to relay to.
                return Err(NetworkError::Invalid(format!(
                    "published ports are not supported on {} network {}: its containers are reached at their own addresses",
                    n.driver.name(),
                    n.name
                )));
            }
        }
        let mut bound = Vec::new();
        for r in ports {
            bound.push(ports::bind(r, self.cfg.default_ip, &sb.name, &first.id)?);
        }
        let nets: Vec<Network> = {
            let st = self.lock();
            sb.endpoints
                .iter()
                .filter_map(|e| st.networks.get(&e.network_id).cloned())
                .collect()
        };
        let plumbing: Vec<driver::Plumbing<'_>> = sb
            .endpoints
            .iter()
            .zip(&nets)
            .enumerate()
            .map(|(i, (e, n))| self.plumbing(e, n, i == 0))
            .collect();
        driver::create_sandbox(self.kernel.as_ref(), &pin, &plumbing)?;
        let mappings: Vec<_> = bound.iter().map(|b| b.mapping.clone()).collect();
        if let Some(e) = sb.endpoints.first_mut() {
            e.ports = mappings;
        }
        {
            let mut st = self.lock();
            st.sandboxes.insert(sb.container_id.clone(), sb.clone());
            self.store.save(&st)?;
        }
        let mut tasks = Vec::new();
        for b in bound {
            let addr = format!("{}:{}", b.mapping.host_ip, b.mapping.host_port);
            tasks.push(
                ports::serve(b, first.ip).map_err(|source| NetworkError::PortBind {
                    name: sb.name.clone(),
                    endpoint: first.id.clone(),
                    addr,
                    source,
                })?,
            );
        }
        tasks.extend(self.serve_dns(sb)?);
        self.proxies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(sb.container_id.clone(), tasks);
        Ok(())
    }

    /// Starts the embedded resolver in `sb`'s namespace when it is on a user-defined network
    /// and has none yet.
    fn serve_dns(&self, sb: &Sandbox) -> Result<Option<JoinHandle<()>>, NetworkError> {
        let user = {
            let st = self.lock();
            sb.endpoints.iter().any(|e| {
                st.networks
                    .get(&e.network_id)
                    .is_some_and(|n| n.name != "bridge")
            })
        };
        let mut resolving = self.resolving.lock().unwrap_or_else(|p| p.into_inner());
        if !user || resolving.contains(&sb.container_id) {
            return Ok(None);
        }
        let addr = std::net::SocketAddr::from((dns::RESOLVER_IP, 53));
        let sock = self.kernel.bind_udp(Path::new(&sb.key), addr)?;
        resolving.insert(sb.container_id.clone());
        let upstreams = if sb.dns.is_empty() {
            self.cfg.dns.clone()
        } else {
            sb.dns.clone()
        };
        let task = tokio::spawn(dns::serve(
            sock,
            self.state.clone(),
            sb.container_id.clone(),
            upstreams,
        ));
        Ok(Some(task))
    }

    fn stop_proxies(&self, container_id: &str) {
        self.resolving
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(container_id);
        let tasks = self
            .proxies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(container_id);
        for t in tasks.into_iter().flatten() {
            t.abort();
        }
    }

    /// Removes `container_id`'s sandbox: proxies, veths, namespace pin, leases. Fine if it
    /// has none.
    pub fn disconnect_sandbox(&self, container_id: &str) -> Result<(), NetworkError> {
        self.stop_proxies(container_id);
        let pin = self.sandbox_key(container_id);
        driver::remove_sandbox(self.kernel.as_ref(), &pin)?;
        if self.lock().sandboxes.contains_key(container_id) {
            let mut st = self.lock();
            st.sandboxes.remove(container_id);
            self.store.save(&st)?;
        }
        Ok(())
    }

    /// At daemon start: keeps the sandboxes of `live` containers (serving their ports again),
    /// removes every other sandbox, stray namespace pins and veths on our bridges that no
    /// endpoint owns.
    pub fn reconcile(&self, live: &HashSet<String>) -> Vec<NetworkError> {
        let mut errors = Vec::new();
        let known: Vec<String> = self.lock().sandboxes.keys().cloned().collect();
        for id in known.iter().filter(|id| !live.contains(*id)) {
            if let Err(e) = self.disconnect_sandbox(id) {
                errors.push(e);
            }
        }
        for id in list_dir(&self.cfg.netns_dir) {
            if !live.contains(&id) {
                if let Err(e) = self.kernel.remove_netns(&self.sandbox_key(&id)) {
                    errors.push(e.into());
                }
            }
        }
        let st = self.lock().clone();
        let owned: HashSet<&str> = st
            .sandboxes
            .values()
            .flat_map(|s| &s.endpoints)
            .map(|e| e.host_ifname.as_str())
            .collect();
        let bridges: HashSet<&str> = st.networks.values().map(|n| n.bridge.as_str()).collect();
        let r = self.kernel.host(&mut |nl| {
            let links = nl.links()?;
            let ours: HashSet<u32> = links
                .iter()
                .filter(|l| bridges.contains(l.name.as_str()))
                .map(|l| l.index)
                .collect();
            for l in &links {
                let stray =
                    l.master.is_some_and(|m| ours.contains(&m)) && !owned.contains(l.name.as_str());
                if stray {
                    nl.delete_link(l.index)?;
                }
            }
            Ok(())
        });
        if let Err(e) = r {
            errors.push(e.into());
        }
        for sb in st.sandboxes.values() {
            let Some(ep) = sb.endpoints.first() else {
                continue;
            };
            let mut tasks = Vec::new();
            match self.serve_dns(sb) {
                Ok(t) => tasks.extend(t),
                Err(e) => errors.push(e),
            }
            for m in &ep.ports {
                match ports::rebind(m).and_then(|b| ports::serve(b, ep.ip)) {
                    Ok(t) => tasks.push(t),
                    Err(source) => errors.push(NetworkError::PortBind {
                        name: sb.name.clone(),
                        endpoint: ep.id.clone(),
                        addr: format!("{}:{}", m.host_ip, m.host_port),
                        source,
                    }),
                }
            }
            self.proxies
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(sb.container_id.clone(), tasks);
        }
        errors
    }
}

/// The table for the bridge networks of `st`.
fn ruleset(table: &str, st: &State, drop_others: bool) -> firewall::Table {
    let bridges: Vec<firewall::Bridge> = st
        .networks
        .values()
        .filter_map(firewall::Bridge::of)
        .collect();
    firewall::ruleset(table, &bridges, drop_others)
}

/// Leases an address on `n` for a new endpoint, the one `cfg` asks for or the next free one
/// (the caller saves the state).
fn new_endpoint(
    st: &mut State,
    n: &Network,
    ifname: String,
    cfg: &EndpointConfig,
) -> Result<Endpoint, NetworkError> {
    let Some(subnet) = n.subnet else {
        return Err(NetworkError::NotFound(n.name.clone()));
    };
    let mut taken = st.leases(&n.id);
    taken.extend(n.gateway);
    taken.extend(n.aux.values());
    let ip = match cfg.ipv4 {
        Some(ip) => {
            ipam::reserve(subnet, ip, &taken)?;
            ip
        }
        None => {
            let range = n.ip_range.unwrap_or(subnet);
            let ip = ipam::allocate(subnet, range, &taken, n.last_ip)?;
            if let Some(m) = st.networks.get_mut(&n.id) {
                m.last_ip = Some(ip);
            }
            ip
        }
    };
    let ip6 = match n.subnet6 {
        None => None,
        Some(subnet6) => {
            let mut taken6 = st.leases6(&n.id);
            taken6.extend(n.gateway6);
            Some(match cfg.ipv6 {
                Some(ip6) => {
                    ipam::reserve6(subnet6, ip6, &taken6)?;
                    ip6
                }
                None => {
                    let ip6 = ipam::allocate6(subnet6, &taken6, n.last_ip6)?;
                    if let Some(m) = st.networks.get_mut(&n.id) {
                        m.last_ip6 = Some(ip6);
                    }
                    ip6
                }
            })
        }
    };
    let id = random_id();
    let mac = cfg
        .mac
        .as_deref()
        .and_then(model::parse_mac)
        .unwrap_or(mac_for(ip));
    Ok(Endpoint {
        // Only a veth leaves an end on the host.
        host_ifname: if n.driver.on_parent() {
            String::new()
        } else {
            format!("veth{}", &id[..7])
        },
        id,
        network_id: n.id.clone(),
        ip,
        ip6,
        // An ipvlan has its parent's MAC, which Docker does not report.
        mac: if n.driver == DriverKind::Ipvlan {
            String::new()
        } else {
            model::format_mac(mac)
        },
        ifname,
        ports: Vec::new(),
    })
}

fn list_dir(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
