//! Which URLs serve a registry host, in order: policy, kept pure.
//!
//! As moby's `lookupV2Endpoints`: for `docker.io`, the configured mirrors first, then
//! `registry-1.docker.io`; for an insecure registry (listed, in a listed CIDR, or on loopback),
//! https without certificate checks first, then plain http.

use std::net::IpAddr;
use std::path::PathBuf;

use wharf_fetch::TlsOptions;

use crate::error::DistributionError;

/// Docker Hub's registry API host.
const DOCKER_HUB_HOST: &str = "registry-1.docker.io";

/// The daemon's registry settings (`daemon.json`: `registry-mirrors`, `insecure-registries`,
/// `max-concurrent-downloads`, `max-download-attempts`; certificate dirs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Mirror base URLs for docker.io (`https://mirror.example`, `http://127.0.0.1:5000`).
    pub mirrors: Vec<String>,
    /// `host[:port]` names or CIDRs reachable without verified TLS.
    pub insecure: Vec<String>,
    /// Layers downloaded at once per pull.
    pub max_concurrent_downloads: usize,
    /// Layers uploaded at once per push.
    pub max_concurrent_uploads: usize,
    /// Attempts per blob before giving up (interrupted downloads resume with `Range`).
    pub max_download_attempts: usize,
    /// Directories holding `<host[:port]>/ca.crt` etc. (`/etc/docker/certs.d`).
    pub certs_dirs: Vec<PathBuf>,
    /// Whether an insecure registry may also be reached over plain http (dockerd: yes; the
    /// docker CLI's own registry client only with `--insecure`).
    pub http_fallback: bool,
    /// Registry domains never contacted (`block-registries`, as Red Hat's docker had it):
    /// air-gapped hosts, and test daemons that must not reach Docker Hub. A blocked
    /// `docker.io` still uses its mirrors.
    pub blocked: Vec<String>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            mirrors: Vec::new(),
            insecure: Vec::new(),
            max_concurrent_downloads: 3,
            max_concurrent_uploads: 5,
            max_download_attempts: 5,
            certs_dirs: Vec::new(),
            http_fallback: true,
            blocked: Vec::new(),
        }
    }
}

/// One place to talk to.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `scheme://host[:port]`, no trailing slash.
    pub base: String,
    /// The `host[:port]` requests name (challenges are cached by it).
    pub host: String,
    /// How https is checked.
    pub tls: TlsOptions,
    /// A mirror: any failure moves on to the next endpoint.
    pub mirror: bool,
}

impl RegistryConfig {
    /// Checks the settings (mirror URLs, CIDRs) as dockerd does at start.
    pub fn validate(&self) -> Result<(), DistributionError> {
        for m in &self.mirrors {
            parse_mirror(m)?;
        }
        for i in &self.insecure {
            if i.contains('/') && parse_cidr(i).is_none() {
                return Err(DistributionError::InvalidArgument(format!(
                    "insecure registry {i} is not a valid CIDR"
                )));
            }
        }
        if self.max_concurrent_downloads == 0
            || self.max_concurrent_uploads == 0
            || self.max_download_attempts == 0
        {
            return Err(DistributionError::InvalidArgument(
                "max-concurrent-downloads, max-concurrent-uploads and max-download-attempts must be positive".into(),
            ));
        }
        Ok(())
    }

    /// Whether `domain` itself may not be contacted (its mirrors still may).
    pub fn is_blocked(&self, domain: &str) -> bool {
        self.blocked.iter().any(|b| b == domain)
    }

    /// The error when no endpoint of `domain` answered or none may be contacted.
    pub fn no_endpoint(&self, domain: &str) -> DistributionError {
        if self.is_blocked(domain) {
            DistributionError::Blocked(domain.to_string())
        } else {
            DistributionError::InvalidArgument("no registry endpoint".into())
        }
    }

    /// Endpoints for the registry `domain` (a reference's domain: `docker.io`, `host:port`);
    /// none of the domain's own when it is blocked.
    pub fn endpoints(&self, domain: &str) -> Vec<Endpoint> {
        let mut out = self.unblocked_endpoints(domain);
        if self.is_blocked(domain) {
            out.retain(|e| e.mirror);
        }
        out
    }

    fn unblocked_endpoints(&self, domain: &str) -> Vec<Endpoint> {
        let mut out = Vec::new();
        if domain == wharf_imageref::DEFAULT_DOMAIN {
            for m in &self.mirrors {
                if let Ok((scheme, host)) = parse_mirror(m) {
                    out.push(Endpoint {
                        base: format!("{scheme}://{host}"),
                        tls: self.tls_for(&host),
                        host,
                        mirror: true,
                    });
                }
            }
            out.push(Endpoint {
                base: format!("https://{DOCKER_HUB_HOST}"),
                host: DOCKER_HUB_HOST.into(),
                tls: self.tls_for(DOCKER_HUB_HOST),
                mirror: false,
            });
            return out;
        }
        let tls = self.tls_for(domain);
        out.push(Endpoint {
            base: format!("https://{domain}"),
            host: domain.into(),
            tls: tls.clone(),
            mirror: false,
        });
        // A host with certs.d roots was set up for TLS: its failures are not papered over
        // with plain HTTP.
        if self.http_fallback && self.is_insecure(domain) && tls.extra_roots_pem.is_empty() {
            out.push(Endpoint {
                base: format!("http://{domain}"),
                host: domain.into(),
                tls,
                mirror: false,
            });
        }
        out
    }

    /// Whether `host[:port]` may be reached without verified TLS.
    pub fn is_insecure(&self, host_port: &str) -> bool {
        let host = strip_port(host_port);
        let ip: Option<IpAddr> = host.trim_matches(['[', ']']).parse().ok();
        if ip.is_some_and(|ip| ip.is_loopback()) || host == "localhost" {
            return true;
        }
        self.insecure.iter().any(|i| {
            if i.contains('/') {
                match (ip, parse_cidr(i)) {
                    (Some(ip), Some((net, bits))) => in_cidr(ip, net, bits),
                    _ => false,
                }
            } else {
                i == host_port || i == host
            }
        })
    }

    /// TLS settings for `host[:port]`: certs.d CAs, no verification when insecure.
    fn tls_for(&self, host_port: &str) -> TlsOptions {
        let mut extra = Vec::new();
        for dir in &self.certs_dirs {
            let Ok(rd) = std::fs::read_dir(dir.join(host_port)) else {
                continue;
            };
            let mut files: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
            files.sort();
            for f in files {
                if f.extension().is_some_and(|e| e == "crt") {
                    if let Ok(pem) = std::fs::read(&f) {
                        extra.push(pem);
                    }
                }
            }
        }
        TlsOptions {
            skip_verify: self.is_insecure(host_port) && extra.is_empty(),
            extra_roots_pem: extra,
        }
    }
}

fn strip_port(host_port: &str) -> &str {
    if host_port.starts_with('[') {
        return host_port.split(']').next().map_or(host_port, |h| &h[1..]);
    }
    match host_port.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') => h,
        _ => host_port,
    }
}

/// `http(s)://host[:port][/]` → (scheme, host[:port]).
fn parse_mirror(m: &str) -> Result<(String, String), DistributionError> {
    let bad = || {
        DistributionError::InvalidArgument(format!(
            "invalid mirror: \"{m}\" is not a valid URI: it must be http(s)://host[:port]"
        ))
    };
    let (scheme, rest) = m.split_once("://").ok_or_else(bad)?;
    if scheme != "http" && scheme != "https" {
        return Err(bad());
    }
    let host = rest.trim_end_matches('/');
    if host.is_empty() || host.contains('/') || host.contains('@') {
        return Err(bad());
    }
    Ok((scheme.to_string(), host.to_string()))
}

fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (ip, bits) = s.split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    let bits: u8 = bits.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((ip, bits))
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_goes_through_mirrors_first() {
        let c = RegistryConfig {
            mirrors: vec!["http://127.0.0.1:5000/".into()],
            ..Default::default()
        };
        let e = c.endpoints("docker.io");
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].base, "http://127.0.0.1:5000");
        assert!(e[0].mirror);
        assert_eq!(e[1].base, "https://registry-1.docker.io");
        // Mirrors serve docker.io only.
        assert_eq!(c.endpoints("quay.io").len(), 1);
    }

    #[test]
    fn insecure_hosts_fall_back_to_http() {
        let c = RegistryConfig {
            insecure: vec!["10.1.0.0/16".into(), "reg.local:5000".into()],
            ..Default::default()
        };
        let bases = |d: &str| {
            c.endpoints(d)
                .into_iter()
                .map(|e| e.base)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            bases("127.0.0.1:5000"),
            ["https://127.0.0.1:5000", "http://127.0.0.1:5000"]
        );
        assert_eq!(bases("localhost:5000").len(), 2);
        assert_eq!(bases("10.1.2.3:80").len(), 2);
        assert_eq!(bases("10.2.0.1").len(), 1);
        assert_eq!(bases("reg.local:5000").len(), 2);
        assert_eq!(bases("example.com"), ["https://example.com"]);
        assert!(c.endpoints("127.0.0.1:5000")[0].tls.skip_verify);
        assert!(!c.endpoints("example.com")[0].tls.skip_verify);
    }

    #[test]
    fn bad_settings_are_refused() {
        for m in ["ftp://x", "127.0.0.1:5000", "http://", "http://h/path"] {
            let c = RegistryConfig {
                mirrors: vec![m.into()],
                ..Default::default()
            };
            assert!(c.validate().is_err(), "{m}");
        }
        let c = RegistryConfig {
            insecure: vec!["10.0.0.0/99".into()],
            ..Default::default()
        };
        assert!(c.validate().is_err());
    }

    #[test]
    fn certs_d_adds_roots() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("reg:5000")).unwrap();
        std::fs::write(dir.path().join("reg:5000/ca.crt"), b"pem").unwrap();
        let c = RegistryConfig {
            certs_dirs: vec![dir.path().to_path_buf()],
            ..Default::default()
        };
        assert_eq!(
            c.endpoints("reg:5000")[0].tls.extra_roots_pem,
            vec![b"pem".to_vec()]
        );
        assert!(c.endpoints("other:5000")[0].tls.extra_roots_pem.is_empty());
    }

    #[test]
    fn blocked_domains_keep_only_their_mirrors() {
        let c = RegistryConfig {
            mirrors: vec!["http://127.0.0.1:5000".into()],
            blocked: vec!["docker.io".into(), "quay.io".into()],
            ..RegistryConfig::default()
        };
        let hub = c.endpoints("docker.io");
        assert_eq!(hub.len(), 1);
        assert!(hub[0].mirror);
        assert!(c.endpoints("quay.io").is_empty());
        assert!(matches!(
            c.no_endpoint("quay.io"),
            DistributionError::Blocked(_)
        ));
        assert_eq!(c.endpoints("ghcr.io").len(), 1);
    }
}
