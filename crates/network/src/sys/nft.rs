//! nf_tables over NETLINK_NETFILTER, hand-written on the same message builder as the route
//! socket: a [`Table`] becomes one batch that the kernel applies atomically, so no packet ever
//! sees a half-built table and no `nft` process runs on the daemon's paths.
//!
//! The batch: add the table (a no-op when present), delete the chains Wharf rebuilds that
//! exist (looked up first), add the kept chains (a no-op when present, so the user's rules
//! in them survive), then add Wharf's chains and rules.
//!
//! Measured (2-core VM, kernel 6.18, mean of 20): a replace takes 12-14 ms with 1 bridge and
//! 12-15 ms with 100 (the kernel's commit dominates), against 15 ms and 23-26 ms for
//! `nft -f` of the same ruleset, which also needs a process per change.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{
    bind, recv, send, setsockopt, socket, sockopt, AddressFamily, MsgFlags, NetlinkAddr, SockFlag,
    SockProtocol, SockType,
};

use super::netlink::{
    attrs, cstr, errno, recv_messages, Msg, NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK, NLM_F_CREATE,
    NLM_F_DUMP,
};
use super::SysError;
use crate::firewall::{Chain, Hook, Match, Rule, Table, Verdict};

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 16;
const NFNL_MSG_BATCH_END: u16 = 17;
const NFNLGRP_NFTABLES: u32 = 7;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFT_MSG_DELCHAIN: u16 = 5;
const NFT_MSG_NEWRULE: u16 = 6;
const NLM_F_APPEND: u16 = 0x800;
const NFPROTO_INET: u8 = 1;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;
const NF_INET_FORWARD: u32 = 2;
const NF_INET_POST_ROUTING: u32 = 4;
const NF_DROP: i32 = 0;
const NF_ACCEPT: i32 = 1;
const NFT_JUMP: i32 = -3;
const NFT_REG_VERDICT: u32 = 0;
const NFT_REG_1: u32 = 1;
const NFT_META_IIFNAME: u32 = 6;
const NFT_META_NFPROTO: u32 = 15;
const NFT_META_OIFNAME: u32 = 7;
const NFT_CMP_EQ: u32 = 0;
const NFT_CMP_NEQ: u32 = 1;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFT_CT_STATE: u32 = 0;
/// `NF_CT_STATE_BIT(IP_CT_ESTABLISHED) | NF_CT_STATE_BIT(IP_CT_RELATED)`.
const CT_ESTABLISHED_RELATED: u32 = 2 | 4;
const IFNAMSIZ: usize = 16;

fn be(v: u32) -> [u8; 4] {
    v.to_be_bytes()
}

/// A message of the nftables subsystem about Wharf's `inet` table.
fn nft_msg(ty: u16, flags: u16) -> Msg {
    nft_msg_in(NFPROTO_INET, ty, flags)
}

/// A message of the nftables subsystem: `nfgenmsg` (family, version 0, resource id).
fn nft_msg_in(family: u8, ty: u16, flags: u16) -> Msg {
    Msg::new((NFNL_SUBSYS_NFTABLES << 8) | ty, flags, &[family, 0, 0, 0])
}

/// Deletes table `name` of `family`, whether or not it exists (adding first makes the
/// delete succeed either way).
fn drop_table(out: &mut Vec<Msg>, family: u8, name: &str) {
    for (ty, flags) in [(NFT_MSG_NEWTABLE, NLM_F_CREATE), (NFT_MSG_DELTABLE, 0)] {
        let mut m = nft_msg_in(family, ty, flags);
        m.str_attr(NFTA_TABLE_NAME, name);
        out.push(m);
    }
}

/// Batch begin/end carry the subsystem as resource id.
fn batch_marker(ty: u16) -> Msg {
    let res = NFNL_SUBSYS_NFTABLES.to_be_bytes();
    Msg::new(ty, 0, &[0, 0, res[0], res[1]])
}

/// Expression builder for one rule.
struct Exprs<'a>(&'a mut Msg);

impl Exprs<'_> {
    fn expr(&mut self, name: &str, data: impl FnOnce(&mut Msg)) {
        self.0.begin(NFTA_LIST_ELEM).str_attr(NFTA_EXPR_NAME, name);
        self.0.begin(NFTA_EXPR_DATA);
        data(self.0);
        self.0.end().end();
    }

    fn meta(&mut self, key: u32) {
        self.expr("meta", |m| {
            m.attr(1, &be(NFT_REG_1)).attr(2, &be(key)); // DREG, KEY
        });
    }

    fn cmp(&mut self, op: u32, data: &[u8]) {
        self.expr("cmp", |m| {
            m.attr(1, &be(NFT_REG_1)).attr(2, &be(op)); // SREG, OP
            m.begin(3).attr(NFTA_DATA_VALUE, data).end(); // DATA
        });
    }

    /// `reg1 = reg1 & mask` over `mask.len()` bytes.
    fn mask(&mut self, mask: &[u8]) {
        let zero = vec![0u8; mask.len()];
        self.expr("bitwise", |m| {
            m.attr(1, &be(NFT_REG_1)).attr(2, &be(NFT_REG_1)); // SREG, DREG
            m.attr(3, &be(mask.len() as u32)); // LEN
            m.begin(4).attr(NFTA_DATA_VALUE, mask).end(); // MASK
            m.begin(5).attr(NFTA_DATA_VALUE, &zero).end(); // XOR
        });
    }

    /// The packet is of this family (the `inet` table sees both).
    fn nfproto(&mut self, family: u8) {
        self.meta(NFT_META_NFPROTO);
        self.cmp(NFT_CMP_EQ, &[family]);
    }

    fn ifname(&mut self, key: u32, op: u32, name: &str) {
        let mut padded = [0u8; IFNAMSIZ];
        let n = name.len().min(IFNAMSIZ - 1);
        padded[..n].copy_from_slice(&name.as_bytes()[..n]);
        self.meta(key);
        self.cmp(op, &padded);
    }

    fn matches(&mut self, m: &Match) {
        match m {
            Match::Iif(n) => self.ifname(NFT_META_IIFNAME, NFT_CMP_EQ, n),
            Match::Oif(n) => self.ifname(NFT_META_OIFNAME, NFT_CMP_EQ, n),
            Match::OifNot(n) => self.ifname(NFT_META_OIFNAME, NFT_CMP_NEQ, n),
            Match::Saddr(s) => {
                self.nfproto(NFPROTO_IPV4);
                if s.prefix == 0 {
                    return;
                }
                self.expr("payload", |m| {
                    m.attr(1, &be(NFT_REG_1)) // DREG
                        .attr(2, &be(NFT_PAYLOAD_NETWORK_HEADER)) // BASE
                        .attr(3, &be(12)) // OFFSET: saddr
                        .attr(4, &be(4)); // LEN
                });
                if s.prefix < 32 {
                    let mask = u32::MAX << (32 - u32::from(s.prefix));
                    self.mask(&mask.to_be_bytes());
                }
                self.cmp(NFT_CMP_EQ, &s.network().octets());
            }
            Match::Ipv6 => self.nfproto(NFPROTO_IPV6),
            Match::EstablishedRelated => {
                self.expr("ct", |m| {
                    m.attr(1, &be(NFT_REG_1)).attr(2, &be(NFT_CT_STATE)); // DREG, KEY
                });
                // The state is a host-order bitmask.
                self.mask(&CT_ESTABLISHED_RELATED.to_ne_bytes());
                self.cmp(NFT_CMP_NEQ, &[0; 4]);
            }
        }
    }

    fn verdict(&mut self, v: &Verdict) {
        let (code, chain) = match v {
            Verdict::Accept => (NF_ACCEPT, None),
            Verdict::Drop => (NF_DROP, None),
            Verdict::Jump(c) => (NFT_JUMP, Some(c.as_str())),
            Verdict::Masquerade => return self.expr("masq", |_| {}),
        };
        self.expr("immediate", |m| {
            m.attr(1, &be(NFT_REG_VERDICT)); // DREG
            m.begin(2).begin(NFTA_DATA_VERDICT); // DATA
            m.attr(NFTA_VERDICT_CODE, &code.to_be_bytes());
            if let Some(c) = chain {
                m.str_attr(NFTA_VERDICT_CHAIN, c);
            }
            m.end().end();
        });
    }
}

fn add_chain(table: &str, c: &Chain) -> Msg {
    let mut m = nft_msg(NFT_MSG_NEWCHAIN, NLM_F_CREATE);
    m.str_attr(NFTA_CHAIN_TABLE, table)
        .str_attr(NFTA_CHAIN_NAME, &c.name);
    if let Some(h) = c.hook {
        let (num, prio, ty): (u32, i32, &str) = match h {
            Hook::Forward => (NF_INET_FORWARD, 0, "filter"),
            Hook::Postrouting => (NF_INET_POST_ROUTING, 100, "nat"),
        };
        m.begin(NFTA_CHAIN_HOOK)
            .attr(NFTA_HOOK_HOOKNUM, &be(num))
            .attr(NFTA_HOOK_PRIORITY, &prio.to_be_bytes())
            .end();
        let policy = if c.drop { NF_DROP } else { NF_ACCEPT };
        m.attr(NFTA_CHAIN_POLICY, &policy.to_be_bytes())
            .str_attr(NFTA_CHAIN_TYPE, ty);
    }
    m
}

fn add_rule(table: &str, chain: &str, r: &Rule) -> Msg {
    let mut m = nft_msg(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND);
    m.str_attr(NFTA_RULE_TABLE, table)
        .str_attr(NFTA_RULE_CHAIN, chain)
        .begin(NFTA_RULE_EXPRESSIONS);
    let mut e = Exprs(&mut m);
    for x in &r.matches {
        e.matches(x);
    }
    e.verdict(&r.verdict);
    m.end();
    m
}

/// The messages of the batch that makes the kernel's table `t`, given the names of the
/// chains the table has now; the last one asks for an ack.
fn batch(t: &Table, existing: &[String]) -> Vec<Msg> {
    let mut out = vec![batch_marker(NFNL_MSG_BATCH_BEGIN)];
    // The `ip` table of Wharf before IPv6 goes in the same transaction.
    drop_table(&mut out, NFPROTO_IPV4, &t.name);
    let mut m = nft_msg(NFT_MSG_NEWTABLE, NLM_F_CREATE);
    m.str_attr(NFTA_TABLE_NAME, &t.name);
    out.push(m);
    for c in t.chains.iter().filter(|c| existing.contains(&c.name)) {
        let mut m = nft_msg(NFT_MSG_DELCHAIN, 0);
        m.str_attr(NFTA_CHAIN_TABLE, &t.name)
            .str_attr(NFTA_CHAIN_NAME, &c.name);
        out.push(m);
    }
    for k in &t.kept {
        out.push(add_chain(
            &t.name,
            &Chain {
                name: k.clone(),
                hook: None,
                drop: false,
                rules: Vec::new(),
            },
        ));
    }
    for c in &t.chains {
        out.push(add_chain(&t.name, c));
        out.extend(c.rules.iter().map(|r| add_rule(&t.name, &c.name, r)));
    }
    end_batch(&mut out);
    out
}

/// Asks for an ack of the last message and closes the batch.
fn end_batch(out: &mut Vec<Msg>) {
    if let Some(last) = out.last_mut() {
        let f = u16::from_ne_bytes([last.buf[6], last.buf[7]]) | NLM_F_ACK;
        last.buf[6..8].copy_from_slice(&f.to_ne_bytes());
    }
    out.push(batch_marker(NFNL_MSG_BATCH_END));
}

/// A NETLINK_NETFILTER socket in the calling thread's namespace.
struct NftSocket {
    fd: OwnedFd,
}

impl NftSocket {
    /// A socket for requests, or subscribed to multicast `groups`.
    fn bound(groups: u32) -> Result<OwnedFd, SysError> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkNetFilter,
        )
        .map_err(|e| SysError::sys("nftables socket", e))?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, groups))
            .map_err(|e| SysError::sys("nftables bind", e))?;
        Ok(fd)
    }

    fn open() -> Result<NftSocket, SysError> {
        let fd = Self::bound(0)?;
        // A kernel that never answers (a malformed batch it dropped) must not hang the daemon.
        let tv = nix::sys::time::TimeVal::from(libc::timeval {
            tv_sec: 5,
            tv_usec: 0,
        });
        setsockopt(&fd, sockopt::ReceiveTimeout, &tv)
            .map_err(|e| SysError::sys("nftables socket timeout", e))?;
        Ok(NftSocket { fd })
    }

    /// Names of the chains of table `table` (none when it does not exist).
    fn chains(&self, table: &str) -> Result<Vec<String>, SysError> {
        let what = "list nftables chains";
        let mut m = nft_msg(NFT_MSG_GETCHAIN, NLM_F_DUMP);
        m.str_attr(NFTA_CHAIN_TABLE, table);
        send(self.fd.as_raw_fd(), &m.finish(1), MsgFlags::empty())
            .map_err(|e| SysError::sys(what, e))?;
        let mut out = Vec::new();
        recv_messages(self.fd.as_raw_fd(), what, |ty, _, p| match ty {
            NLMSG_DONE => Ok(true),
            NLMSG_ERROR => match errno(p) {
                0 => Ok(true),
                e if e == libc::ENOENT => Ok(true),
                e => Err(SysError::Netlink { what, errno: e }),
            },
            _ => {
                let (mut t, mut name) = (String::new(), String::new());
                for (a, v) in attrs(p.get(4..).unwrap_or_default()) {
                    match a {
                        NFTA_CHAIN_TABLE => t = cstr(v),
                        NFTA_CHAIN_NAME => name = cstr(v),
                        _ => {}
                    }
                }
                if t == table {
                    out.push(name);
                }
                Ok(false)
            }
        })?;
        Ok(out)
    }

    /// Sends the batch and waits for the ack of its last message; the first error any
    /// message got wins (the kernel then applied none of them).
    fn apply(&self, msgs: Vec<Msg>) -> Result<(), SysError> {
        let what = "replace nftables table";
        let mut req = Vec::new();
        let count = msgs.len() as u32;
        for (i, m) in msgs.into_iter().enumerate() {
            req.extend(m.finish(i as u32 + 1));
        }
        send(self.fd.as_raw_fd(), &req, MsgFlags::empty()).map_err(|e| SysError::sys(what, e))?;
        // The last command's seq: the batch end is count, its predecessor asked for the ack.
        let (begin, last) = (1, count - 1);
        let mut first_err = None;
        recv_messages(self.fd.as_raw_fd(), what, |ty, seq, p| {
            if ty != NLMSG_ERROR {
                return Ok(false);
            }
            let e = errno(p);
            if e != 0 && first_err.is_none() {
                first_err = Some(e);
            }
            // The kernel reports a batch it could not even start on the begin message.
            Ok(seq == last || (seq == begin && e != 0))
        })?;
        match first_err {
            Some(errno) => Err(SysError::Netlink { what, errno }),
            None => Ok(()),
        }
    }
}

/// Makes the kernel's table `t.name` exactly `t` (kept chains aside), in one transaction.
pub fn replace_table(t: &Table) -> Result<(), SysError> {
    let s = NftSocket::open()?;
    let existing = s.chains(&t.name)?;
    s.apply(batch(t, &existing))
}

/// Whether table `name` exists.
pub fn table_exists(name: &str) -> Result<bool, SysError> {
    let what = "get nftables table";
    let s = NftSocket::open()?;
    let mut m = nft_msg(NFT_MSG_GETTABLE, NLM_F_ACK);
    m.str_attr(NFTA_TABLE_NAME, name);
    send(s.fd.as_raw_fd(), &m.finish(1), MsgFlags::empty()).map_err(|e| SysError::sys(what, e))?;
    let mut found = false;
    recv_messages(s.fd.as_raw_fd(), what, |ty, _, p| match ty {
        NLMSG_ERROR => match errno(p) {
            0 => Ok(true),
            e if e == libc::ENOENT => Ok(true),
            e => Err(SysError::Netlink { what, errno: e }),
        },
        // The table's description precedes the ack.
        _ => {
            found = true;
            Ok(false)
        }
    })?;
    Ok(found)
}

/// A subscription to nf_tables changes on the host (anyone's table, chain or rule).
pub struct Events(OwnedFd);

impl Events {
    /// Subscribes.
    pub fn open() -> Result<Events, SysError> {
        NftSocket::bound(1 << (NFNLGRP_NFTABLES - 1)).map(Events)
    }

    /// Blocks until the next change is reported (or some were lost: ENOBUFS), then takes
    /// whatever else is queued, so that one batch (a message per rule) wakes the caller once.
    pub fn wait(&mut self) -> Result<(), SysError> {
        let mut buf = vec![0u8; 64 * 1024];
        match recv(self.0.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Ok(_) | Err(nix::Error::ENOBUFS) => {}
            Err(e) => return Err(SysError::sys("nftables events", e)),
        }
        while matches!(
            recv(self.0.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT),
            Ok(_) | Err(nix::Error::ENOBUFS)
        ) {}
        Ok(())
    }
}

/// Deletes table `name` (and an `ip` one of that name an older Wharf left); fine if absent.
pub fn delete_table(name: &str) -> Result<(), SysError> {
    let s = NftSocket::open()?;
    let mut msgs = vec![batch_marker(NFNL_MSG_BATCH_BEGIN)];
    drop_table(&mut msgs, NFPROTO_IPV4, name);
    drop_table(&mut msgs, NFPROTO_INET, name);
    end_batch(&mut msgs);
    s.apply(msgs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::{ruleset, Bridge};

    fn names(p: &[u8]) -> Vec<(u16, String)> {
        attrs(p)
            .into_iter()
            .filter(|(_, v)| v.iter().all(|c| c.is_ascii_graphic() || *c == 0))
            .map(|(t, v)| (t, cstr(v)))
            .collect()
    }

    #[test]
    fn batch_is_framed_and_acked_once() {
        let b = Bridge {
            name: "br0".into(),
            subnet: "10.0.0.0/24".parse().expect("cidr"),
            internal: false,
            icc: true,
            masquerade: true,
        };
        let t = ruleset("wharf-t", &[b], false);
        let msgs = batch(&t, &["forward".to_string(), "user".to_string()]);
        let bufs: Vec<Vec<u8>> = msgs
            .into_iter()
            .enumerate()
            .map(|(i, m)| m.finish(i as u32))
            .collect();
        let ty = |b: &Vec<u8>| u16::from_ne_bytes([b[4], b[5]]);
        let flags = |b: &Vec<u8>| u16::from_ne_bytes([b[6], b[7]]);
        assert_eq!(ty(&bufs[0]), NFNL_MSG_BATCH_BEGIN);
        assert_eq!(&bufs[0][18..20], &[0, 10], "subsystem as resource id");
        assert_eq!(ty(&bufs[bufs.len() - 1]), NFNL_MSG_BATCH_END);
        let kinds: Vec<u16> = bufs[1..bufs.len() - 1]
            .iter()
            .map(|b| ty(b) & 0xff)
            .collect();
        // The old `ip` table dropped (new, delete), table, delete forward (postrouting is
        // new), user, forward + 5 rules, postrouting + 1.
        assert_eq!(kinds, [0, 2, 0, 5, 3, 3, 6, 6, 6, 6, 3, 6]);
        let family = |b: &Vec<u8>| b[16];
        assert_eq!(family(&bufs[1]), NFPROTO_IPV4);
        assert!(bufs[3..bufs.len() - 1]
            .iter()
            .all(|b| family(b) == NFPROTO_INET));
        let acked: Vec<usize> = (0..bufs.len())
            .filter(|i| flags(&bufs[*i]) & NLM_F_ACK != 0)
            .collect();
        assert_eq!(acked, [bufs.len() - 2]);
        for b in &bufs {
            assert_eq!(
                u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize,
                b.len()
            );
        }
        let del = names(&bufs[4][20..]);
        assert_eq!(
            del,
            [
                (NFTA_CHAIN_TABLE, "wharf-t".to_string()),
                (NFTA_CHAIN_NAME, "forward".to_string())
            ]
        );
    }

    #[test]
    fn a_rule_spells_out_its_expressions() {
        let r = Rule {
            matches: vec![
                Match::Saddr("10.1.2.0/24".parse().expect("cidr")),
                Match::OifNot("br-x".into()),
            ],
            verdict: Verdict::Masquerade,
        };
        let b = add_rule("t", "postrouting", &r).finish(1);
        let top = attrs(&b[20..]);
        assert_eq!(top.len(), 3);
        let exprs: Vec<String> = attrs(top[2].1)
            .iter()
            .map(|(_, e)| cstr(attrs(e)[0].1))
            .collect();
        // IPv4 only (the inet table sees IPv6 too), then the source, then the interface.
        assert_eq!(
            exprs,
            ["meta", "cmp", "payload", "bitwise", "cmp", "meta", "cmp", "masq"]
        );
        let cmp = attrs(attrs(top[2].1)[4].1)[1].1;
        let data = attrs(attrs(cmp)[2].1)[0].1;
        assert_eq!(data, [10, 1, 2, 0]);
    }

    #[test]
    fn replaces_and_deletes_a_real_table() {
        wharf_testutil::require_root!();
        let name = format!("wharf-unit{}", std::process::id());
        struct Gone(String);
        impl Drop for Gone {
            fn drop(&mut self) {
                let _ = delete_table(&self.0);
            }
        }
        let _g = Gone(name.clone());
        let b = |n: &str, s: &str| Bridge {
            name: n.into(),
            subnet: s.parse().expect("cidr"),
            internal: n.ends_with('i'),
            icc: !n.ends_with('q'),
            masquerade: true,
        };
        let full = ruleset(
            &name,
            &[
                b("wu0", "10.77.0.0/24"),
                b("wu1i", "10.77.1.0/24"),
                b("wu2q", "10.77.2.0/24"),
            ],
            true,
        );
        let list_in = |family: &str| {
            let o = std::process::Command::new("nft")
                .args(["list", "table", family, &name])
                .output()
                .expect("nft");
            String::from_utf8_lossy(&o.stdout).to_string()
        };
        let list = || list_in("inet");
        // What an older Wharf made: an `ip` table, replaced in the same transaction.
        let old = std::process::Command::new("nft")
            .args(["add", "table", "ip", &name])
            .status()
            .expect("nft");
        assert!(old.success());
        replace_table(&full).expect("replace");
        assert!(list_in("ip").is_empty(), "the old ip table stays");
        let text = list();
        for want in [
            "jump user",
            "ct state established,related accept",
            "iifname \"wu1i\" drop",
            "iifname \"wu2q\" oifname \"wu2q\" drop",
            "ip saddr 10.77.0.0/24 oifname != \"wu0\" masquerade",
            "type nat hook postrouting priority srcnat; policy accept;",
            "type filter hook forward priority filter; policy drop;",
            "iifname \"wu0\" accept",
            "meta nfproto ipv6 accept",
        ] {
            assert!(text.contains(want), "{want} missing in\n{text}");
        }
        assert!(!text.contains("10.77.1.0"), "internal masqueraded:\n{text}");
        // The user's rule survives every replacement.
        let ok = std::process::Command::new("nft")
            .args([
                "add",
                "rule",
                "inet",
                &name,
                "user",
                "ip",
                "daddr",
                "192.0.2.1",
                "drop",
            ])
            .status()
            .expect("nft");
        assert!(ok.success());
        replace_table(&ruleset(&name, &[], false)).expect("replace");
        let text = list();
        assert!(!text.contains("wu0"), "{text}");
        assert!(text.contains("ip daddr 192.0.2.1 drop"), "{text}");
        assert!(table_exists(&name).expect("exists"));
        delete_table(&name).expect("delete");
        assert!(list().is_empty());
        assert!(!table_exists(&name).expect("exists"));
        delete_table(&name).expect("delete twice");
    }
}
