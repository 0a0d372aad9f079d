//! The nftables ruleset Wharf owns, as data: computed from the bridge networks alone (config
//! in, rules out), golden-tested here without root and sent to the kernel as one batch by
//! [`crate::sys::Kernel::replace_table`]. Every change rebuilds the whole table from the
//! networks in the store, so reconciling after a crash is the same call as any update.
//!
//! Layout of table `inet <name>` (one table for IPv4 and IPv6: the isolation rules match
//! interfaces, so IPv6 networks are isolated alike; masquerading is IPv4 only):
//! - chain `user`: created empty once and never flushed or deleted: the user's rules
//!   (Docker's `DOCKER-USER`), run first for every forwarded packet.
//! - chain `forward` (filter hook, priority 0): jump to `user`, accept established and
//!   related, then per bridge: same-bridge traffic accepted (dropped with `icc=false`),
//!   nothing new routed into the bridge, and for `--internal` nothing routed out of it. When
//!   Wharf itself turned `ip_forward` on, the chain's policy is drop and each bridge's own
//!   outbound traffic is accepted: the host does not become a router for anything else (what
//!   dockerd does with the iptables FORWARD policy; `--ip-forward-no-drop` keeps accept).
//! - chain `postrouting` (nat hook, priority 100): per bridge with IP masquerading on and not
//!   internal, traffic from its subnet leaving through another interface is masqueraded.

use std::fmt;

use crate::model::{DriverKind, Network, Subnet};
use crate::ICC;

/// The bridge driver option that turns outbound masquerading off.
pub const IP_MASQ: &str = "com.docker.network.bridge.enable_ip_masquerade";

/// The chain users may add rules to; Wharf creates it when missing and never touches it.
pub const USER_CHAIN: &str = "user";

/// Daemon settings for the firewall (`--ip-masq`, `--icc`, `--ip-forward`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Manage an nftables table at all (false: forwarding-off isolation only).
    pub enabled: bool,
    /// Masquerade the default bridge's outbound traffic.
    pub ip_masq: bool,
    /// Containers on the default bridge may talk to each other.
    pub icc: bool,
    /// Set `net.ipv4.ip_forward=1` at start (as dockerd does).
    pub ip_forward: bool,
    /// Keep the forward policy accept even when Wharf turned `ip_forward` on.
    pub ip_forward_no_drop: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            enabled: true,
            ip_masq: true,
            icc: true,
            ip_forward: true,
            ip_forward_no_drop: false,
        }
    }
}

/// Go's `strconv.ParseBool`, which Docker's bridge options go through.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Whether boolean option `key` of `n` is set to false.
pub fn option_off(n: &Network, key: &str) -> bool {
    n.options.get(key).and_then(|v| parse_bool(v)) == Some(false)
}

/// Refuses a bridge option the firewall reads that is not a boolean, with Docker's message.
pub fn validate_options(
    options: &std::collections::BTreeMap<String, String>,
) -> Result<(), crate::NetworkError> {
    for key in [ICC, IP_MASQ] {
        if let Some(v) = options.get(key).filter(|v| parse_bool(v).is_none()) {
            return Err(crate::NetworkError::Invalid(format!(
                "failed to parse {key} value: {v} (strconv.ParseBool: parsing {v:?}: invalid syntax)"
            )));
        }
    }
    Ok(())
}

/// The table name for a daemon whose default bridge is `bridge`: `wharf` for the usual one,
/// else `wharf-<bridge>`, so daemons on other bridges (tests) never share a table.
pub fn table_name(bridge: &str) -> String {
    if bridge.is_empty() || bridge == crate::DEFAULT_BRIDGE {
        "wharf".to_string()
    } else {
        format!("wharf-{bridge}")
    }
}

/// One bridge network as the firewall sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bridge {
    /// Linux bridge name.
    pub name: String,
    /// Its subnet.
    pub subnet: Subnet,
    /// `--internal`: nothing routed in or out.
    pub internal: bool,
    /// `enable_icc`: containers on it may talk to each other.
    pub icc: bool,
    /// `enable_ip_masquerade`.
    pub masquerade: bool,
}

impl Bridge {
    /// The firewall's view of `n`; `None` for host/none networks or a bridge without subnet.
    pub fn of(n: &Network) -> Option<Bridge> {
        if n.driver != DriverKind::Bridge || n.bridge.is_empty() {
            return None;
        }
        Some(Bridge {
            name: n.bridge.clone(),
            subnet: n.subnet?.canonical(),
            internal: n.internal,
            icc: !option_off(n, ICC),
            masquerade: !option_off(n, IP_MASQ),
        })
    }
}

/// A condition of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// Arrived on this interface.
    Iif(String),
    /// Leaves through this interface.
    Oif(String),
    /// Leaves through any other interface.
    OifNot(String),
    /// An IPv4 packet with its source address inside the subnet.
    Saddr(Subnet),
    /// An IPv6 packet.
    Ipv6,
    /// Conntrack state established or related.
    EstablishedRelated,
}

/// What a rule does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Stop evaluating this chain: the packet passes this table.
    Accept,
    /// Drop the packet.
    Drop,
    /// Evaluate another chain, then continue here unless it decided.
    Jump(String),
    /// Source NAT to the outgoing interface's address.
    Masquerade,
}

/// One rule: all matches, then the verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Conditions, all of which must hold.
    pub matches: Vec<Match>,
    /// The action.
    pub verdict: Verdict,
}

/// The netfilter hooks Wharf uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// Filter chain on forward, priority 0.
    Forward,
    /// NAT chain on postrouting, priority 100 (srcnat).
    Postrouting,
}

/// A chain: a base chain on a hook or a regular one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// Name.
    pub name: String,
    /// Its hook; `None` for a regular chain.
    pub hook: Option<Hook>,
    /// A base chain's policy is drop (else accept).
    pub drop: bool,
    /// Rules, in order.
    pub rules: Vec<Rule>,
}

/// The whole table (family `inet`: IPv4 and IPv6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// Table name.
    pub name: String,
    /// Chains Wharf rebuilds on every change.
    pub chains: Vec<Chain>,
    /// Regular chains created when missing and otherwise left alone.
    pub kept: Vec<String>,
}

fn rule(matches: Vec<Match>, verdict: Verdict) -> Rule {
    Rule { matches, verdict }
}

/// The ruleset for `bridges` (sorted by name so the table only changes with the networks);
/// `drop_others`: forwarded traffic that is not a bridge's own is dropped.
pub fn ruleset(name: &str, bridges: &[Bridge], drop_others: bool) -> Table {
    let mut bridges = bridges.to_vec();
    bridges.sort_by(|a, b| a.name.cmp(&b.name));
    bridges.dedup_by(|a, b| a.name == b.name);
    let mut forward = vec![
        rule(vec![], Verdict::Jump(USER_CHAIN.into())),
        rule(vec![Match::EstablishedRelated], Verdict::Accept),
    ];
    let mut nat = Vec::new();
    for b in &bridges {
        let (i, o) = (Match::Iif(b.name.clone()), Match::Oif(b.name.clone()));
        // Only seen with br_netfilter loaded; otherwise bridge port isolation does icc=false.
        let same = if b.icc {
            Verdict::Accept
        } else {
            Verdict::Drop
        };
        forward.push(rule(vec![i.clone(), o.clone()], same));
        forward.push(rule(vec![o], Verdict::Drop));
        if b.internal {
            forward.push(rule(vec![i], Verdict::Drop));
        } else if b.masquerade {
            nat.push(rule(
                vec![Match::Saddr(b.subnet), Match::OifNot(b.name.clone())],
                Verdict::Masquerade,
            ));
        }
    }
    if drop_others {
        for b in bridges.iter().filter(|b| !b.internal) {
            forward.push(rule(vec![Match::Iif(b.name.clone())], Verdict::Accept));
        }
        // Wharf turned IPv4 routing on, not IPv6's: the host's own IPv6 routing stays.
        forward.push(rule(vec![Match::Ipv6], Verdict::Accept));
    }
    Table {
        name: name.to_string(),
        chains: vec![
            Chain {
                name: "forward".into(),
                hook: Some(Hook::Forward),
                drop: drop_others,
                rules: forward,
            },
            Chain {
                name: "postrouting".into(),
                hook: Some(Hook::Postrouting),
                drop: false,
                rules: nat,
            },
        ],
        kept: vec![USER_CHAIN.into()],
    }
}

impl fmt::Display for Match {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Match::Iif(n) => write!(f, "iifname \"{n}\""),
            Match::Oif(n) => write!(f, "oifname \"{n}\""),
            Match::OifNot(n) => write!(f, "oifname != \"{n}\""),
            Match::Saddr(s) => write!(f, "ip saddr {s}"),
            Match::Ipv6 => write!(f, "meta nfproto ipv6"),
            Match::EstablishedRelated => write!(f, "ct state established,related"),
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for m in &self.matches {
            write!(f, "{m} ")?;
        }
        match &self.verdict {
            Verdict::Accept => write!(f, "accept"),
            Verdict::Drop => write!(f, "drop"),
            Verdict::Jump(c) => write!(f, "jump {c}"),
            Verdict::Masquerade => write!(f, "masquerade"),
        }
    }
}

/// `nft -f` syntax, for goldens and error messages.
impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "table inet {} {{", self.name)?;
        for k in &self.kept {
            writeln!(f, "\tchain {k} {{\n\t}}")?;
        }
        for c in &self.chains {
            writeln!(f, "\tchain {} {{", c.name)?;
            let policy = if c.drop { "drop" } else { "accept" };
            match c.hook {
                Some(Hook::Forward) => writeln!(
                    f,
                    "\t\ttype filter hook forward priority 0; policy {policy};"
                )?,
                Some(Hook::Postrouting) => writeln!(
                    f,
                    "\t\ttype nat hook postrouting priority 100; policy {policy};"
                )?,
                None => {}
            }
            for r in &c.rules {
                writeln!(f, "\t\t{r}")?;
            }
            writeln!(f, "\t}}")?;
        }
        write!(f, "}}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn br(name: &str, subnet: &str) -> Bridge {
        Bridge {
            name: name.into(),
            subnet: subnet.parse().expect("cidr"),
            internal: false,
            icc: true,
            masquerade: true,
        }
    }

    #[test]
    fn base_rules_without_networks() {
        assert_eq!(
            ruleset("wharf", &[], false).to_string(),
            "table inet wharf {
\tchain user {
\t}
\tchain forward {
\t\ttype filter hook forward priority 0; policy accept;
\t\tjump user
\t\tct state established,related accept
\t}
\tchain postrouting {
\t\ttype nat hook postrouting priority 100; policy accept;
\t}
}"
        );
    }

    #[test]
    fn bridges_internal_icc_and_masquerade() {
        let mut inner = br("br-inner", "10.1.0.0/24");
        inner.internal = true;
        let mut quiet = br("br-quiet", "10.2.0.0/24");
        quiet.icc = false;
        let mut plain = br("br-plain", "10.3.0.5/24");
        plain.masquerade = false;
        let t = ruleset(
            "wharf-x",
            &[br("wharf0", "172.17.0.0/16"), quiet, inner, plain],
            false,
        );
        let golden = "table inet wharf-x {
\tchain user {
\t}
\tchain forward {
\t\ttype filter hook forward priority 0; policy accept;
\t\tjump user
\t\tct state established,related accept
\t\tiifname \"br-inner\" oifname \"br-inner\" accept
\t\toifname \"br-inner\" drop
\t\tiifname \"br-inner\" drop
\t\tiifname \"br-plain\" oifname \"br-plain\" accept
\t\toifname \"br-plain\" drop
\t\tiifname \"br-quiet\" oifname \"br-quiet\" drop
\t\toifname \"br-quiet\" drop
\t\tiifname \"wharf0\" oifname \"wharf0\" accept
\t\toifname \"wharf0\" drop
\t}
\tchain postrouting {
\t\ttype nat hook postrouting priority 100; policy accept;
\t\tip saddr 10.2.0.0/24 oifname != \"br-quiet\" masquerade
\t\tip saddr 172.17.0.0/16 oifname != \"wharf0\" masquerade
\t}
}";
        assert_eq!(t.to_string(), golden);
    }

    #[test]
    fn drop_policy_accepts_only_the_bridges_own_traffic() {
        let mut inner = br("br-inner", "10.1.0.0/24");
        inner.internal = true;
        let t = ruleset("w", &[br("wharf0", "172.17.0.0/16"), inner], true).to_string();
        assert!(
            t.contains("type filter hook forward priority 0; policy drop;"),
            "{t}"
        );
        assert!(
            t.ends_with(
                "\t\toifname \"wharf0\" drop\n\t\tiifname \"wharf0\" accept
\t\tmeta nfproto ipv6 accept\n\t}
\tchain postrouting {
\t\ttype nat hook postrouting priority 100; policy accept;
\t\tip saddr 172.17.0.0/16 oifname != \"wharf0\" masquerade
\t}
}"
            ),
            "{t}"
        );
        assert!(!t.contains("iifname \"br-inner\" accept"), "{t}");
    }

    #[test]
    fn networks_map_to_bridges() {
        let mut n = crate::predefined("front", DriverKind::Bridge);
        assert_eq!(Bridge::of(&n), None, "no bridge yet");
        n.bridge = "br-1".into();
        n.subnet = Some("10.9.0.1/24".parse().expect("cidr"));
        n.options.insert(ICC.into(), "false".into());
        n.options.insert(IP_MASQ.into(), "0".into());
        let b = Bridge::of(&n).expect("bridge");
        assert_eq!(b.subnet.to_string(), "10.9.0.0/24");
        assert!(!b.icc && !b.masquerade && !b.internal);
        assert_eq!(
            Bridge::of(&crate::predefined("host", DriverKind::Host)),
            None
        );
        assert_eq!(table_name(""), "wharf");
        assert_eq!(table_name("wharf0"), "wharf");
        assert_eq!(table_name("wtb3"), "wharf-wtb3");
        let mut o = std::collections::BTreeMap::new();
        o.insert(ICC.to_string(), "True".to_string());
        assert!(validate_options(&o).is_ok());
        o.insert(IP_MASQ.to_string(), "maybe".to_string());
        assert_eq!(
            validate_options(&o).expect_err("maybe").to_string(),
            "failed to parse com.docker.network.bridge.enable_ip_masquerade value: maybe \
             (strconv.ParseBool: parsing \"maybe\": invalid syntax)"
        );
    }
}
