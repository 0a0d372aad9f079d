//! The embedded DNS resolver of user-defined networks, Docker's model: a socket on
//! 127.0.0.11:53 inside each container's namespace, answering with the containers (names,
//! aliases, short ids) on the networks the asking container shares, and forwarding every other
//! query to the upstream servers from the daemon's namespace. Messages go through
//! hickory-proto; lookups are a pure function of the state.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::net::UdpSocket;

use crate::model::Endpoint;
use crate::store::State;

/// The resolver's address in every container.
pub const RESOLVER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);
/// How long an upstream has to answer.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);
/// TTL of our own answers (Docker's 600 s).
const TTL: u32 = 600;

/// What a name means to `asker` (a container id): `Some(addresses)` when the name is a
/// container, alias or short id on a user-defined network `asker` is on, or the alias of one
/// of `asker`'s links there (an empty list is impossible), `None` when it is not ours and
/// should be forwarded.
pub fn lookup(st: &State, asker: &str, name: &str) -> Option<Vec<Ipv4Addr>> {
    endpoints(st, asker, name).map(|eps| eps.iter().map(|e| e.ip).collect())
}

/// The endpoints a name means to `asker`, each once, as [`lookup`] explains.
fn endpoints<'a>(st: &'a State, asker: &str, name: &str) -> Option<Vec<&'a Endpoint>> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let mine = st.sandboxes.get(asker)?;
    let mut out = Vec::new();
    for ep in &mine.endpoints {
        let Some(net) = st.networks.get(&ep.network_id) else {
            continue;
        };
        if net.name == "bridge" {
            continue;
        }
        // `--link target:alias` makes `alias` name `target` for the linking container only.
        let linked: Vec<&str> = st
            .config(asker, &net.id)
            .into_iter()
            .flat_map(|c| &c.links)
            .filter_map(|l| {
                let (target, alias) = l.split_once(':').unwrap_or((l, l));
                alias.eq_ignore_ascii_case(&name).then_some(target)
            })
            .collect();
        for sb in st.sandboxes.values() {
            let aliases = st
                .config(&sb.container_id, &net.id)
                .into_iter()
                .flat_map(|c| &c.aliases);
            let hit = sb.name.eq_ignore_ascii_case(&name)
                || (!sb.hostname.is_empty() && sb.hostname.eq_ignore_ascii_case(&name))
                || sb.container_id.get(..12) == Some(name.as_str())
                || linked
                    .iter()
                    .any(|t| sb.name.eq_ignore_ascii_case(t.trim_start_matches('/')))
                || aliases.into_iter().any(|a| a.eq_ignore_ascii_case(&name));
            if !hit {
                continue;
            }
            for e in sb.endpoints.iter().filter(|e| e.network_id == net.id) {
                if !out.iter().any(|o: &&Endpoint| o.ip == e.ip) {
                    out.push(e);
                }
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Our answer to `query`, or `None` to forward it.
pub fn answer(st: &State, asker: &str, query: &Message) -> Option<Message> {
    let q = query.queries().first()?;
    if query.queries().len() != 1 || !matches!(q.query_type(), RecordType::A | RecordType::AAAA) {
        return None;
    }
    let eps = endpoints(st, asker, &q.name().to_ascii())?;
    let mut m = Message::new();
    m.set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(query.op_code())
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(true)
        .set_authoritative(true)
        .set_response_code(ResponseCode::NoError)
        .add_query(q.clone());
    // A container without the asked family gets an empty NOERROR: the name is ours.
    for e in eps {
        let data = match q.query_type() {
            RecordType::A => RData::A(e.ip.into()),
            _ => match e.ip6 {
                Some(ip6) => RData::AAAA(ip6.into()),
                None => continue,
            },
        };
        m.add_answer(Record::from_rdata(q.name().clone(), TTL, data));
    }
    Some(m)
}

fn servfail(query: &Message) -> Option<Vec<u8>> {
    let mut m = Message::new();
    m.set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(query.op_code())
        .set_recursion_desired(query.recursion_desired())
        .set_response_code(ResponseCode::ServFail);
    for q in query.queries() {
        m.add_query(q.clone());
    }
    m.to_vec().ok()
}

async fn forward(raw: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    for up in upstreams {
        let bind = if up.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
        let Ok(s) = UdpSocket::bind(bind).await else {
            continue;
        };
        if s.connect(up).await.is_err() || s.send(raw).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 4096];
        if let Ok(Ok(n)) = tokio::time::timeout(UPSTREAM_TIMEOUT, s.recv(&mut buf)).await {
            buf.truncate(n);
            return Some(buf);
        }
    }
    None
}

/// Serves `sock` (bound to 127.0.0.11:53 in `asker`'s namespace) until aborted.
pub async fn serve(
    sock: std::net::UdpSocket,
    state: Arc<Mutex<State>>,
    asker: String,
    upstreams: Vec<SocketAddr>,
) {
    let Ok(()) = sock.set_nonblocking(true) else {
        return;
    };
    let Ok(sock) = UdpSocket::from_std(sock) else {
        return;
    };
    let sock = Arc::new(sock);
    let upstreams = Arc::new(upstreams);
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let raw = buf[..n].to_vec();
        let Ok(query) = Message::from_vec(&raw) else {
            continue;
        };
        let ours = {
            let st = state.lock().unwrap_or_else(|p| p.into_inner());
            answer(&st, &asker, &query)
        };
        match ours.and_then(|m| m.to_vec().ok()) {
            Some(reply) => {
                let _ = sock.send_to(&reply, peer).await;
            }
            None => {
                let (sock, ups) = (sock.clone(), upstreams.clone());
                tokio::spawn(async move {
                    let reply = match forward(&raw, &ups).await {
                        Some(r) => Some(r),
                        None => servfail(&query),
                    };
                    if let Some(r) = reply {
                        let _ = sock.send_to(&r, peer).await;
                    }
                });
            }
        }
    }
}

/// The nameservers of a resolv.conf text, as upstream addresses (port 53).
pub fn nameservers(resolv_conf: &str) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|v| v.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;

    use super::*;
    use crate::model::{Attachment, DriverKind, EndpointConfig, Network, Sandbox};

    fn net(id: &str, name: &str) -> Network {
        Network {
            id: id.into(),
            name: name.into(),
            driver: DriverKind::Bridge,
            created: String::new(),
            subnet: None,
            gateway: None,
            ip_range: None,
            aux: BTreeMap::new(),
            subnet6: None,
            gateway6: None,
            last_ip6: None,
            bridge: String::new(),
            parent: String::new(),
            owns_parent: false,
            mtu: 0,
            labels: BTreeMap::new(),
            options: BTreeMap::new(),
            last_ip: None,
            internal: false,
            attachable: false,
            user_subnet: false,
        }
    }

    fn sb(id: &str, name: &str, eps: &[(&str, [u8; 4])]) -> Sandbox {
        Sandbox {
            container_id: id.into(),
            name: name.into(),
            key: String::new(),
            hostname: String::new(),
            dns: vec![],
            endpoints: eps
                .iter()
                .map(|(n, ip)| Endpoint {
                    id: String::new(),
                    network_id: n.to_string(),
                    ip: Ipv4Addr::from(*ip),
                    ip6: None,
                    mac: String::new(),
                    host_ifname: String::new(),
                    ifname: String::new(),
                    ports: vec![],
                })
                .collect(),
        }
    }

    fn state() -> State {
        let mut st = State::default();
        for n in [net("nA", "app"), net("nB", "other"), net("nD", "bridge")] {
            st.networks.insert(n.id.clone(), n);
        }
        let c = |s: Sandbox| (s.container_id.clone(), s);
        st.sandboxes.extend([
            c(sb("aaaaaaaaaaaa1", "web", &[("nA", [10, 0, 0, 2])])),
            c(sb(
                "bbbbbbbbbbbb1",
                "db",
                &[("nA", [10, 0, 0, 3]), ("nB", [10, 1, 0, 3])],
            )),
            c(sb("cccccccccccc1", "lonely", &[("nB", [10, 1, 0, 4])])),
            c(sb("dddddddddddd1", "def", &[("nD", [172, 17, 0, 2])])),
            c(sb("eeeeeeeeeeee1", "def2", &[("nD", [172, 17, 0, 3])])),
        ]);
        let attach = |net: &str, aliases: &[&str], links: &[&str]| Attachment {
            network_id: net.into(),
            config: EndpointConfig {
                aliases: aliases.iter().map(|a| a.to_string()).collect(),
                ipv4: None,
                ipv6: None,
                links: links.iter().map(|a| a.to_string()).collect(),
                mac: None,
            },
        };
        st.attachments.insert(
            "bbbbbbbbbbbb1".into(),
            vec![attach("nA", &["database"], &[])],
        );
        st.attachments.insert(
            "aaaaaaaaaaaa1".into(),
            vec![attach("nA", &[], &["/db:store"])],
        );
        st
    }

    #[test]
    fn names_aliases_and_ids_on_shared_networks_only() {
        let st = state();
        let ip = |a: [u8; 4]| Some(vec![Ipv4Addr::from(a)]);
        assert_eq!(lookup(&st, "aaaaaaaaaaaa1", "db"), ip([10, 0, 0, 3]));
        assert_eq!(lookup(&st, "aaaaaaaaaaaa1", "DataBase."), ip([10, 0, 0, 3]));
        assert_eq!(
            lookup(&st, "aaaaaaaaaaaa1", "bbbbbbbbbbbb"),
            ip([10, 0, 0, 3])
        );
        assert_eq!(
            lookup(&st, "aaaaaaaaaaaa1", "lonely"),
            None,
            "not on a shared network"
        );
        assert_eq!(lookup(&st, "cccccccccccc1", "db"), ip([10, 1, 0, 3]));
        assert_eq!(
            lookup(&st, "cccccccccccc1", "database"),
            None,
            "alias is per network"
        );
        assert_eq!(
            lookup(&st, "dddddddddddd1", "def2"),
            None,
            "the default bridge has no DNS"
        );
        assert_eq!(lookup(&st, "aaaaaaaaaaaa1", "example.org"), None);
        assert_eq!(lookup(&st, "aaaaaaaaaaaa1", "store"), ip([10, 0, 0, 3]));
        assert_eq!(
            lookup(&st, "bbbbbbbbbbbb1", "store"),
            None,
            "a link names its target for the linking container only"
        );
    }

    #[test]
    fn answers_a_and_empty_aaaa_and_forwards_the_rest() {
        let st = state();
        let q = |name: &str, t| {
            let mut m = Message::new();
            m.set_id(7).set_recursion_desired(true);
            m.add_query(Query::query(Name::from_ascii(name).expect("name"), t));
            Message::from_vec(&m.to_vec().expect("encode")).expect("decode")
        };
        let a = answer(&st, "aaaaaaaaaaaa1", &q("db.", RecordType::A)).expect("ours");
        assert_eq!(a.id(), 7);
        assert_eq!(a.answers().len(), 1);
        assert_eq!(
            a.answers()[0].data(),
            &RData::A(Ipv4Addr::new(10, 0, 0, 3).into())
        );
        let aaaa = answer(&st, "aaaaaaaaaaaa1", &q("db.", RecordType::AAAA)).expect("ours");
        assert_eq!(
            (aaaa.response_code(), aaaa.answers().len()),
            (ResponseCode::NoError, 0)
        );
        let mut st6 = st.clone();
        for sb in st6.sandboxes.values_mut() {
            for e in &mut sb.endpoints {
                let o = e.ip.octets();
                e.ip6 = Some(std::net::Ipv6Addr::new(
                    0xfd00,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    u16::from(o[3]),
                ));
            }
        }
        let aaaa = answer(&st6, "aaaaaaaaaaaa1", &q("db.", RecordType::AAAA)).expect("ours");
        assert_eq!(
            aaaa.answers()[0].data(),
            &RData::AAAA("fd00::3".parse::<std::net::Ipv6Addr>().expect("ip").into())
        );
        assert!(answer(&st, "aaaaaaaaaaaa1", &q("example.org.", RecordType::A)).is_none());
        assert!(answer(&st, "aaaaaaaaaaaa1", &q("db.", RecordType::MX)).is_none());
    }

    #[test]
    fn resolv_conf_nameservers() {
        let ns =
            nameservers("# x\nnameserver 10.0.0.1\nnameserver ::1\nsearch a\nnameserver bad\n");
        assert_eq!(
            ns,
            vec![
                "10.0.0.1:53".parse().expect("addr"),
                "[::1]:53".parse().expect("addr")
            ]
        );
    }
}
