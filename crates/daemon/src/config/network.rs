//! dockerd's network settings: `bridge`/`-b`, `bip`, `mtu`, `default-address-pools`
//! (`--default-address-pool base=CIDR,size=N`), `ip`, and the firewall's `iptables`,
//! `ip-masq`, `icc`, `ip-forward` and `ip-forward-no-drop`, as flags or daemon.json keys.

use std::net::Ipv4Addr;

use serde::Deserialize;
use wharf_network::ipam::Pool;
use wharf_network::model::Subnet;

use super::ConfigError;

/// The daemon.json keys this module owns.
pub const FILE_KEYS: &[&str] = &[
    "bridge",
    "bip",
    "mtu",
    "default-address-pools",
    "ip",
    "dns",
    "iptables",
    "ip-masq",
    "icc",
    "ip-forward",
    "host-gateway-ip",
    "ip-forward-no-drop",
];

/// Network flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct NetFlags {
    /// Attach containers to this Linux bridge ("none" disables the default bridge).
    #[arg(short = 'b', long = "bridge")]
    pub bridge: Option<String>,
    /// The default bridge's address and subnet (CIDR).
    #[arg(long = "bip")]
    pub bip: Option<String>,
    /// MTU of the default bridge and container interfaces.
    #[arg(long = "mtu")]
    pub mtu: Option<u32>,
    /// Default address pool for networks (base=CIDR,size=N).
    #[arg(long = "default-address-pool")]
    pub default_address_pools: Vec<String>,
    /// Default host address of published ports.
    #[arg(long = "ip")]
    pub ip: Option<String>,
    /// DNS server to use.
    #[arg(long = "dns")]
    pub dns: Vec<String>,
    /// Manage Wharf's nftables table (outbound NAT and isolation rules).
    #[arg(long = "iptables", num_args = 0..=1, default_missing_value = "true")]
    pub iptables: Option<bool>,
    /// Masquerade the default bridge's outbound traffic.
    #[arg(long = "ip-masq", num_args = 0..=1, default_missing_value = "true")]
    pub ip_masq: Option<bool>,
    /// Let containers on the default bridge talk to each other.
    #[arg(long = "icc", num_args = 0..=1, default_missing_value = "true")]
    pub icc: Option<bool>,
    /// Set net.ipv4.ip_forward=1.
    #[arg(long = "ip-forward", num_args = 0..=1, default_missing_value = "true")]
    pub ip_forward: Option<bool>,
    /// The address `--add-host name:host-gateway` names (default: the default bridge's).
    #[arg(long = "host-gateway-ip")]
    pub host_gateway_ip: Option<String>,
    /// Do not drop other forwarded traffic when turning IP forwarding on.
    #[arg(long = "ip-forward-no-drop", num_args = 0..=1, default_missing_value = "true")]
    pub ip_forward_no_drop: Option<bool>,
}

/// A `default-address-pools` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolEntry {
    /// CIDR.
    pub base: String,
    /// Prefix length of each network.
    pub size: u8,
}

/// The network keys of daemon.json.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct NetFile {
    pub bridge: Option<String>,
    pub bip: Option<String>,
    pub mtu: Option<u32>,
    pub default_address_pools: Option<Vec<PoolEntry>>,
    pub ip: Option<String>,
    pub dns: Option<Vec<String>>,
    pub iptables: Option<bool>,
    pub ip_masq: Option<bool>,
    pub icc: Option<bool>,
    pub ip_forward: Option<bool>,
    pub host_gateway_ip: Option<String>,
    pub ip_forward_no_drop: Option<bool>,
}

/// The merged network settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    /// Linux bridge of the default network (empty: wharf0; "none": no default bridge).
    pub bridge: String,
    /// `bip`.
    pub bip: Option<Subnet>,
    /// MTU (0: kernel default).
    pub mtu: u32,
    /// Pools for network subnets.
    pub pools: Vec<Pool>,
    /// Default host address of published ports.
    pub ip: Ipv4Addr,
    /// Upstream DNS servers (`dns`); empty means the host's resolv.conf.
    pub dns: Vec<std::net::IpAddr>,
    /// `iptables`, `ip-masq`, `icc`, `ip-forward` (all default true).
    pub firewall: wharf_network::firewall::Settings,
    /// `host-gateway-ip`; `None`: the default bridge's gateway.
    pub host_gateway_ip: Option<std::net::IpAddr>,
}

fn invalid(name: &'static str, message: String) -> ConfigError {
    ConfigError::Invalid { name, message }
}

fn cidr(name: &'static str, s: &str) -> Result<Subnet, ConfigError> {
    s.parse().map_err(|e| invalid(name, format!("{e}")))
}

fn pool(base: &str, size: u8) -> Result<Pool, ConfigError> {
    let base = cidr("default-address-pools", base)?.canonical();
    if size < base.prefix || size > 30 {
        return Err(invalid(
            "default-address-pools",
            format!("invalid pool size {size} for {base}"),
        ));
    }
    Ok(Pool { base, size })
}

/// `base=10.10.0.0/16,size=24`.
fn pool_flag(s: &str) -> Result<Pool, ConfigError> {
    let (mut base, mut size) = (None, None);
    for kv in s.split(',') {
        match kv.split_once('=') {
            Some(("base", v)) => base = Some(v),
            Some(("size", v)) => size = v.parse::<u8>().ok(),
            _ => {
                return Err(invalid(
                    "default-address-pool",
                    format!("invalid field {kv:?}"),
                ))
            }
        }
    }
    match (base, size) {
        (Some(b), Some(n)) => pool(b, n),
        _ => Err(invalid(
            "default-address-pool",
            format!("{s:?} needs base and size"),
        )),
    }
}

/// Merges flags over the file; a key in both goes into `conflicts`.
pub fn merge(
    flags: &NetFlags,
    file: &NetFile,
    conflicts: &mut Vec<String>,
) -> Result<NetConfig, ConfigError> {
    fn one<T: Clone + std::fmt::Debug>(
        c: &mut Vec<String>,
        key: &str,
        a: Option<&T>,
        b: Option<&T>,
    ) -> Option<T> {
        if let (Some(a), Some(b)) = (a, b) {
            c.push(format!("{key}: (from flag: {a:?}, from file: {b:?})"));
        }
        a.or(b).cloned()
    }
    let c = conflicts;
    let bridge = one(c, "bridge", flags.bridge.as_ref(), file.bridge.as_ref());
    let bip = one(c, "bip", flags.bip.as_ref(), file.bip.as_ref());
    let mtu = one(c, "mtu", flags.mtu.as_ref(), file.mtu.as_ref());
    let ip = one(c, "ip", flags.ip.as_ref(), file.ip.as_ref());
    let host_gateway_ip = one(
        c,
        "host-gateway-ip",
        flags.host_gateway_ip.as_ref(),
        file.host_gateway_ip.as_ref(),
    );
    if !flags.default_address_pools.is_empty() && file.default_address_pools.is_some() {
        c.push("default-address-pools: (from flag and from file)".into());
    }
    let mut pools = Vec::new();
    for p in file.default_address_pools.iter().flatten() {
        pools.push(pool(&p.base, p.size)?);
    }
    for p in &flags.default_address_pools {
        pools.push(pool_flag(p)?);
    }
    let flag_dns = (!flags.dns.is_empty()).then(|| flags.dns.clone());
    let dns = one(c, "dns", flag_dns.as_ref(), file.dns.as_ref()).unwrap_or_default();
    let dns = dns
        .iter()
        .map(|d| {
            d.parse()
                .map_err(|_| invalid("dns", format!("{d:?} is not an IP address")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if pools.is_empty() {
        pools = wharf_network::ipam::default_pools();
    }
    let mut flag = |key, a: Option<bool>, b: Option<bool>, default| {
        one(c, key, a.as_ref(), b.as_ref()).unwrap_or(default)
    };
    let firewall = wharf_network::firewall::Settings {
        enabled: flag("iptables", flags.iptables, file.iptables, true),
        ip_masq: flag("ip-masq", flags.ip_masq, file.ip_masq, true),
        icc: flag("icc", flags.icc, file.icc, true),
        ip_forward: flag("ip-forward", flags.ip_forward, file.ip_forward, true),
        ip_forward_no_drop: flag(
            "ip-forward-no-drop",
            flags.ip_forward_no_drop,
            file.ip_forward_no_drop,
            false,
        ),
    };
    Ok(NetConfig {
        bridge: bridge.unwrap_or_default(),
        bip: bip.map(|b| cidr("bip", &b)).transpose()?,
        mtu: mtu.unwrap_or(0),
        pools,
        ip: match ip {
            Some(s) => s
                .parse()
                .map_err(|_| invalid("ip", format!("{s:?} is not an IPv4 address")))?,
            None => Ipv4Addr::UNSPECIFIED,
        },
        dns,
        firewall,
        host_gateway_ip: host_gateway_ip
            .map(|s| {
                s.parse()
                    .map_err(|_| invalid("host-gateway-ip", format!("{s:?} is not an IP address")))
            })
            .transpose()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_file() {
        let f = NetFlags {
            bridge: Some("br9".into()),
            default_address_pools: vec!["base=10.9.0.0/16,size=24".into()],
            ..Default::default()
        };
        let file = NetFile {
            bip: Some("10.8.0.1/24".into()),
            mtu: Some(1400),
            ..Default::default()
        };
        let mut c = Vec::new();
        let n = merge(&f, &file, &mut c).expect("merge");
        assert!(c.is_empty());
        assert_eq!(n.bridge, "br9");
        assert_eq!(n.bip, Some("10.8.0.1/24".parse().expect("cidr")));
        assert_eq!(n.mtu, 1400);
        assert_eq!(n.pools.len(), 1);
        assert_eq!(n.pools[0].size, 24);
        assert_eq!(n.firewall, wharf_network::firewall::Settings::default());
        let f2 = NetFlags {
            icc: Some(false),
            ip_forward: Some(false),
            ..Default::default()
        };
        let file2 = NetFile {
            ip_masq: Some(false),
            iptables: Some(true),
            ip_forward_no_drop: Some(true),
            ..Default::default()
        };
        let fw = merge(&f2, &file2, &mut c).expect("merge").firewall;
        assert!(fw.enabled && !fw.icc && !fw.ip_masq && !fw.ip_forward && fw.ip_forward_no_drop);
        // daemon.json's network keys sit at the top level.
        let file = super::super::parse_file(
            std::path::Path::new("daemon.json"),
            r#"{"icc": false, "ip-masq": false, "bip": "10.1.0.1/24"}"#,
        )
        .expect("parse");
        assert_eq!(file.network.icc, Some(false));
        assert_eq!(file.network.ip_masq, Some(false));
        assert_eq!(file.network.bip.as_deref(), Some("10.1.0.1/24"));
        let mut c = Vec::new();
        let both = NetFile {
            bridge: Some("x".into()),
            ..Default::default()
        };
        merge(&f, &both, &mut c).expect("merge");
        assert_eq!(c.len(), 1);
        for bad in [
            "base=10.0.0.0/16",
            "base=x,size=24",
            "base=10.0.0.0/16,size=8",
        ] {
            let f = NetFlags {
                default_address_pools: vec![bad.into()],
                ..Default::default()
            };
            assert!(
                merge(&f, &NetFile::default(), &mut Vec::new()).is_err(),
                "{bad}"
            );
        }
        let f = NetFlags {
            bip: Some("10.0.0.1".into()),
            ..Default::default()
        };
        assert!(merge(&f, &NetFile::default(), &mut Vec::new()).is_err());
    }
}
