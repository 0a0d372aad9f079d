//! Docker's Container Network Model as data: networks, endpoints (a container's interface on
//! one network) and sandboxes (a container's network namespace). Serialized into the store.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An IPv4 network in CIDR notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Subnet {
    /// The address as given (`bip` keeps its host part: 172.17.0.1/16).
    pub addr: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub prefix: u8,
}

impl Subnet {
    /// A subnet; the prefix is clamped to 32.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Subnet {
        Subnet {
            addr,
            prefix: prefix.min(32),
        }
    }

    fn mask(self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    /// The network address.
    pub fn network(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    /// The same subnet with the host part cleared.
    pub fn canonical(self) -> Subnet {
        Subnet::new(self.network(), self.prefix)
    }

    /// The broadcast address.
    pub fn broadcast(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    /// Whether `ip` lies inside.
    pub fn contains(self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network())
    }

    /// Whether the two share any address.
    pub fn overlaps(self, o: Subnet) -> bool {
        self.contains(o.network()) || o.contains(self.network())
    }

    /// The address `n` places after the network address.
    pub fn nth(self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network()).wrapping_add(n))
    }

    /// How many addresses it spans (2^(32-prefix), saturating).
    pub fn size(self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Not an IPv4 CIDR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CIDR address: {0}")]
pub struct BadCidr(pub String);

impl FromStr for Subnet {
    type Err = BadCidr;
    fn from_str(s: &str) -> Result<Subnet, BadCidr> {
        let bad = || BadCidr(s.to_string());
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        if prefix > 32 || p.starts_with('+') {
            return Err(bad());
        }
        Ok(Subnet { addr, prefix })
    }
}

/// An IPv6 network in CIDR notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Subnet6 {
    /// The address as given.
    pub addr: Ipv6Addr,
    /// Prefix length, 0..=128.
    pub prefix: u8,
}

impl Subnet6 {
    fn mask(self) -> u128 {
        if self.prefix == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(self.prefix.min(128)))
        }
    }

    /// The network address (the subnet-router anycast address, never handed out).
    pub fn network(self) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.addr) & self.mask())
    }

    /// The same subnet with the host part cleared.
    pub fn canonical(self) -> Subnet6 {
        Subnet6 {
            addr: self.network(),
            prefix: self.prefix,
        }
    }

    /// Whether `ip` lies inside.
    pub fn contains(self, ip: Ipv6Addr) -> bool {
        u128::from(ip) & self.mask() == u128::from(self.network())
    }

    /// Whether the two share any address.
    pub fn overlaps(self, o: Subnet6) -> bool {
        self.contains(o.network()) || o.contains(self.network())
    }

    /// The address `n` places after the network address.
    pub fn nth(self, n: u128) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.network()).wrapping_add(n))
    }

    /// How many addresses it spans, saturating at `u128::MAX`.
    pub fn size(self) -> u128 {
        1u128
            .checked_shl(128 - u32::from(self.prefix))
            .unwrap_or(u128::MAX)
    }
}

impl fmt::Display for Subnet6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Subnet6 {
    type Err = BadCidr;
    fn from_str(s: &str) -> Result<Subnet6, BadCidr> {
        let bad = || BadCidr(s.to_string());
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv6Addr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        if prefix > 128 || p.starts_with('+') {
            return Err(bad());
        }
        Ok(Subnet6 { addr, prefix })
    }
}

/// Serialized as their CIDR text.
macro_rules! cidr_serde {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<$t, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

cidr_serde!(Subnet);
cidr_serde!(Subnet6);

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// `aa:bb:cc:dd:ee:ff` (or with dashes) as bytes.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for b in out.iter_mut() {
        let p = parts.next().filter(|p| p.len() == 2)?;
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// Docker's MAC for an IPv4 address: 02:42 followed by the address.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// A network driver (closed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriverKind {
    /// A Linux bridge with NAT.
    Bridge,
    /// The host's namespace.
    Host,
    /// Loopback only.
    Null,
    /// Containers' own MAC addresses on a host interface (`-o parent=`).
    Macvlan,
    /// Containers sharing a host interface's MAC address (`-o parent=`).
    Ipvlan,
}

impl DriverKind {
    /// Docker's name for it.
    pub fn name(self) -> &'static str {
        match self {
            DriverKind::Bridge => "bridge",
            DriverKind::Host => "host",
            DriverKind::Null => "null",
            DriverKind::Macvlan => "macvlan",
            DriverKind::Ipvlan => "ipvlan",
        }
    }

    /// Whether containers join it with an endpoint of their own (not the host's or no
    /// namespace's).
    pub fn has_endpoints(self) -> bool {
        !matches!(self, DriverKind::Host | DriverKind::Null)
    }

    /// Macvlan or ipvlan: endpoints are sub-interfaces of a host interface.
    pub fn on_parent(self) -> bool {
        matches!(self, DriverKind::Macvlan | DriverKind::Ipvlan)
    }
}

/// One network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// 64 hex.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Driver.
    pub driver: DriverKind,
    /// RFC 3339 creation time.
    pub created: String,
    /// IPv4 subnet.
    pub subnet: Option<Subnet>,
    /// Gateway: the bridge's address; on macvlan/ipvlan a router outside, only if given.
    pub gateway: Option<Ipv4Addr>,
    /// `--ip-range`: where addresses are handed out from (else the whole subnet).
    #[serde(default)]
    pub ip_range: Option<Subnet>,
    /// `--aux-address`: addresses never handed out, by name.
    #[serde(default)]
    pub aux: BTreeMap<String, Ipv4Addr>,
    /// `--ipv6`: the IPv6 subnet (given, or a random ULA /64).
    #[serde(default)]
    pub subnet6: Option<Subnet6>,
    /// The bridge's IPv6 address.
    #[serde(default)]
    pub gateway6: Option<Ipv6Addr>,
    /// The last IPv6 address handed out.
    #[serde(default)]
    pub last_ip6: Option<Ipv6Addr>,
    /// Linux bridge name (bridge driver).
    pub bridge: String,
    /// The host interface macvlan/ipvlan endpoints hang off.
    #[serde(default)]
    pub parent: String,
    /// Whether Wharf made the parent (a dummy link, or a `<link>.<vlan>` VLAN link) and
    /// deletes it with the last network on it.
    #[serde(default)]
    pub owns_parent: bool,
    /// MTU, 0 = kernel default.
    pub mtu: u32,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Driver options.
    pub options: BTreeMap<String, String>,
    /// The last address handed out (allocation goes on after it, as Docker's, so a released
    /// address is not reused at once).
    pub last_ip: Option<Ipv4Addr>,
    /// `--internal`: containers get no default route (and no bridge forwards anyway).
    #[serde(default)]
    pub internal: bool,
    /// `--attachable`.
    #[serde(default)]
    pub attachable: bool,
    /// Whether the subnet was given at create (only then may containers ask for an address).
    #[serde(default)]
    pub user_subnet: bool,
}

impl Network {
    /// A macvlan/ipvlan network on a dummy parent of Wharf's (none was given): its
    /// containers only reach each other, as in Docker.
    pub fn on_dummy(&self) -> bool {
        self.owns_parent && !self.parent.contains('.')
    }
}

/// Transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Proto {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }
}

/// A published port, resolved (host port chosen).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortMapping {
    /// Protocol.
    pub proto: Proto,
    /// Port inside the container.
    pub container_port: u16,
    /// Host address ("0.0.0.0" for all).
    pub host_ip: Ipv4Addr,
    /// Host port.
    pub host_port: u16,
}

/// A container's interface on one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// 64 hex.
    pub id: String,
    /// The network's id.
    pub network_id: String,
    /// Address in the network's subnet.
    pub ip: Ipv4Addr,
    /// Address in its IPv6 subnet, on an IPv6 network.
    #[serde(default)]
    pub ip6: Option<Ipv6Addr>,
    /// MAC address.
    pub mac: String,
    /// Host side of the veth pair (empty on macvlan/ipvlan: nothing stays on the host).
    pub host_ifname: String,
    /// Interface name in the container.
    pub ifname: String,
    /// Published ports (on the default bridge or a user bridge).
    pub ports: Vec<PortMapping>,
}

/// What a container asked for on one network (Docker's `EndpointSettings` as configured at
/// create or `network connect`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointConfig {
    /// `--network-alias`: names that resolve to it for every container on the network.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `--ip`: the address it gets instead of the next free one.
    #[serde(default)]
    pub ipv4: Option<Ipv4Addr>,
    /// `--ip6`: the same on the network's IPv6 subnet.
    #[serde(default)]
    pub ipv6: Option<Ipv6Addr>,
    /// `--link name:alias` on a user network: names that resolve to `name` for it alone.
    #[serde(default)]
    pub links: Vec<String>,
    /// `--mac-address` (checked by [`parse_mac`]); else Docker's, from the address.
    #[serde(default)]
    pub mac: Option<String>,
}

/// A container's membership of one network, kept while the container exists and applied at
/// each start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attachment {
    /// The network's id.
    pub network_id: String,
    /// What was asked for there.
    #[serde(flatten)]
    pub config: EndpointConfig,
}

impl<'de> Deserialize<'de> for Attachment {
    /// Also reads the older form, a bare network id.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Attachment, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Id(String),
            Full {
                network_id: String,
                #[serde(flatten)]
                config: EndpointConfig,
            },
        }
        Ok(match Repr::deserialize(d)? {
            Repr::Id(network_id) => Attachment {
                network_id,
                config: EndpointConfig::default(),
            },
            Repr::Full { network_id, config } => Attachment { network_id, config },
        })
    }
}

/// A container's network namespace and its endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sandbox {
    /// The container.
    pub container_id: String,
    /// Container name without the slash (for messages).
    pub name: String,
    /// Its hostname, which also resolves on its user-defined networks (Docker's DNSNames).
    #[serde(default)]
    pub hostname: String,
    /// The pinned namespace.
    pub key: String,
    /// Endpoints, in attach order.
    pub endpoints: Vec<Endpoint>,
    /// Upstream servers of its embedded DNS resolver (empty: the daemon's).
    #[serde(default)]
    pub dns: Vec<std::net::SocketAddr>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnet_arithmetic() {
        let s: Subnet = "172.17.0.1/16".parse().expect("cidr");
        assert_eq!(s.network(), Ipv4Addr::new(172, 17, 0, 0));
        assert_eq!(s.broadcast(), Ipv4Addr::new(172, 17, 255, 255));
        assert!(s.contains(Ipv4Addr::new(172, 17, 3, 4)));
        assert!(!s.contains(Ipv4Addr::new(172, 18, 0, 1)));
        assert!(s.overlaps("172.17.5.0/24".parse().expect("cidr")));
        assert!(!s.overlaps("172.18.0.0/16".parse().expect("cidr")));
        assert_eq!(s.nth(2), Ipv4Addr::new(172, 17, 0, 2));
        assert_eq!(s.size(), 65536);
        assert_eq!(s.to_string(), "172.17.0.1/16");
        assert_eq!(s.canonical().to_string(), "172.17.0.0/16");
        for bad in ["1.2.3.4", "1.2.3.4/33", "x/8", "1.2.3/8", "1.2.3.4/+8"] {
            assert!(bad.parse::<Subnet>().is_err(), "{bad}");
        }
        assert_eq!(Subnet::new(Ipv4Addr::UNSPECIFIED, 0).size(), 1 << 32);
    }

    #[test]
    fn subnet6_arithmetic() {
        let s: Subnet6 = "fd00:1::5/64".parse().expect("cidr");
        assert_eq!(s.network(), "fd00:1::".parse::<Ipv6Addr>().expect("ip"));
        assert_eq!(s.canonical().to_string(), "fd00:1::/64");
        assert!(s.contains("fd00:1::ffff:1".parse().expect("ip")));
        assert!(!s.contains("fd00:2::1".parse().expect("ip")));
        assert!(s.overlaps("fd00::/16".parse().expect("cidr")));
        assert_eq!(s.nth(2), "fd00:1::2".parse::<Ipv6Addr>().expect("ip"));
        assert_eq!(s.size(), 1 << 64);
        assert_eq!("::/0".parse::<Subnet6>().expect("cidr").size(), u128::MAX);
        for bad in ["fd00::1", "fd00::/129", "10.0.0.0/8", "fd00::/+8"] {
            assert!(bad.parse::<Subnet6>().is_err(), "{bad}");
        }
        let json = serde_json::to_string(&s).expect("json");
        assert_eq!(json, "\"fd00:1::5/64\"");
        assert_eq!(serde_json::from_str::<Subnet6>(&json).expect("back"), s);
    }

    #[test]
    fn mac_syntax() {
        assert_eq!(
            parse_mac("02:42:AC:11:00:09"),
            Some([2, 0x42, 0xac, 0x11, 0, 9])
        );
        for bad in [
            "02:42:ac:11:00",
            "02:42:ac:11:00:09:01",
            "zz:42:ac:11:00:09",
            "2:42:ac:11:0:9",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }

    #[test]
    fn docker_mac() {
        assert_eq!(
            format_mac(mac_for(Ipv4Addr::new(172, 17, 0, 2))),
            "02:42:ac:11:00:02"
        );
    }
}
