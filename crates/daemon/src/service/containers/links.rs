//! Legacy container links (`--link name:alias`) on the default bridge, as dockerd keeps them:
//! checked at create, resolved at each start into `/etc/hosts` lines and `<ALIAS>_*`
//! environment variables, shown in inspect as `/child:/parent/alias`, removed with
//! `DELETE /containers/{/parent/alias}?link=1`. On a user-defined network a link is a DNS
//! alias of that endpoint instead (`wharf_network::model::EndpointConfig::links`).

use std::collections::BTreeMap;

use wharf_api_types::container::{Empty, HostConfig};
use wharf_errdefs::ErrorKind;

use super::network::is_user_network;
use super::ContainerService;
use crate::server::error::ApiError;
use crate::state::{Container, Status};

/// `name[:alias]` as (name without its slash, alias).
pub fn parse(link: &str) -> Result<(&str, &str), ApiError> {
    let mut parts = link.split(':');
    let (name, alias) = match (parts.next(), parts.next(), parts.next()) {
        (Some(n), None, _) => (n, n),
        (Some(n), Some(a), None) => (n, a),
        _ => return Err(ApiError::invalid(format!("invalid link format: {link}"))),
    };
    let name = name.trim_start_matches('/');
    let alias = alias.trim_start_matches('/');
    if name.is_empty() || alias.is_empty() {
        return Err(ApiError::invalid(format!("invalid link format: {link}")));
    }
    Ok((name, alias))
}

/// A link resolved at start: where the linked container is and what the parent learns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The `/etc/hosts` entry as `names:ip` (the `ExtraHosts` form).
    pub host: String,
    /// The `<ALIAS>_*` variables.
    pub env: Vec<String>,
}

/// dockerd's link variables (`links.Link.ToEnv`): the lowest port (TCP first) as
/// `<ALIAS>_PORT`, each port's `_PORT_<n>_<PROTO>[_ADDR|_PORT|_PROTO]`, `<ALIAS>_NAME` and
/// the child's environment as `<ALIAS>_ENV_<key>` (without HOME and PATH).
pub fn env(
    link_name: &str,
    child_ip: &str,
    exposed: Option<&BTreeMap<String, Empty>>,
    child_env: &[String],
) -> Vec<String> {
    let alias = link_name
        .rsplit('/')
        .next()
        .unwrap_or(link_name)
        .to_ascii_uppercase()
        .replace('-', "_");
    let mut ports: Vec<(u16, String)> = exposed
        .into_iter()
        .flat_map(|e| e.keys())
        .filter_map(|k| {
            let (p, proto) = k.split_once('/').unwrap_or((k, "tcp"));
            Some((p.parse().ok()?, proto.to_ascii_lowercase()))
        })
        .collect();
    ports.sort_by_key(|(p, proto)| (*p, proto != "tcp"));
    let mut out = Vec::new();
    if let Some((p, proto)) = ports.first() {
        out.push(format!("{alias}_PORT={proto}://{child_ip}:{p}"));
    }
    for (p, proto) in &ports {
        let pre = format!("{alias}_PORT_{p}_{}", proto.to_ascii_uppercase());
        out.push(format!("{pre}={proto}://{child_ip}:{p}"));
        out.push(format!("{pre}_ADDR={child_ip}"));
        out.push(format!("{pre}_PORT={p}"));
        out.push(format!("{pre}_PROTO={proto}"));
    }
    out.push(format!("{alias}_NAME={link_name}"));
    for e in child_env {
        if let Some((k, v)) = e.split_once('=') {
            if k != "HOME" && k != "PATH" {
                out.push(format!("{alias}_ENV_{k}={v}"));
            }
        }
    }
    out
}

/// Whether a container in `mode` takes its `HostConfig.Links` as legacy links.
fn legacy(mode: &str) -> bool {
    !is_user_network(mode) && !mode.starts_with("container:") && mode != "host" && mode != "none"
}

impl ContainerService {
    /// At create (dockerd's `registerLinks`): every linked container exists and does not use
    /// the host's network.
    pub(super) fn check_links(&self, hc: &HostConfig) -> Result<(), ApiError> {
        for l in hc.links.iter().flatten() {
            let (name, _) = parse(l)?;
            if !legacy(&hc.network_mode) {
                continue;
            }
            let child = self.snapshot(name).map_err(|e| {
                ApiError::invalid(format!("could not get container for {name}: {}", e.message))
            })?;
            if child.host_config.network_mode == "host" {
                return Err(ApiError::invalid(
                    "conflicting options: host type networking can't be used with links. This would result in undefined behavior",
                ));
            }
        }
        Ok(())
    }

    /// At start: each legacy link of `c` with the linked container's address on the default
    /// bridge (which must run there).
    pub(super) fn resolve_links(&self, c: &Container) -> Result<Vec<Resolved>, ApiError> {
        let mut out = Vec::new();
        if !legacy(&c.host_config.network_mode) {
            return Ok(out);
        }
        for l in c.host_config.links.iter().flatten() {
            let (name, alias) = parse(l)?;
            let link_name = format!("{}/{alias}", c.name);
            let child = self.snapshot(name).map_err(|e| {
                ApiError::invalid(format!("could not get container for {name}: {}", e.message))
            })?;
            if child.state.status != Status::Running {
                return Err(ApiError::new(
                    ErrorKind::Conflict,
                    format!(
                        "Cannot link to a non running container: {} AS {link_name}",
                        child.name
                    ),
                ));
            }
            let bridge = self.network.network("bridge").map(|n| n.id);
            let ip = self
                .network
                .sandbox(&child.id)
                .and_then(|s| {
                    s.endpoints
                        .into_iter()
                        .find(|e| Some(&e.network_id) == bridge.as_ref())
                })
                .map(|e| e.ip.to_string())
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "Cannot link to {}, as it does not belong to the default network",
                        child.name
                    ))
                })?;
            let mut names = format!("{alias} {}", super::spec::hostname(&child));
            if alias != child.short_name() {
                names = format!("{names} {}", child.short_name());
            }
            out.push(Resolved {
                host: format!("{names}:{ip}"),
                env: env(
                    &link_name,
                    &ip,
                    child.config.exposed_ports.as_ref(),
                    child.config.env.as_deref().unwrap_or(&[]),
                ),
            });
        }
        Ok(out)
    }

    /// `HostConfig.Links` of inspect: `/child:/parent/alias`, as dockerd shows them.
    pub(super) fn links_view(&self, c: &Container) -> Option<Vec<String>> {
        let links = c.host_config.links.as_ref()?;
        Some(
            links
                .iter()
                .filter_map(|l| {
                    let (name, alias) = parse(l).ok()?;
                    let child = self
                        .snapshot(name)
                        .map(|c| c.name)
                        .unwrap_or(format!("/{name}"));
                    Some(format!("{child}:{}/{alias}", c.name))
                })
                .collect(),
        )
    }

    /// `DELETE /containers/{/parent/alias}?link=1`: the parent forgets the link (from its
    /// next start on).
    pub fn remove_link(&self, name: &str) -> Result<(), ApiError> {
        let full = format!("/{}", name.trim_start_matches('/'));
        let (parent, alias) = full.rsplit_once('/').unwrap_or(("", ""));
        if parent.is_empty() {
            return Err(ApiError::conflict(
                "Conflict, cannot remove the default link name of the container",
            ));
        }
        let h = self.get(parent).map_err(|_| {
            ApiError::internal(format!("Cannot get parent {parent} for link name {full}"))
        })?;
        let removed = self.update(&h, |c| {
            let Some(links) = c.host_config.links.as_mut() else {
                return false;
            };
            let before = links.len();
            links.retain(|l| parse(l).map_or(true, |(_, a)| a != alias));
            before != links.len()
        })?;
        if !removed {
            return Err(ApiError::not_found(format!("No such container: {full}")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_syntax() {
        assert_eq!(parse("db").expect("ok"), ("db", "db"));
        assert_eq!(parse("/db:/x").expect("ok"), ("db", "x"));
        assert!(parse("a:b:c").is_err());
        assert!(parse(":x").is_err());
    }

    #[test]
    fn dockers_link_variables() {
        let exposed: BTreeMap<String, Empty> = ["443/tcp", "80/tcp", "53/udp"]
            .iter()
            .map(|p| (p.to_string(), Empty::default()))
            .collect();
        let env = env(
            "/web/my-db",
            "172.17.0.3",
            Some(&exposed),
            &["PATH=/bin".into(), "PASSWORD=x".into()],
        );
        assert_eq!(env[0], "MY_DB_PORT=udp://172.17.0.3:53");
        assert!(env.contains(&"MY_DB_PORT_80_TCP=tcp://172.17.0.3:80".to_string()));
        assert!(env.contains(&"MY_DB_PORT_80_TCP_ADDR=172.17.0.3".to_string()));
        assert!(env.contains(&"MY_DB_PORT_80_TCP_PORT=80".to_string()));
        assert!(env.contains(&"MY_DB_PORT_80_TCP_PROTO=tcp".to_string()));
        assert!(env.contains(&"MY_DB_NAME=/web/my-db".to_string()));
        assert!(env.contains(&"MY_DB_ENV_PASSWORD=x".to_string()));
        assert!(!env.iter().any(|e| e.starts_with("MY_DB_ENV_PATH")));
    }
}
