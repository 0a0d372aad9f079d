//! IP address management as pure functions over data: choosing a subnet for a network from
//! the address pools (skipping what the host routes and other networks use), and handing out
//! addresses inside one. The caller persists the result before using it, so an address is
//! never handed out twice, also across a crash.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::model::{Subnet, Subnet6};

/// IPAM failures (Docker's messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    /// Every pool is used.
    #[error("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")]
    NoPool,
    /// The subnet is full.
    #[error("no available IPv4 addresses on this network's address pools: {0}")]
    NoAddress(String),
    /// A static address outside the subnet.
    #[error("no configured subnet or ip-range contain the IP address {0}")]
    OutOfRange(std::net::IpAddr),
    /// Nothing free among the IPv6 addresses tried.
    #[error("no available IPv6 addresses on this network's address pools: {0}")]
    NoAddress6(String),
    /// A static address already taken.
    #[error("Address already in use")]
    InUse,
}

/// One address pool: subnets of `size` bits carved out of `base` (`default-address-pools`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    /// The range to carve from.
    pub base: Subnet,
    /// Prefix length of each network.
    pub size: u8,
}

/// Docker's default pools: 172.17-31.0.0/16, then 192.168.0.0/16 in /20s.
pub fn default_pools() -> Vec<Pool> {
    let mut v: Vec<Pool> = (17..=31)
        .map(|b| Pool {
            base: Subnet::new(Ipv4Addr::new(172, b, 0, 0), 16),
            size: 16,
        })
        .collect();
    v.push(Pool {
        base: Subnet::new(Ipv4Addr::new(192, 168, 0, 0), 16),
        size: 20,
    });
    v
}

/// The first subnet of the pools that overlaps nothing in `taken` (host routes and the
/// subnets of existing networks).
pub fn choose_subnet(pools: &[Pool], taken: &[Subnet]) -> Result<Subnet, IpamError> {
    for p in pools {
        let size = p.size.max(p.base.prefix);
        let count = 1u64 << (size - p.base.prefix).min(32);
        for i in 0..count {
            let step = (i << (32 - u32::from(size))) as u32;
            let cand = Subnet::new(
                Ipv4Addr::from(u32::from(p.base.network()).wrapping_add(step)),
                size,
            );
            if !taken.iter().any(|t| t.overlaps(cand)) {
                return Ok(cand);
            }
        }
    }
    Err(IpamError::NoPool)
}

/// Hands out the next free address of `range` (the subnet, or its `--ip-range`) after
/// `last` (wrapping), never the subnet's network or broadcast address nor one in `taken`
/// (leases, the gateway, aux addresses).
pub fn allocate(
    subnet: Subnet,
    range: Subnet,
    taken: &BTreeSet<Ipv4Addr>,
    last: Option<Ipv4Addr>,
) -> Result<Ipv4Addr, IpamError> {
    let size = range.size();
    let start = last
        .filter(|l| range.contains(*l))
        .map(|l| u64::from(u32::from(l) - u32::from(range.network())) + 1)
        .unwrap_or(0);
    for k in 0..size {
        let ip = range.nth(((start + k) % size) as u32);
        if !is_edge(subnet, ip) && !taken.contains(&ip) {
            return Ok(ip);
        }
    }
    Err(IpamError::NoAddress(subnet.canonical().to_string()))
}

/// The network and broadcast addresses, which only /31 and /32 subnets hand out.
fn is_edge(subnet: Subnet, ip: Ipv4Addr) -> bool {
    subnet.prefix < 31 && (ip == subnet.network() || ip == subnet.broadcast())
}

/// Checks a static address (`--ip`): anywhere in the subnet, also outside its ip-range.
pub fn reserve(subnet: Subnet, ip: Ipv4Addr, taken: &BTreeSet<Ipv4Addr>) -> Result<(), IpamError> {
    if !subnet.contains(ip) || is_edge(subnet, ip) {
        return Err(IpamError::OutOfRange(ip.into()));
    }
    if taken.contains(&ip) {
        return Err(IpamError::InUse);
    }
    Ok(())
}

/// How many IPv6 addresses one allocation tries: a /64 is never exhausted, but its taken
/// addresses may form a run, and the search must stay bounded.
const TRIES6: u128 = 1 << 16;

/// Hands out the next free IPv6 address of `subnet` after `last` (wrapping), never the
/// subnet-router anycast address (the network's) nor one in `taken` (leases, the gateway).
pub fn allocate6(
    subnet: Subnet6,
    taken: &BTreeSet<Ipv6Addr>,
    last: Option<Ipv6Addr>,
) -> Result<Ipv6Addr, IpamError> {
    let size = subnet.size();
    let start = last
        .filter(|l| subnet.contains(*l))
        .map(|l| (u128::from(l) - u128::from(subnet.network())).wrapping_add(1))
        .unwrap_or(1);
    for k in 0..TRIES6.min(size) {
        let off = start.wrapping_add(k) % size;
        let ip = subnet.nth(off);
        if off != 0 && !taken.contains(&ip) {
            return Ok(ip);
        }
    }
    Err(IpamError::NoAddress6(subnet.canonical().to_string()))
}

/// Checks a static IPv6 address (`--ip6`).
pub fn reserve6(
    subnet: Subnet6,
    ip: Ipv6Addr,
    taken: &BTreeSet<Ipv6Addr>,
) -> Result<(), IpamError> {
    if !subnet.contains(ip) || ip == subnet.network() {
        return Err(IpamError::OutOfRange(ip.into()));
    }
    if taken.contains(&ip) {
        return Err(IpamError::InUse);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Subnet {
        x.parse().expect("cidr")
    }

    #[test]
    fn skips_what_the_host_routes() {
        let pools = default_pools();
        assert_eq!(choose_subnet(&pools, &[]), Ok(s("172.17.0.0/16")));
        let taken = [s("172.17.5.0/24"), s("172.18.0.0/16"), s("10.0.0.0/8")];
        assert_eq!(choose_subnet(&pools, &taken), Ok(s("172.19.0.0/16")));
        let all: Vec<Subnet> = (17..=31)
            .map(|b| Subnet::new(Ipv4Addr::new(172, b, 0, 0), 16))
            .chain([s("192.168.0.0/20")])
            .collect();
        assert_eq!(choose_subnet(&pools, &all), Ok(s("192.168.16.0/20")));
        let full = [s("172.16.0.0/12"), s("192.168.0.0/16")];
        assert_eq!(choose_subnet(&pools, &full), Err(IpamError::NoPool));
    }

    #[test]
    fn never_hands_out_an_address_twice() {
        let net = s("10.9.0.0/29");
        let gw = Ipv4Addr::new(10, 9, 0, 1);
        let mut used = BTreeSet::from([gw]);
        let mut last = None;
        for _ in 0..5 {
            let ip = allocate(net, net, &used, last).expect("free");
            assert!(net.contains(ip) && ip != gw && ip != net.network() && ip != net.broadcast());
            assert!(used.insert(ip), "{ip} twice");
            last = Some(ip);
        }
        assert_eq!(
            allocate(net, net, &used, last),
            Err(IpamError::NoAddress("10.9.0.0/29".into()))
        );
        // A released address comes back only after the others (allocation goes round).
        used.remove(&Ipv4Addr::new(10, 9, 0, 3));
        assert_eq!(
            allocate(net, net, &used, last),
            Ok(Ipv4Addr::new(10, 9, 0, 3))
        );
    }

    #[test]
    fn goes_on_after_the_last_one() {
        let net = s("172.17.0.0/16");
        let gw = Ipv4Addr::new(172, 17, 0, 1);
        let used = BTreeSet::from([gw]);
        let a = allocate(net, net, &used, None).expect("a");
        assert_eq!(a, Ipv4Addr::new(172, 17, 0, 2));
        let b = allocate(net, net, &used, Some(a)).expect("b");
        assert_eq!(b, Ipv4Addr::new(172, 17, 0, 3));
    }

    #[test]
    fn static_addresses() {
        let net = s("10.1.0.0/24");
        let gw = Ipv4Addr::new(10, 1, 0, 1);
        let used: BTreeSet<_> = [gw, Ipv4Addr::new(10, 1, 0, 5)].into();
        assert_eq!(reserve(net, Ipv4Addr::new(10, 1, 0, 6), &used), Ok(()));
        assert_eq!(
            reserve(net, Ipv4Addr::new(10, 1, 0, 5), &used),
            Err(IpamError::InUse)
        );
        assert_eq!(reserve(net, gw, &used), Err(IpamError::InUse));
        assert!(matches!(
            reserve(net, Ipv4Addr::new(10, 2, 0, 5), &used),
            Err(IpamError::OutOfRange(_))
        ));
        assert!(matches!(
            reserve(net, net.broadcast(), &used),
            Err(IpamError::OutOfRange(_))
        ));
    }

    #[test]
    fn ipv6_addresses_are_handed_out_once() {
        let net: Subnet6 = "fd00:7::/125".parse().expect("cidr");
        let gw: Ipv6Addr = "fd00:7::1".parse().expect("ip");
        let mut taken = BTreeSet::from([gw]);
        let mut last = None;
        let mut got = Vec::new();
        while let Ok(ip) = allocate6(net, &taken, last) {
            assert!(taken.insert(ip), "{ip} twice");
            got.push(u128::from(ip) & 0xff);
            last = Some(ip);
        }
        assert_eq!(got, [2, 3, 4, 5, 6, 7], "never the anycast address");
        let big: Subnet6 = "fd00:8::/64".parse().expect("cidr");
        let first = allocate6(big, &BTreeSet::new(), None).expect("free");
        assert_eq!(first, "fd00:8::1".parse::<Ipv6Addr>().expect("ip"));
        assert_eq!(
            reserve6(big, first, &BTreeSet::from([first])),
            Err(IpamError::InUse)
        );
        assert!(matches!(
            reserve6(big, "fd00:9::1".parse().expect("ip"), &BTreeSet::new()),
            Err(IpamError::OutOfRange(_))
        ));
    }

    #[test]
    fn ip_range_bounds_what_is_handed_out() {
        let net = s("10.1.0.0/24");
        let range = s("10.1.0.0/30");
        // Without a gateway (macvlan) the first host address is handed out.
        let mut used = BTreeSet::new();
        let mut got = Vec::new();
        let mut last = None;
        while let Ok(ip) = allocate(net, range, &used, last) {
            used.insert(ip);
            got.push(ip.octets()[3]);
            last = Some(ip);
        }
        assert_eq!(
            got,
            [1, 2, 3],
            "the subnet's network address is never handed out"
        );
        let aux: BTreeSet<_> = [Ipv4Addr::new(10, 1, 0, 9)].into();
        assert_eq!(
            allocate(net, s("10.1.0.8/30"), &aux, None),
            Ok(Ipv4Addr::new(10, 1, 0, 8))
        );
        assert_eq!(
            allocate(
                net,
                s("10.1.0.8/30"),
                &aux,
                Some(Ipv4Addr::new(10, 1, 0, 8))
            ),
            Ok(Ipv4Addr::new(10, 1, 0, 10))
        );
    }
}
