//! The containers backend's side of networking: network modes checked at create, the
//! sandbox set up at start and torn down at exit (through `wharf_network`), and the network
//! fields of inspect and list.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use serde_json::{json, Value};
use wharf_api_types::container::{EndpointSettings, HostConfig, NetworkSettings};
use wharf_errdefs::ErrorKind;
use wharf_network::model::{EndpointConfig, Sandbox, Subnet};
use wharf_network::ports;

use super::{blocking, ContainerService};
use crate::server::error::ApiError;
use crate::state::{Container, Status, Store};

/// Docker's stored name of the default mode.
const DEFAULT_MODE: &str = "bridge";

/// The `--add-host` value that names the host.
const HOST_GATEWAY: &str = "host-gateway";

/// The container a `container:<name|id>` mode joins.
fn joined(mode: &str) -> Option<&str> {
    mode.strip_prefix("container:")
}

/// Whether a mode names a user-defined network (which has the embedded DNS resolver).
pub fn is_user_network(mode: &str) -> bool {
    !matches!(mode, "" | "default" | "bridge" | "host" | "none") && joined(mode).is_none()
}

/// The nameservers a container's resolv.conf lists: the embedded resolver when it is on a
/// user-defined network (which forwards to `--dns`), else `--dns`.
pub fn resolv_nameservers(hc: &HostConfig, on_user_network: bool) -> Vec<String> {
    if on_user_network {
        vec![wharf_network::dns::RESOLVER_IP.to_string()]
    } else {
        hc.dns.clone().unwrap_or_default()
    }
}

/// One endpoint's settings (`EndpointSettings` of `NetworkingConfig` or of `network
/// connect`) as far as we honour them; the rest is refused.
pub fn endpoint_config(ep: &Value) -> Result<EndpointConfig, ApiError> {
    let strings = |k: &str| -> Vec<String> {
        ep.get(k)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect()
    };
    let ipam = ep.get("IPAMConfig");
    let field = |k: &str| {
        ipam.and_then(|i| i.get(k))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let ipv4 = static_ip::<std::net::Ipv4Addr>(field("IPv4Address"), "IPv4")?;
    let ipv6 = static_ip::<std::net::Ipv6Addr>(field("IPv6Address"), "IPv6")?;
    let link_local = ipam
        .and_then(|i| i.get("LinkLocalIPs"))
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if link_local {
        return Err(ApiError::new(
            ErrorKind::NotImplemented,
            "link-local endpoint addresses are not supported yet",
        ));
    }
    if ep
        .get("DriverOpts")
        .and_then(Value::as_object)
        .is_some_and(|m| !m.is_empty())
    {
        return Err(ApiError::new(
            ErrorKind::NotImplemented,
            "endpoint driver options (driver-opt) are not supported yet",
        ));
    }
    let mac = match ep
        .get("MacAddress")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
    {
        Some(m) => Some(check_mac(m)?),
        None => None,
    };
    Ok(EndpointConfig {
        aliases: strings("Aliases"),
        ipv4,
        ipv6,
        links: strings("Links"),
        mac,
    })
}

/// A static address of an endpoint's `IPAMConfig`, if given; `family` names it in the error.
fn static_ip<T>(s: Option<&str>, family: &str) -> Result<Option<T>, ApiError>
where
    T: std::str::FromStr + Into<std::net::IpAddr> + Copy,
{
    let Some(s) = s else {
        return Ok(None);
    };
    s.parse::<T>()
        .ok()
        .filter(|ip| !(*ip).into().is_unspecified())
        .map(Some)
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "invalid endpoint settings:\ninvalid {family} address: {s}"
            ))
        })
}

/// A MAC address as Docker accepts it, normalized.
pub fn check_mac(m: &str) -> Result<String, ApiError> {
    wharf_network::model::parse_mac(m)
        .map(wharf_network::model::format_mac)
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "invalid endpoint settings:\ninvalid MAC address {m}"
            ))
        })
}

/// The networks a new container is configured for, from its mode and `NetworkingConfig`
/// (by network name or id, the mode's first); empty for `host`, `none` and `container:`.
pub fn endpoint_configs(
    mode: &str,
    networking: Option<&Value>,
) -> Result<Vec<(String, EndpointConfig)>, ApiError> {
    let endpoints = networking
        .and_then(|n| n.get("EndpointsConfig"))
        .and_then(Value::as_object);
    let mut out = Vec::new();
    let own = !matches!(mode, "host" | "none") && joined(mode).is_none();
    if own {
        out.push((mode.to_string(), EndpointConfig::default()));
    }
    for (name, ep) in endpoints.into_iter().flatten() {
        let cfg = endpoint_config(ep)?;
        // The CLI keys the default network as the mode it sends.
        let name = if name == "default" {
            DEFAULT_MODE
        } else {
            name
        };
        if !own {
            if cfg != EndpointConfig::default() {
                return Err(ApiError::invalid(
                    "conflicting options: cannot attach both user-defined and non-user-defined network-modes",
                ));
            }
            continue;
        }
        let default = name == DEFAULT_MODE;
        if default && cfg.ipv4.is_some() {
            return Err(ApiError::invalid(
                "user specified IP address is supported on user defined networks only",
            ));
        }
        if default && !cfg.aliases.is_empty() {
            return Err(ApiError::invalid(
                "network-scoped alias is supported only for containers in user defined networks",
            ));
        }
        match out.iter_mut().find(|(n, _)| n == name) {
            Some(first) => first.1 = cfg,
            None => out.push((name.to_string(), cfg)),
        }
    }
    Ok(out)
}

/// Normalizes and checks the network mode and port bindings at create (Docker's messages).
pub fn validate(
    svc: &ContainerService,
    hc: &mut HostConfig,
    exposed: Option<&BTreeMap<String, wharf_api_types::container::Empty>>,
) -> Result<(), ApiError> {
    if matches!(hc.network_mode.as_str(), "" | "default") {
        hc.network_mode = DEFAULT_MODE.to_string();
    }
    let publishes =
        hc.port_bindings.as_ref().is_some_and(|p| !p.is_empty()) || hc.publish_all_ports;
    // An unknown network is reported at start, as dockerd does; a joined container must exist.
    if let Some(other) = joined(&hc.network_mode) {
        svc.get(other)?;
        if publishes {
            return Err(ApiError::invalid(
                "conflicting options: port publishing and the container type network mode",
            ));
        }
    }
    ports::requests(
        hc.port_bindings.as_ref(),
        hc.publish_all_ports,
        exposed
            .into_iter()
            .flat_map(|e| e.keys().map(String::as_str)),
    )
    .map(drop)
    .map_err(|e| ApiError::from_err(&e))
}

impl ContainerService {
    /// Sets up `c`'s network namespace for a start; `None` means the host's.
    pub(super) async fn network_up(&self, c: &Container) -> Result<Option<PathBuf>, ApiError> {
        let mode = c.host_config.network_mode.clone();
        if mode == "host" {
            return Ok(None);
        }
        if let Some(other) = joined(&mode) {
            let o = self.snapshot(other)?;
            if !o.state.status.is_alive() {
                return Err(ApiError::new(
                    ErrorKind::Conflict,
                    format!(
                        "cannot join network namespace of a non running container: {}",
                        o.id
                    ),
                ));
            }
            if o.host_config.network_mode == "host" {
                return Ok(None);
            }
            return Ok(Some(self.network.sandbox_key(&o.id)));
        }
        let network = (mode != "none").then_some(mode);
        let requests = if network.is_some() {
            ports::requests(
                c.host_config.port_bindings.as_ref(),
                c.host_config.publish_all_ports,
                c.config
                    .exposed_ports
                    .iter()
                    .flat_map(|e| e.keys().map(String::as_str)),
            )
            .map_err(|e| ApiError::from_err(&e))?
        } else {
            Vec::new()
        };
        let (net, id, name, hostname) = (
            self.network.clone(),
            c.id.clone(),
            c.short_name().to_string(),
            c.config.hostname.clone(),
        );
        let dns: Vec<std::net::SocketAddr> = c
            .host_config
            .dns
            .iter()
            .flatten()
            .filter_map(|d| d.parse::<std::net::IpAddr>().ok())
            .map(|ip| std::net::SocketAddr::new(ip, 53))
            .collect();
        let sb = blocking(move || {
            net.connect_sandbox(&id, &name, &hostname, network.as_deref(), &requests, &dns)
        })
        .await?;
        Ok(Some(PathBuf::from(sb.key)))
    }

    /// `--add-host` entries with `host-gateway` replaced by the daemon's `host-gateway-ip`, else
    /// the default bridge's gateway (dockerd's rule).
    pub(super) fn extra_hosts(&self, hc: &HostConfig) -> Result<Vec<String>, ApiError> {
        let mut out = Vec::new();
        for e in hc.extra_hosts.iter().flatten() {
            let (name, ip) = e
                .split_once(':')
                .or_else(|| e.split_once('='))
                .ok_or_else(|| ApiError::invalid(format!("invalid extra host: {e}")))?;
            if ip != HOST_GATEWAY {
                out.push(format!("{name}:{ip}"));
                continue;
            }
            let gw = self
                .config()
                .network
                .host_gateway_ip
                .or_else(|| {
                    let n = self.network.network(DEFAULT_MODE)?;
                    n.gateway.map(std::net::IpAddr::V4)
                })
                .ok_or_else(|| {
                    ApiError::invalid(
                        "unable to derive the IP value for host-gateway: no default bridge and no host-gateway-ip",
                    )
                })?;
            out.push(format!("{name}:{gw}"));
        }
        Ok(out)
    }

    /// Whether `c` gets the embedded resolver: its mode or a network it was connected to is
    /// user-defined, as dockerd decides.
    pub(super) fn on_user_network(&self, c: &Container) -> bool {
        is_user_network(&c.host_config.network_mode)
            || self
                .network
                .attachments(&c.id)
                .into_iter()
                .flatten()
                .any(|(n, _)| n.name != DEFAULT_MODE)
    }

    /// The resolv.conf `c` gets.
    pub(super) fn resolv_conf_of(&self, c: &Container) -> String {
        let hc = &c.host_config;
        super::lifecycle::resolv_conf(
            &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
            &resolv_nameservers(hc, self.on_user_network(c)),
            hc.dns_search.as_deref().unwrap_or(&[]),
            hc.dns_options.as_deref().unwrap_or(&[]),
        )
    }

    /// After `network connect` of a running container: its first user network switches its
    /// resolv.conf to the embedded resolver, as dockerd does (written in place, so the bind
    /// mount inside sees it).
    pub async fn refresh_resolv_conf(&self, key: &str) -> Result<(), ApiError> {
        let c = self.snapshot(key)?;
        let path = self.store.dir(&c.id).join("resolv.conf");
        let want = self.resolv_conf_of(&c);
        if !c.state.status.is_alive()
            || tokio::fs::read_to_string(&path).await.ok() == Some(want.clone())
        {
            return Ok(());
        }
        tokio::fs::write(&path, want)
            .await
            .map_err(|e| ApiError::internal(format!("writing {}: {e}", path.display())))
    }

    /// Forgets the networks a removed container was connected to.
    pub(super) fn network_forget(&self, id: &str) {
        if let Err(e) = self.network.forget(id) {
            tracing::warn!("forgetting a container's networks: {e}");
        }
    }

    /// Tears down `id`'s sandbox (ports, veth, namespace, lease); fine if it has none.
    pub(super) async fn network_down(&self, id: &str) {
        let (net, id) = (self.network.clone(), id.to_string());
        if let Err(e) = blocking(move || net.disconnect_sandbox(&id)).await {
            tracing::warn!("removing a network sandbox: {}", e.message);
        }
    }

    /// At daemon start: keeps the sandboxes of the containers still running, removes the rest.
    /// It also forgets the configured networks of containers that no longer exist (a crash
    /// between a removal's record and its network state).
    pub(super) async fn reconcile_network(&self, live: &[String]) {
        let net = self.network.clone();
        let known: HashSet<String> = self
            .store
            .all()
            .iter()
            .map(|h| Store::lock(h).id.clone())
            .collect();
        if let Err(e) = net.forget_unknown(&known) {
            tracing::warn!("forgetting the networks of removed containers: {e}");
        }
        let live: HashSet<String> = live.iter().cloned().collect();
        let errs = tokio::task::spawn_blocking(move || net.reconcile(&live))
            .await
            .unwrap_or_default();
        for e in errs {
            tracing::warn!("reconciling networks: {e}");
        }
    }

    /// The network service.
    pub fn network(&self) -> &std::sync::Arc<wharf_network::NetworkService> {
        &self.network
    }

    /// The sandbox whose interfaces `c` uses (its own, or the joined container's).
    fn sandbox_of(&self, c: &Container) -> Option<Sandbox> {
        match joined(&c.host_config.network_mode) {
            Some(other) => {
                let o = self.store.get(other).ok()?;
                let id = Store::lock(&o).id.clone();
                self.network.sandbox(&id)
            }
            None => self.network.sandbox(&c.id),
        }
    }

    /// `NetworkSettings` of inspect.
    pub(super) fn network_settings(&self, c: &Container) -> NetworkSettings {
        let alive = c.state.status.is_alive() || c.state.status == Status::Restarting;
        let sb = self.sandbox_of(c).filter(|_| alive);
        let mut ns = NetworkSettings {
            sandbox_id: if alive { c.id.clone() } else { String::new() },
            sandbox_key: match &sb {
                Some(s) => s.key.clone(),
                None => String::new(),
            },
            networks: self.endpoints_view(c, sb.as_ref()),
            ..Default::default()
        };
        ns.ports = ports_view(c, sb.as_ref());
        if c.host_config.network_mode == DEFAULT_MODE {
            if let Some(ep) = ns.networks.get(DEFAULT_MODE) {
                ns.endpoint_id = ep.endpoint_id.clone();
                ns.gateway = ep.gateway.clone();
                ns.ip_address = ep.ip_address.clone();
                ns.ip_prefix_len = ep.ip_prefix_len;
                ns.mac_address = ep.mac_address.clone();
            }
        }
        ns
    }

    /// `NetworkSettings.Networks`: one entry per network, filled while running.
    pub(super) fn endpoints_view(
        &self,
        c: &Container,
        sb: Option<&Sandbox>,
    ) -> BTreeMap<String, EndpointSettings> {
        let mode = c.host_config.network_mode.as_str();
        if joined(mode).is_some() {
            return BTreeMap::new();
        }
        let nets = match self.network.attachments(&c.id) {
            Some(list) => list,
            None => self
                .network
                .network(mode)
                .map(|n| (n, EndpointConfig::default()))
                .into_iter()
                .collect(),
        };
        let mut out = BTreeMap::new();
        for (net, cfg) in nets {
            let mut e = EndpointSettings {
                network_id: net.id.clone(),
                aliases: (!cfg.aliases.is_empty()).then(|| cfg.aliases.clone()),
                links: (!cfg.links.is_empty()).then(|| cfg.links.clone()),
                ipam_config: ipam_view(&cfg),
                ..Default::default()
            };
            if let Some(ep) = sb.and_then(|s| s.endpoints.iter().find(|e| e.network_id == net.id)) {
                e.endpoint_id = ep.id.clone();
                e.ip_address = ep.ip.to_string();
                e.mac_address = ep.mac.clone();
                e.ip_prefix_len = net.subnet.map_or(0, |s: Subnet| i64::from(s.prefix));
                e.gateway = net.gateway.map(|g| g.to_string()).unwrap_or_default();
                if let (Some(ip6), Some(s6)) = (ep.ip6, net.subnet6) {
                    e.global_ipv6_address = ip6.to_string();
                    e.global_ipv6_prefix_len = i64::from(s6.prefix);
                    e.ipv6_gateway = net.gateway6.map(|g| g.to_string()).unwrap_or_default();
                }
                if net.name != DEFAULT_MODE {
                    // What the embedded resolver answers for it there (dockerd's order).
                    let mut names = vec![c.short_name().to_string()];
                    names.extend(cfg.aliases.iter().cloned());
                    names.push(c.id.chars().take(12).collect());
                    if !c.config.hostname.is_empty() {
                        names.push(c.config.hostname.clone());
                    }
                    let mut seen = HashSet::new();
                    names.retain(|n| seen.insert(n.clone()));
                    e.dns_names = Some(names);
                }
            }
            out.insert(net.name, e);
        }
        out
    }

    /// `Ports` of the container list.
    pub(super) fn ports_summary(&self, c: &Container) -> Vec<Value> {
        let alive = c.state.status.is_alive();
        let sb = self.network.sandbox(&c.id).filter(|_| alive);
        let mut out = Vec::new();
        let mapped = sb.iter().flat_map(|s| &s.endpoints).flat_map(|e| &e.ports);
        let mut seen = HashSet::new();
        for m in mapped {
            seen.insert((m.container_port, m.proto.name()));
            out.push(json!({
                "IP": m.host_ip.to_string(),
                "PrivatePort": m.container_port,
                "PublicPort": m.host_port,
                "Type": m.proto.name(),
            }));
        }
        for key in c.config.exposed_ports.iter().flat_map(|e| e.keys()) {
            let (p, proto) = key.split_once('/').unwrap_or((key, "tcp"));
            if let Ok(p) = p.parse::<u16>() {
                if !seen.contains(&(p, proto)) {
                    out.push(json!({"PrivatePort": p, "Type": proto}));
                }
            }
        }
        out
    }
}

/// `NetworkSettings.Ports`: every exposed or published port, with its host bindings while
/// running (null when not published).
fn ports_view(c: &Container, sb: Option<&Sandbox>) -> BTreeMap<String, Option<Value>> {
    let mut m: BTreeMap<String, Option<Value>> = BTreeMap::new();
    if c.host_config.network_mode == "host" || joined(&c.host_config.network_mode).is_some() {
        return m;
    }
    for key in c.config.exposed_ports.iter().flat_map(|e| e.keys()) {
        let k = if key.contains('/') {
            key.clone()
        } else {
            format!("{key}/tcp")
        };
        m.insert(k, None);
    }
    for p in sb.iter().flat_map(|s| &s.endpoints).flat_map(|e| &e.ports) {
        let k = format!("{}/{}", p.container_port, p.proto.name());
        let entry = m.entry(k).or_insert(None).get_or_insert_with(|| json!([]));
        if let Some(a) = entry.as_array_mut() {
            a.push(json!({"HostIp": p.host_ip.to_string(), "HostPort": p.host_port.to_string()}));
        }
    }
    m
}

/// `IPAMConfig` of an endpoint: the static addresses asked for.
fn ipam_view(cfg: &EndpointConfig) -> Option<Value> {
    let mut m = serde_json::Map::new();
    if let Some(ip) = cfg.ipv4 {
        m.insert("IPv4Address".into(), json!(ip.to_string()));
    }
    if let Some(ip) = cfg.ipv6 {
        m.insert("IPv6Address".into(), json!(ip.to_string()));
    }
    (!m.is_empty()).then_some(Value::Object(m))
}
