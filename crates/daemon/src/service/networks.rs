//! The networks backend: Docker's network objects from `wharf_network`, with the container
//! side (names, running state) and events.

use std::collections::BTreeMap;

use serde_json::Value;
use wharf_api_types::network::{EndpointResource, Ipam, IpamConfig, NetworkResource};
use wharf_api_types::Filters;
use wharf_network::model::Network;
use wharf_network::networks::CreateRequest;

use crate::server::error::ApiError;
use crate::service::containers::blocking;
use crate::service::containers::network::endpoint_config;
use crate::state::Store;
use crate::wiring::Daemon;

const LIST_FILTERS: &[&str] = &["dangling", "driver", "id", "label", "name", "scope", "type"];
const PRUNE_FILTERS: &[&str] = &["label", "label!", "until"];

fn builtin(n: &Network) -> bool {
    matches!(n.name.as_str(), "bridge" | "host" | "none")
}

/// Docker's object for a network; `containers` fills `Containers`.
fn view(d: &Daemon, n: &Network, containers: bool) -> NetworkResource {
    let mut members = BTreeMap::new();
    if containers {
        let prefix = n.subnet.map_or(32, |s| s.prefix);
        for m in d.containers.network().members(&n.id) {
            members.insert(
                m.container_id,
                EndpointResource {
                    name: m.name,
                    endpoint_id: m.endpoint.id,
                    mac_address: m.endpoint.mac,
                    ipv4_address: format!("{}/{prefix}", m.endpoint.ip),
                    ipv6_address: m
                        .endpoint
                        .ip6
                        .zip(n.subnet6)
                        .map(|(ip, s)| format!("{ip}/{}", s.prefix))
                        .unwrap_or_default(),
                },
            );
        }
    }
    let config = n
        .subnet
        .map(|s| IpamConfig {
            subnet: s.to_string(),
            ip_range: n.ip_range.map(|r| r.to_string()),
            gateway: n.gateway.map(|g| g.to_string()),
            aux_addresses: n
                .aux
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect(),
        })
        .into_iter()
        .chain(n.subnet6.map(|s| IpamConfig {
            subnet: s.to_string(),
            gateway: n.gateway6.map(|g| g.to_string()),
            ..Default::default()
        }))
        .collect();
    NetworkResource {
        name: n.name.clone(),
        id: n.id.clone(),
        created: n.created.clone(),
        scope: "local".into(),
        driver: n.driver.name().into(),
        enable_ipv4: true,
        enable_ipv6: n.subnet6.is_some(),
        ipam: Ipam {
            driver: "default".into(),
            options: (!builtin(n)).then(BTreeMap::new),
            config,
        },
        internal: n.internal,
        attachable: n.attachable,
        containers: members,
        options: n.options.clone(),
        labels: n.labels.clone(),
        ..Default::default()
    }
}

fn not_found(key: &str) -> ApiError {
    ApiError::from_err(&wharf_network::NetworkError::NotFound(key.to_string()))
}

fn emit(d: &Daemon, n: &Network, action: &str, container: Option<&str>) {
    let mut attrs = BTreeMap::new();
    attrs.insert("name".to_string(), n.name.clone());
    attrs.insert("type".to_string(), n.driver.name().to_string());
    if let Some(c) = container {
        attrs.insert("container".to_string(), c.to_string());
    }
    d.events.publish("network", action, &n.id, attrs);
}

/// `GET /networks`.
pub fn list(d: &Daemon, f: &Filters) -> Result<Vec<NetworkResource>, ApiError> {
    f.validate(LIST_FILTERS)
        .map_err(|e| ApiError::from_err(&e))?;
    let net = d.containers.network();
    let mut out = Vec::new();
    for n in net.networks() {
        let ok = f.matches_any("name", |v| n.name.contains(v))
            && f.matches_any("id", |v| n.id.starts_with(v))
            && f.matches_any("driver", |v| v == n.driver.name())
            && f.matches_any("scope", |v| v == "local")
            && f.matches_any("type", |v| (v == "builtin") == builtin(&n))
            && f.matches_any("dangling", |v| {
                let dangling = !builtin(&n) && net.members(&n.id).is_empty();
                matches!(v, "true" | "1") == dangling
            })
            && f.matches_labels(&n.labels);
        if ok {
            out.push(view(d, &n, false));
        }
    }
    Ok(out)
}

/// `GET /networks/{id}`.
pub fn inspect(d: &Daemon, key: &str) -> Result<NetworkResource, ApiError> {
    let n = d
        .containers
        .network()
        .network(key)
        .ok_or_else(|| not_found(key))?;
    Ok(view(d, &n, true))
}

fn strings(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// What `POST /networks/create` may ask that Wharf cannot honour yet: refused, not ignored.
fn refuse_unsupported(body: &Value, cfg6: Option<&Value>) -> Result<(), ApiError> {
    let unsupported = |what: &str| {
        Err(ApiError::new(
            wharf_errdefs::ErrorKind::NotImplemented,
            format!("{what} not supported yet"),
        ))
    };
    let ipam = body.get("IPAM");
    let ipam_driver = ipam
        .and_then(|i| i.get("Driver"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if !matches!(ipam_driver, "" | "default") {
        return Err(ApiError::from_err(&wharf_network::NetworkError::NotFound(
            format!("plugin \"{ipam_driver}\""),
        )));
    }
    let non_empty = |v: Option<&Value>| v.and_then(Value::as_object).is_some_and(|m| !m.is_empty());
    if non_empty(ipam.and_then(|i| i.get("Options"))) {
        return unsupported("IPAM driver options are");
    }
    if cfg6.is_some_and(|c| {
        c.get("IPRange")
            .and_then(Value::as_str)
            .is_some_and(|r| !r.is_empty())
            || non_empty(c.get("AuxiliaryAddresses"))
    }) {
        return unsupported("ip-range and aux-address on an IPv6 subnet are");
    }
    let flag = |k: &str| body.get(k).and_then(Value::as_bool).unwrap_or(false);
    let config_from = body
        .get("ConfigFrom")
        .and_then(|c| c.get("Network"))
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    if flag("ConfigOnly") || config_from {
        return unsupported("config-only networks (--config-only, --config-from) are");
    }
    if flag("Ingress")
        || !matches!(
            body.get("Scope").and_then(Value::as_str).unwrap_or(""),
            "" | "local"
        )
    {
        return unsupported("swarm-scoped and ingress networks (swarm mode) are");
    }
    Ok(())
}

/// `POST /networks/create`; returns the id.
pub async fn create(d: &Daemon, body: &Value) -> Result<String, ApiError> {
    let s = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let b = |k: &str| body.get(k).and_then(Value::as_bool).unwrap_or(false);
    let ipam = body.get("IPAM");
    let configs: Vec<&Value> = ipam
        .and_then(|i| i.get("Config"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    // One IPv4 and one IPv6 config at most, told apart by their subnets.
    let is_v6 = |c: &&Value| {
        c.get("Subnet")
            .and_then(Value::as_str)
            .is_some_and(|s| s.contains(':'))
    };
    let (v6, v4): (Vec<&Value>, Vec<&Value>) = configs.into_iter().partition(is_v6);
    if v4.len() > 1 || v6.len() > 1 {
        return Err(ApiError::new(
            wharf_errdefs::ErrorKind::NotImplemented,
            "more than one IPAM config per address family is not supported yet",
        ));
    }
    let field_of = |cfg: Option<&Value>, k: &str| {
        cfg.and_then(|c| c.get(k))
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let cfg = v4.first().copied();
    let cfg6 = v6.first().copied();
    let field = |k: &str| field_of(cfg, k);
    refuse_unsupported(body, cfg6)?;
    let req = CreateRequest {
        name: s("Name"),
        driver: s("Driver"),
        subnet: field("Subnet"),
        gateway: field("Gateway"),
        subnet6: field_of(cfg6, "Subnet"),
        gateway6: field_of(cfg6, "Gateway"),
        ip_range: field("IPRange"),
        aux: strings(cfg.and_then(|c| c.get("AuxiliaryAddresses"))),
        labels: strings(body.get("Labels")),
        options: strings(body.get("Options")),
        internal: b("Internal"),
        attachable: b("Attachable"),
        ipv6: b("EnableIPv6"),
    };
    let net = d.containers.network().clone();
    let n = blocking(move || net.create_network(&req)).await?;
    emit(d, &n, "create", None);
    Ok(n.id)
}

/// `DELETE /networks/{id}`.
pub async fn remove(d: &Daemon, key: &str) -> Result<(), ApiError> {
    let (net, k) = (d.containers.network().clone(), key.to_string());
    let n = blocking(move || net.remove_network(&k)).await?;
    emit(d, &n, "destroy", None);
    Ok(())
}

/// `POST /networks/{id}/connect` (`Some(EndpointConfig)`) and `/disconnect` (`None`);
/// `force` disconnects the endpoint of a container that no longer exists.
pub async fn connect(
    d: &Daemon,
    key: &str,
    container: &str,
    endpoint: Option<&Value>,
    force: bool,
) -> Result<(), ApiError> {
    let net = d.containers.network().clone();
    let target = net.network(key).ok_or_else(|| not_found(key))?;
    let h = match d.containers.get(container) {
        Ok(h) => h,
        Err(e) if force && endpoint.is_none() && e.kind == wharf_errdefs::ErrorKind::NotFound => {
            let (name, k) = (container.to_string(), target.id.clone());
            let n = blocking(move || net.force_disconnect(&name, &k)).await?;
            emit(d, &n, "disconnect", None);
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let (cid, running, mode) = {
        let c = Store::lock(&h);
        (
            c.id.clone(),
            c.state.status.is_alive(),
            c.host_config.network_mode.clone(),
        )
    };
    if mode == "host" || mode == "none" || mode.starts_with("container:") {
        if !target.driver.has_endpoints() {
            return Err(ApiError::from_err(&wharf_network::NetworkError::Forbidden(
                "container cannot be disconnected from host network or connected to host network"
                    .into(),
            )));
        }
        return Err(ApiError::from_err(&wharf_network::NetworkError::Forbidden(format!(
            "container sharing network namespace with another container or host cannot be connected to any other network ({mode})"
        ))));
    }
    let k = target.id.clone();
    let id = cid.clone();
    let n = match endpoint {
        Some(ep) => {
            let cfg = endpoint_config(ep)?;
            blocking(move || net.connect(&id, &k, running, &cfg)).await?
        }
        None => blocking(move || net.disconnect(&id, &k, running)).await?,
    };
    if endpoint.is_some() && running {
        d.containers.refresh_resolv_conf(&cid).await?;
    }
    let action = if endpoint.is_some() {
        "connect"
    } else {
        "disconnect"
    };
    emit(d, &n, action, Some(&cid));
    Ok(())
}

/// `POST /networks/prune`.
pub async fn prune(d: &Daemon, f: &Filters) -> Result<Vec<String>, ApiError> {
    f.validate(PRUNE_FILTERS)
        .map_err(|e| ApiError::from_err(&e))?;
    if f.contains("until") {
        return Err(ApiError::new(
            wharf_errdefs::ErrorKind::NotImplemented,
            "the until filter is not supported yet for networks",
        ));
    }
    let net = d.containers.network().clone();
    // Networks a container (running or not) is configured for are kept, as dockerd does.
    let mut used = std::collections::HashSet::new();
    for h in d.containers.store.all() {
        let c = Store::lock(&h);
        used.insert(c.host_config.network_mode.clone());
        for (n, _) in net.attachments(&c.id).into_iter().flatten() {
            used.insert(n.id);
        }
    }
    let keep_labels = f.clone();
    let pruned: Vec<Network> = net
        .networks()
        .into_iter()
        .filter(|n| !builtin(n) && !used.contains(&n.id) && !used.contains(&n.name))
        .filter(|n| keep_labels.matches_labels(&n.labels) && !negated(&keep_labels, &n.labels))
        .collect();
    let mut out = Vec::new();
    for n in pruned {
        let (net, id) = (net.clone(), n.id.clone());
        if blocking(move || net.remove_network(&id)).await.is_ok() {
            emit(d, &n, "destroy", None);
            out.push(n.name);
        }
    }
    out.sort();
    Ok(out)
}

/// Whether a `label!` filter excludes these labels.
fn negated(f: &Filters, labels: &BTreeMap<String, String>) -> bool {
    f.get("label!")
        .iter()
        .any(|want| match want.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
            None => labels.contains_key(want.as_str()),
        })
}
