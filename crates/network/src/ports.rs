//! Published ports: the API's `PortBindings`/`PublishAllPorts` parsed into requests, host
//! ports held by real bound sockets (so "port is already allocated" comes from the kernel,
//! and `-P` gets an ephemeral port from `ip_local_port_range` as bind(2) hands them out), and
//! a userland proxy relaying each socket to the container's address (it answers on 127.0.0.1
//! without `route_localnet`, as docker-proxy does).

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::error::NetworkError;
use crate::model::{PortMapping, Proto};

/// Concurrent TCP connections relayed per published port.
pub const MAX_TCP_CONNS: usize = 4096;
/// Concurrent UDP peers relayed per published port.
pub const MAX_UDP_FLOWS: usize = 1024;
/// A UDP flow idle this long is dropped (docker-proxy's 90 s).
const UDP_IDLE: Duration = Duration::from_secs(90);

/// One port to publish, as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRequest {
    /// Protocol.
    pub proto: Proto,
    /// Port in the container.
    pub container_port: u16,
    /// Host address; `None` means the daemon's default (`ip`, 0.0.0.0).
    pub host_ip: Option<Ipv4Addr>,
    /// Host port range; `None` means ephemeral.
    pub host_ports: Option<(u16, u16)>,
}

fn bad(s: &str) -> NetworkError {
    NetworkError::InvalidPort(format!("invalid port specification: \"{s}\""))
}

fn port(s: &str) -> Result<u16, NetworkError> {
    match s.parse::<u16>() {
        Ok(p) if p > 0 && !s.starts_with('+') => Ok(p),
        _ => Err(bad(s)),
    }
}

fn port_range(s: &str) -> Result<(u16, u16), NetworkError> {
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => (port(s)?, port(s)?),
    };
    if b < a {
        return Err(NetworkError::InvalidPort(format!(
            "invalid range specified for container port: \"{s}\""
        )));
    }
    Ok((a, b))
}

/// `80`, `80/udp` into (proto, port).
fn parse_key(key: &str) -> Result<(Proto, u16), NetworkError> {
    let (p, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let proto = match proto.to_ascii_lowercase().as_str() {
        "tcp" | "" => Proto::Tcp,
        "udp" => Proto::Udp,
        "sctp" => Proto::Sctp,
        _ => return Err(NetworkError::InvalidPort(format!("invalid proto: {proto}"))),
    };
    Ok((proto, port(p)?))
}

/// The requests in a container's `PortBindings`, plus an ephemeral one for every exposed port
/// without a binding when `publish_all` (`-P`).
pub fn requests<'a>(
    bindings: Option<&BTreeMap<String, serde_json::Value>>,
    publish_all: bool,
    exposed: impl Iterator<Item = &'a str>,
) -> Result<Vec<PortRequest>, NetworkError> {
    let mut out = Vec::new();
    for (key, v) in bindings.into_iter().flatten() {
        let (proto, container_port) = parse_key(key)?;
        let list: Vec<&serde_json::Value> = match v {
            serde_json::Value::Array(a) if !a.is_empty() => a.iter().collect(),
            _ => vec![&serde_json::Value::Null],
        };
        for b in list {
            let ip = b.get("HostIp").and_then(|v| v.as_str()).unwrap_or("");
            let hp = b.get("HostPort").and_then(|v| v.as_str()).unwrap_or("");
            let host_ip = match ip {
                "" => None,
                s => match s.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
                    Ok(std::net::IpAddr::V4(a)) => Some(a),
                    Ok(std::net::IpAddr::V6(_)) => {
                        return Err(NetworkError::NotSupported(format!(
                            "publishing on the IPv6 address {s} is not supported"
                        )))
                    }
                    Err(_) => {
                        return Err(NetworkError::InvalidPort(format!(
                            "invalid IP address: {s}"
                        )))
                    }
                },
            };
            let host_ports = if hp.is_empty() {
                None
            } else {
                Some(port_range(hp)?)
            };
            if proto == Proto::Sctp {
                return Err(NetworkError::NotSupported(
                    "publishing sctp ports is not supported".into(),
                ));
            }
            out.push(PortRequest {
                proto,
                container_port,
                host_ip,
                host_ports,
            });
        }
    }
    if publish_all {
        for key in exposed {
            let (proto, container_port) = parse_key(key)?;
            let bound = out
                .iter()
                .any(|r| r.proto == proto && r.container_port == container_port);
            if !bound && proto != Proto::Sctp {
                out.push(PortRequest {
                    proto,
                    container_port,
                    host_ip: None,
                    host_ports: None,
                });
            }
        }
    }
    out.sort_by_key(|r| (r.container_port, r.proto));
    Ok(out)
}

/// A host socket held for one mapping.
#[derive(Debug)]
pub enum Held {
    /// A listening TCP socket.
    Tcp(std::net::TcpListener),
    /// A bound UDP socket.
    Udp(std::net::UdpSocket),
}

/// A mapping whose host port is held.
#[derive(Debug)]
pub struct BoundPort {
    /// What it maps.
    pub mapping: PortMapping,
    /// The socket.
    pub sock: Held,
}

fn bind_one(proto: Proto, addr: SocketAddrV4) -> io::Result<(Held, u16)> {
    match proto {
        Proto::Tcp => {
            let l = std::net::TcpListener::bind(addr)?;
            let p = l.local_addr()?.port();
            Ok((Held::Tcp(l), p))
        }
        Proto::Udp => {
            let s = std::net::UdpSocket::bind(addr)?;
            let p = s.local_addr()?.port();
            Ok((Held::Udp(s), p))
        }
        Proto::Sctp => Err(io::Error::from(io::ErrorKind::Unsupported)),
    }
}

/// Binds the host side of `r`: the first free port of its range, or an ephemeral one.
/// `name` and `endpoint` go into dockerd's error message.
pub fn bind(
    r: &PortRequest,
    default_ip: Ipv4Addr,
    name: &str,
    endpoint: &str,
) -> Result<BoundPort, NetworkError> {
    let ip = r.host_ip.unwrap_or(default_ip);
    let (lo, hi) = r.host_ports.unwrap_or((0, 0));
    let mut last = None;
    for p in lo..=hi {
        match bind_one(r.proto, SocketAddrV4::new(ip, p)) {
            Ok((sock, host_port)) => {
                return Ok(BoundPort {
                    mapping: PortMapping {
                        proto: r.proto,
                        container_port: r.container_port,
                        host_ip: ip,
                        host_port,
                    },
                    sock,
                })
            }
            Err(e) => last = Some((p, e)),
        }
    }
    let (p, e) = last.unwrap_or((lo, io::Error::from(io::ErrorKind::AddrInUse)));
    let addr = format!("{ip}:{p}");
    if e.kind() == io::ErrorKind::AddrInUse {
        Err(NetworkError::PortAllocated {
            name: name.to_string(),
            endpoint: endpoint.to_string(),
            addr,
        })
    } else {
        Err(NetworkError::PortBind {
            name: name.to_string(),
            endpoint: endpoint.to_string(),
            addr,
            source: e,
        })
    }
}

/// Binds an already chosen mapping again (after a daemon restart).
pub fn rebind(m: &PortMapping) -> io::Result<BoundPort> {
    let (sock, _) = bind_one(m.proto, SocketAddrV4::new(m.host_ip, m.host_port))?;
    Ok(BoundPort {
        mapping: m.clone(),
        sock,
    })
}

/// Relays a held port to `target` on the current tokio runtime until the task is aborted.
pub fn serve(bp: BoundPort, target: Ipv4Addr) -> io::Result<JoinHandle<()>> {
    let to = SocketAddr::V4(SocketAddrV4::new(target, bp.mapping.container_port));
    match bp.sock {
        Held::Tcp(l) => {
            l.set_nonblocking(true)?;
            let l = TcpListener::from_std(l)?;
            Ok(tokio::spawn(relay_tcp(l, to)))
        }
        Held::Udp(s) => {
            s.set_nonblocking(true)?;
            let s = UdpSocket::from_std(s)?;
            Ok(tokio::spawn(relay_udp(Arc::new(s), to)))
        }
    }
}

async fn relay_tcp(l: TcpListener, to: SocketAddr) {
    let limit = Arc::new(Semaphore::new(MAX_TCP_CONNS));
    loop {
        let Ok(permit) = limit.clone().acquire_owned().await else {
            return;
        };
        let Ok((mut client, _)) = l.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let _permit = permit;
            if let Ok(mut upstream) = TcpStream::connect(to).await {
                let _ = client.set_nodelay(true);
                let _ = upstream.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }
        });
    }
}

async fn relay_udp(host: Arc<UdpSocket>, to: SocketAddr) {
    let mut flows: BTreeMap<SocketAddr, Arc<UdpSocket>> = BTreeMap::new();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<SocketAddr>();
    let mut buf = vec![0u8; 65536];
    loop {
        tokio::select! {
            Some(peer) = done_rx.recv() => { flows.remove(&peer); }
            r = host.recv_from(&mut buf) => {
                let Ok((n, peer)) = r else { continue };
                let flow = match flows.get(&peer) {
                    Some(f) => f.clone(),
                    None if flows.len() >= MAX_UDP_FLOWS => continue,
                    None => {
                        let Ok(s) = UdpSocket::bind("0.0.0.0:0").await else { continue };
                        if s.connect(to).await.is_err() {
                            continue;
                        }
                        let s = Arc::new(s);
                        flows.insert(peer, s.clone());
                        let (back, host, done) = (s.clone(), host.clone(), done_tx.clone());
                        tokio::spawn(async move {
                            let mut b = vec![0u8; 65536];
                            while let Ok(Ok(n)) =
                                tokio::time::timeout(UDP_IDLE, back.recv(&mut b)).await
                            {
                                let _ = host.send_to(&b[..n], peer).await;
                            }
                            let _ = done.send(peer);
                        });
                        s
                    }
                };
                let _ = flow.send(&buf[..n]).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b(v: serde_json::Value) -> BTreeMap<String, serde_json::Value> {
        serde_json::from_value(v).expect("map")
    }

    #[test]
    fn parses_bindings_and_publish_all() {
        let m = b(json!({
            "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}],
            "53/udp": [{"HostIp": "", "HostPort": "5300-5310"}],
            "90": null,
        }));
        let r = requests(Some(&m), true, ["80/tcp", "443/tcp"].into_iter()).expect("ok");
        assert_eq!(
            r,
            vec![
                PortRequest {
                    proto: Proto::Udp,
                    container_port: 53,
                    host_ip: None,
                    host_ports: Some((5300, 5310)),
                },
                PortRequest {
                    proto: Proto::Tcp,
                    container_port: 80,
                    host_ip: Some(Ipv4Addr::LOCALHOST),
                    host_ports: Some((8080, 8080)),
                },
                PortRequest {
                    proto: Proto::Tcp,
                    container_port: 90,
                    host_ip: None,
                    host_ports: None,
                },
                PortRequest {
                    proto: Proto::Tcp,
                    container_port: 443,
                    host_ip: None,
                    host_ports: None,
                },
            ]
        );
    }

    #[test]
    fn refuses_malformed_bindings() {
        for (k, v) in [
            ("0/tcp", json!(null)),
            ("x/tcp", json!(null)),
            ("80/icmp", json!(null)),
            ("80/tcp", json!([{"HostPort": "99999"}])),
            ("80/tcp", json!([{"HostPort": "90-80"}])),
            ("80/tcp", json!([{"HostIp": "nope", "HostPort": "1"}])),
        ] {
            let m = b(json!({ k: v }));
            let e = requests(Some(&m), false, std::iter::empty()).expect_err(k);
            assert!(matches!(e, NetworkError::InvalidPort(_)), "{k} {v}: {e}");
        }
        let m = b(json!({"80/sctp": null}));
        assert!(matches!(
            requests(Some(&m), false, std::iter::empty()),
            Err(NetworkError::NotSupported(_))
        ));
    }

    #[test]
    fn a_held_port_is_refused_with_dockers_message() {
        let r = PortRequest {
            proto: Proto::Tcp,
            container_port: 80,
            host_ip: Some(Ipv4Addr::LOCALHOST),
            host_ports: None,
        };
        let first = bind(&r, Ipv4Addr::UNSPECIFIED, "web", "e1").expect("ephemeral");
        assert_ne!(first.mapping.host_port, 0);
        let again = PortRequest {
            host_ports: Some((first.mapping.host_port, first.mapping.host_port)),
            ..r.clone()
        };
        let e = bind(&again, Ipv4Addr::UNSPECIFIED, "web", "e1").expect_err("in use");
        assert_eq!(
            e.to_string(),
            format!(
                "driver failed programming external connectivity on endpoint web (e1): Bind for 127.0.0.1:{} failed: port is already allocated",
                first.mapping.host_port
            )
        );
        drop(first);
        assert!(bind(&again, Ipv4Addr::UNSPECIFIED, "web", "e1").is_ok());
    }

    #[tokio::test]
    async fn relays_tcp_to_the_target() {
        let backend = std::net::TcpListener::bind("127.0.0.1:0").expect("backend");
        let bport = backend.local_addr().expect("addr").port();
        let bp = bind(
            &PortRequest {
                proto: Proto::Tcp,
                container_port: bport,
                host_ip: Some(Ipv4Addr::LOCALHOST),
                host_ports: None,
            },
            Ipv4Addr::UNSPECIFIED,
            "x",
            "e",
        )
        .expect("bind");
        let hport = bp.mapping.host_port;
        let task = serve(bp, Ipv4Addr::LOCALHOST).expect("serve");
        let srv = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let (mut s, _) = backend.accept().expect("accept");
            let mut b = [0u8; 4];
            s.read_exact(&mut b).expect("read");
            s.write_all(&b).expect("echo");
        });
        let mut c = TcpStream::connect(("127.0.0.1", hport))
            .await
            .expect("connect");
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        c.write_all(b"ping").await.expect("write");
        let mut got = [0u8; 4];
        c.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"ping");
        srv.join().expect("server");
        task.abort();
    }
}
