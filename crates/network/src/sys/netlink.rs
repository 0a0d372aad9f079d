//! A small synchronous NETLINK_ROUTE client: one request at a time, acknowledged, with the
//! sequence number checked and the kernel's errno decoded. A socket belongs to the network
//! namespace of the thread that opened it and keeps working there.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    bind, recv, sendto, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol,
    SockType,
};

use super::{LinkInfo, LinkKind, Netlink, SysError};
use crate::model::Subnet;

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_SETLINK: u16 = 19;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const NLM_F_REQUEST: u16 = 0x1;
pub(super) const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
pub(super) const NLM_F_CREATE: u16 = 0x400;
pub(super) const NLM_F_DUMP: u16 = 0x300;
pub(super) const NLMSG_ERROR: u16 = 2;
pub(super) const NLMSG_DONE: u16 = 3;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_LINK: u16 = 5;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_PROTINFO: u16 = 12;
const IFLA_BRPORT_ISOLATED: u16 = 33;
const AF_BRIDGE: u8 = 7;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFLA_VLAN_ID: u16 = 1;
const IFLA_MACVLAN_MODE: u16 = 1;
const IFLA_IPVLAN_MODE: u16 = 1;
const IFLA_IPVLAN_FLAGS: u16 = 2;
const RT_SCOPE_LINK: u8 = 253;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_TABLE: u16 = 15;
const IFF_UP: u32 = 1;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const IFA_F_NODAD: u8 = 0x02;
const NLA_F_NESTED: u16 = 0x8000;
const RT_TABLE_MAIN: u8 = 254;

/// A netlink message under construction: header, fixed part, attributes (nesting allowed).
pub(super) struct Msg {
    pub(super) buf: Vec<u8>,
    nests: Vec<usize>,
}

impl Msg {
    pub(super) fn new(ty: u16, flags: u16, fixed: &[u8]) -> Msg {
        let mut buf = vec![0u8; 16];
        buf[4..6].copy_from_slice(&ty.to_ne_bytes());
        buf[6..8].copy_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        buf.extend_from_slice(fixed);
        Msg {
            buf,
            nests: Vec::new(),
        }
    }

    fn align(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    pub(super) fn attr(&mut self, ty: u16, data: &[u8]) -> &mut Msg {
        self.align();
        let len = (4 + data.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self
    }

    pub(super) fn str_attr(&mut self, ty: u16, s: &str) -> &mut Msg {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.attr(ty, &v)
    }

    pub(super) fn begin(&mut self, ty: u16) -> &mut Msg {
        self.align();
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&[0, 0]);
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        self
    }

    pub(super) fn end(&mut self) -> &mut Msg {
        if let Some(start) = self.nests.pop() {
            let len = (self.buf.len() - start) as u16;
            self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }

    pub(super) fn finish(mut self, seq: u32) -> Vec<u8> {
        self.align();
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }
}

/// `struct ifinfomsg` with an index and flags to change.
fn ifinfo(index: u32, flags: u32, change: u32) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[4..8].copy_from_slice(&index.to_ne_bytes());
    m[8..12].copy_from_slice(&flags.to_ne_bytes());
    m[12..16].copy_from_slice(&change.to_ne_bytes());
    m
}

/// The attributes after a fixed part of `skip` bytes: (type, payload).
pub(super) fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let ty = u16::from_ne_bytes([b[2], b[3]]) & !NLA_F_NESTED;
        if len < 4 || len > b.len() {
            break;
        }
        out.push((ty, &b[4..len]));
        b = &b[((len + 3) & !3).min(b.len())..];
    }
    out
}

pub(super) fn cstr(b: &[u8]) -> String {
    String::from_utf8_lossy(b.split(|c| *c == 0).next().unwrap_or(b)).into_owned()
}

/// A NETLINK_ROUTE socket in the network namespace of the thread that opened it.
pub struct RouteSocket {
    fd: OwnedFd,
    seq: u32,
}

impl RouteSocket {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> Result<RouteSocket, SysError> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )
        .map_err(|e| SysError::sys("netlink socket", e))?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))
            .map_err(|e| SysError::sys("netlink bind", e))?;
        Ok(RouteSocket { fd, seq: 0 })
    }

    /// Sends one request and collects every answer part until the ack (or DONE for dumps).
    /// Returns the payloads (after the netlink header) of the data messages.
    fn exchange(&mut self, what: &'static str, m: Msg) -> Result<Vec<Vec<u8>>, SysError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let req = m.finish(seq);
        sendto(
            self.fd.as_raw_fd(),
            &req,
            &NetlinkAddr::new(0, 0),
            MsgFlags::empty(),
        )
        .map_err(|e| SysError::sys(what, e))?;
        let mut out = Vec::new();
        recv_messages(self.fd.as_raw_fd(), what, |ty, mseq, payload| {
            if mseq != seq {
                return Ok(false); // a stale answer to an earlier request
            }
            match ty {
                NLMSG_ERROR => match errno(payload) {
                    0 => Ok(true),
                    errno => Err(SysError::Netlink { what, errno }),
                },
                NLMSG_DONE => Ok(true),
                // A GET's answer precedes its ack; a dump's parts come until DONE.
                _ => {
                    out.push(payload.to_vec());
                    Ok(false)
                }
            }
        })?;
        Ok(out)
    }

    fn ack(&mut self, what: &'static str, m: Msg) -> Result<(), SysError> {
        self.exchange(what, m).map(drop)
    }
}

/// Receives datagrams on `fd` and hands each netlink message in them (type, sequence number,
/// payload after the header) to `each` until it says stop.
pub(super) fn recv_messages(
    fd: RawFd,
    what: &'static str,
    mut each: impl FnMut(u16, u32, &[u8]) -> Result<bool, SysError>,
) -> Result<(), SysError> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = recv(fd, &mut buf, MsgFlags::empty()).map_err(|e| SysError::sys(what, e))?;
        let mut b = &buf[..n];
        while b.len() >= 16 {
            let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
            let ty = u16::from_ne_bytes([b[4], b[5]]);
            let seq = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
            if len < 16 || len > b.len() {
                return Err(SysError::Netlink { what, errno: 0 });
            }
            if each(ty, seq, &b[16..len])? {
                return Ok(());
            }
            b = &b[((len + 3) & !3).min(b.len())..];
        }
    }
}

/// The (positive) errno of an NLMSG_ERROR payload; 0 for an ack.
pub(super) fn errno(p: &[u8]) -> i32 {
    p.get(0..4)
        .map(|e| -i32::from_ne_bytes([e[0], e[1], e[2], e[3]]))
        .unwrap_or(0)
}

fn parse_link(p: &[u8]) -> Option<LinkInfo> {
    let index = u32::from_ne_bytes(p.get(4..8)?.try_into().ok()?);
    let flags = u32::from_ne_bytes(p.get(8..12)?.try_into().ok()?);
    let mut li = LinkInfo {
        index,
        name: String::new(),
        master: None,
        up: flags & IFF_UP != 0,
    };
    for (ty, v) in attrs(p.get(16..)?) {
        match ty {
            IFLA_IFNAME => li.name = cstr(v),
            IFLA_MASTER if v.len() >= 4 => {
                li.master = Some(u32::from_ne_bytes([v[0], v[1], v[2], v[3]]))
            }
            _ => {}
        }
    }
    Some(li)
}

impl Netlink for RouteSocket {
    fn link(&mut self, name: &str) -> Result<Option<LinkInfo>, SysError> {
        let mut m = Msg::new(RTM_GETLINK, NLM_F_ACK, &ifinfo(0, 0, 0));
        m.str_attr(IFLA_IFNAME, name);
        match self.exchange("get link", m) {
            Ok(v) => Ok(v.first().and_then(|p| parse_link(p))),
            Err(SysError::Netlink { errno, .. }) if errno == libc::ENODEV => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn links(&mut self) -> Result<Vec<LinkInfo>, SysError> {
        let m = Msg::new(RTM_GETLINK, NLM_F_DUMP, &ifinfo(0, 0, 0));
        Ok(self
            .exchange("dump links", m)?
            .iter()
            .filter_map(|p| parse_link(p))
            .collect())
    }

    fn create_bridge(&mut self, name: &str, mtu: u32) -> Result<(), SysError> {
        let mut m = Msg::new(
            RTM_NEWLINK,
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            &ifinfo(0, 0, 0),
        );
        m.str_attr(IFLA_IFNAME, name);
        if mtu > 0 {
            m.attr(IFLA_MTU, &mtu.to_ne_bytes());
        }
        m.begin(IFLA_LINKINFO)
            .str_attr(IFLA_INFO_KIND, "bridge")
            .end();
        self.ack("create bridge", m)
    }

    fn create_veth(
        &mut self,
        name: &str,
        mac: [u8; 6],
        mtu: u32,
        peer: &str,
        peer_netns: RawFd,
    ) -> Result<(), SysError> {
        let mut m = Msg::new(
            RTM_NEWLINK,
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            &ifinfo(0, 0, 0),
        );
        m.str_attr(IFLA_IFNAME, name).attr(IFLA_ADDRESS, &mac);
        if mtu > 0 {
            m.attr(IFLA_MTU, &mtu.to_ne_bytes());
        }
        m.begin(IFLA_LINKINFO)
            .str_attr(IFLA_INFO_KIND, "veth")
            .begin(IFLA_INFO_DATA)
            .begin(VETH_INFO_PEER);
        // The peer's ifinfomsg, then its attributes.
        m.buf.extend_from_slice(&ifinfo(0, 0, 0));
        m.str_attr(IFLA_IFNAME, peer)
            .attr(IFLA_NET_NS_FD, &peer_netns.to_ne_bytes());
        if mtu > 0 {
            m.attr(IFLA_MTU, &mtu.to_ne_bytes());
        }
        m.end().end().end();
        self.ack("create veth", m)
    }

    fn create_link(
        &mut self,
        name: &str,
        kind: LinkKind,
        mac: Option<[u8; 6]>,
        mtu: u32,
        netns: Option<RawFd>,
    ) -> Result<(), SysError> {
        let mut m = Msg::new(
            RTM_NEWLINK,
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            &ifinfo(0, 0, 0),
        );
        m.str_attr(IFLA_IFNAME, name);
        if let Some(mac) = mac {
            m.attr(IFLA_ADDRESS, &mac);
        }
        if mtu > 0 {
            m.attr(IFLA_MTU, &mtu.to_ne_bytes());
        }
        if let Some(fd) = netns {
            m.attr(IFLA_NET_NS_FD, &fd.to_ne_bytes());
        }
        match kind {
            LinkKind::Dummy | LinkKind::Ifb => {}
            LinkKind::Vlan { parent, .. }
            | LinkKind::Macvlan { parent, .. }
            | LinkKind::Ipvlan { parent, .. } => {
                m.attr(IFLA_LINK, &parent.to_ne_bytes());
            }
        }
        m.begin(IFLA_LINKINFO);
        let what = match kind {
            LinkKind::Dummy => "create dummy link",
            LinkKind::Ifb => "create ifb link",
            LinkKind::Vlan { .. } => "create vlan link",
            LinkKind::Macvlan { .. } => "create macvlan link",
            LinkKind::Ipvlan { .. } => "create ipvlan link",
        };
        match kind {
            LinkKind::Dummy => {
                m.str_attr(IFLA_INFO_KIND, "dummy");
            }
            LinkKind::Ifb => {
                m.str_attr(IFLA_INFO_KIND, "ifb");
            }
            LinkKind::Vlan { id, .. } => {
                m.str_attr(IFLA_INFO_KIND, "vlan")
                    .begin(IFLA_INFO_DATA)
                    .attr(IFLA_VLAN_ID, &id.to_ne_bytes())
                    .end();
            }
            LinkKind::Macvlan { mode, .. } => {
                m.str_attr(IFLA_INFO_KIND, "macvlan")
                    .begin(IFLA_INFO_DATA)
                    .attr(IFLA_MACVLAN_MODE, &mode.to_ne_bytes())
                    .end();
            }
            LinkKind::Ipvlan { mode, flags, .. } => {
                m.str_attr(IFLA_INFO_KIND, "ipvlan")
                    .begin(IFLA_INFO_DATA)
                    .attr(IFLA_IPVLAN_MODE, &mode.to_ne_bytes())
                    .attr(IFLA_IPVLAN_FLAGS, &flags.to_ne_bytes())
                    .end();
            }
        }
        m.end();
        self.ack(what, m)
    }

    fn set_up(&mut self, index: u32, master: Option<u32>) -> Result<(), SysError> {
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_ACK, &ifinfo(index, IFF_UP, IFF_UP));
        if let Some(master) = master {
            m.attr(IFLA_MASTER, &master.to_ne_bytes());
        }
        self.ack("set link up", m)
    }

    fn set_port_isolated(&mut self, index: u32) -> Result<(), SysError> {
        let mut fixed = ifinfo(index, 0, 0);
        fixed[0] = AF_BRIDGE;
        let mut m = Msg::new(RTM_SETLINK, NLM_F_ACK, &fixed);
        m.begin(IFLA_PROTINFO)
            .attr(IFLA_BRPORT_ISOLATED, &[1])
            .end();
        self.ack("isolate bridge port", m)
    }

    fn delete_link(&mut self, index: u32) -> Result<(), SysError> {
        let m = Msg::new(RTM_DELLINK, NLM_F_ACK, &ifinfo(index, 0, 0));
        match self.ack("delete link", m) {
            Err(SysError::Netlink { errno, .. }) if errno == libc::ENODEV => Ok(()),
            r => r,
        }
    }

    fn add_address(&mut self, index: u32, ip: Ipv4Addr, subnet: Subnet) -> Result<(), SysError> {
        let mut fixed = [0u8; 8];
        fixed[0] = AF_INET;
        fixed[1] = subnet.prefix;
        fixed[4..8].copy_from_slice(&index.to_ne_bytes());
        let mut m = Msg::new(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, &fixed);
        m.attr(IFA_LOCAL, &ip.octets())
            .attr(IFA_ADDRESS, &ip.octets())
            .attr(IFA_BROADCAST, &subnet.broadcast().octets());
        match self.ack("add address", m) {
            Err(SysError::Netlink { errno, .. }) if errno == libc::EEXIST => Ok(()),
            r => r,
        }
    }

    fn add_address6(&mut self, index: u32, ip: Ipv6Addr, prefix: u8) -> Result<(), SysError> {
        // ifaddrmsg: family, prefixlen, flags, scope, index.
        let mut fixed = [0u8; 8];
        fixed[0] = AF_INET6;
        fixed[1] = prefix;
        fixed[2] = IFA_F_NODAD;
        fixed[4..8].copy_from_slice(&index.to_ne_bytes());
        let mut m = Msg::new(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, &fixed);
        m.attr(IFA_ADDRESS, &ip.octets());
        match self.ack("add IPv6 address", m) {
            Err(SysError::Netlink { errno, .. }) if errno == libc::EEXIST => Ok(()),
            r => r,
        }
    }

    fn add_default_route6(&mut self, gateway: Ipv6Addr) -> Result<(), SysError> {
        let fixed = [AF_INET6, 0, 0, 0, RT_TABLE_MAIN, 3, 0, 1, 0, 0, 0, 0];
        let mut m = Msg::new(RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, &fixed);
        m.attr(RTA_GATEWAY, &gateway.octets());
        self.ack("add IPv6 default route", m)
    }

    fn add_default_route(&mut self, gateway: Option<Ipv4Addr>, oif: u32) -> Result<(), SysError> {
        // rtmsg: family, dst_len, src_len, tos, table, protocol (boot), scope, type (unicast).
        let scope = if gateway.is_some() { 0 } else { RT_SCOPE_LINK };
        let fixed = [AF_INET, 0, 0, 0, RT_TABLE_MAIN, 3, scope, 1, 0, 0, 0, 0];
        let mut m = Msg::new(RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, &fixed);
        match gateway {
            Some(gw) => m.attr(RTA_GATEWAY, &gw.octets()),
            None => m.attr(RTA_OIF, &oif.to_ne_bytes()),
        };
        self.ack("add default route", m)
    }

    fn routes(&mut self) -> Result<Vec<(Subnet, u32)>, SysError> {
        let fixed = [AF_INET, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let m = Msg::new(RTM_GETROUTE, NLM_F_DUMP, &fixed);
        let mut out = Vec::new();
        for p in self.exchange("dump routes", m)? {
            if p.len() < 12 || p[0] != AF_INET {
                continue;
            }
            let (dst_len, mut table) = (p[1], u32::from(p[4]));
            let (mut dst, mut oif) = (None, 0);
            for (ty, v) in attrs(&p[12..]) {
                match ty {
                    RTA_DST if v.len() == 4 => dst = Some(Ipv4Addr::new(v[0], v[1], v[2], v[3])),
                    RTA_OIF if v.len() == 4 => oif = u32::from_ne_bytes([v[0], v[1], v[2], v[3]]),
                    RTA_TABLE if v.len() == 4 => {
                        table = u32::from_ne_bytes([v[0], v[1], v[2], v[3]])
                    }
                    _ => {}
                }
            }
            if table != u32::from(RT_TABLE_MAIN) || dst_len == 0 {
                continue;
            }
            if let Some(d) = dst {
                out.push((Subnet::new(d, dst_len), oif));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_attributes_are_sized_and_aligned() {
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_ACK, &ifinfo(0, 0, 0));
        m.str_attr(IFLA_IFNAME, "br0")
            .begin(IFLA_LINKINFO)
            .str_attr(IFLA_INFO_KIND, "bridge")
            .end();
        let b = m.finish(7);
        assert_eq!(
            u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize,
            b.len()
        );
        assert_eq!(u32::from_ne_bytes([b[8], b[9], b[10], b[11]]), 7);
        let a = attrs(&b[32..]);
        assert_eq!(a.len(), 2);
        assert_eq!((a[0].0, cstr(a[0].1).as_str()), (IFLA_IFNAME, "br0"));
        assert_eq!(a[1].0, IFLA_LINKINFO);
        let inner = attrs(a[1].1);
        assert_eq!(
            (inner[0].0, cstr(inner[0].1).as_str()),
            (IFLA_INFO_KIND, "bridge")
        );
    }

    #[test]
    fn parses_a_link_answer() {
        let mut m = Msg::new(RTM_NEWLINK, 0, &ifinfo(9, IFF_UP, 0));
        m.str_attr(IFLA_IFNAME, "veth1")
            .attr(IFLA_MASTER, &4u32.to_ne_bytes());
        let b = m.finish(1);
        let l = parse_link(&b[16..]).expect("link");
        assert_eq!(
            (l.index, l.name.as_str(), l.master, l.up),
            (9, "veth1", Some(4), true)
        );
        assert!(parse_link(&[0u8; 3]).is_none());
    }
}
