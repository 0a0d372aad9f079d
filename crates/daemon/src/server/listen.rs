//! Listeners: `unix://` sockets (mode 0660, group-owned) and `tcp://` with rustls (mutual TLS
//! with `--tlsverify`). Plain TCP only with an explicit `--tls=false`.

use std::fs;
use std::io::BufReader;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use wharf_errdefs::{Classify, ErrorKind};

use super::conns::{ConnHandle, Tracked, Tracker, HEADER_READ_TIMEOUT, MAX_HEADER_BYTES};
use crate::config::TlsConfig;
use crate::wiring::Daemon;

/// Errors setting up a listener.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The address is not usable.
    #[error("invalid listen address {0:?}")]
    InvalidAddress(String),
    /// Plain TCP without `--tls=false`.
    #[error("refusing to listen on {0} without TLS: use --tlsverify (or --tls=false to accept unauthenticated remote root access)")]
    InsecureTcp(String),
    /// Binding or socket setup failed.
    #[error("listening on {addr}: {source}")]
    Io {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// Certificates or keys could not be loaded.
    #[error("TLS setup: {0}")]
    Tls(String),
}

impl Classify for ListenError {
    fn kind(&self) -> ErrorKind {
        match self {
            ListenError::Io { .. } => ErrorKind::Internal,
            _ => ErrorKind::InvalidArgument,
        }
    }
}

/// A bound listener, ready to serve.
pub enum Listener {
    /// A unix socket (the path is removed on shutdown).
    Unix(UnixListener, PathBuf),
    /// TCP, with TLS unless explicitly insecure.
    Tcp(TcpListener, Option<TlsAcceptor>),
}

/// Binds one `-H` address.
pub fn bind(
    addr: &str,
    group: &str,
    tls: Option<&TlsConfig>,
    insecure_tcp: bool,
) -> Result<Listener, ListenError> {
    let io = |source| ListenError::Io {
        addr: addr.to_string(),
        source,
    };
    if let Some(path) = addr.strip_prefix("unix://") {
        let path = Path::new(if path.is_empty() {
            "/run/wharf.sock"
        } else {
            path
        });
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io)?;
        }
        // A socket left by a crashed daemon would make bind fail with EADDRINUSE.
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        let l = UnixListener::bind(path).map_err(io)?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o660)).map_err(io)?;
        match group_id(Path::new("/etc/group"), group) {
            Some(gid) => nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(gid)))
                .map_err(|e| io(e.into()))?,
            None => tracing::warn!(group, "socket group not found; socket stays root-owned"),
        }
        return Ok(Listener::Unix(l, path.to_path_buf()));
    }
    if let Some(hostport) = addr.strip_prefix("tcp://") {
        let acceptor = match tls {
            Some(t) => Some(tls_acceptor(t)?),
            None if insecure_tcp => {
                tracing::warn!(
                    addr,
                    "listening on TCP WITHOUT TLS: anyone who can connect is root on this host"
                );
                None
            }
            None => return Err(ListenError::InsecureTcp(addr.to_string())),
        };
        let hostport = if hostport.contains(':') {
            hostport.to_string()
        } else {
            format!("{hostport}:2376")
        };
        let std_l = std::net::TcpListener::bind(&hostport).map_err(io)?;
        std_l.set_nonblocking(true).map_err(io)?;
        let l = TcpListener::from_std(std_l).map_err(io)?;
        return Ok(Listener::Tcp(l, acceptor));
    }
    Err(ListenError::InvalidAddress(addr.to_string()))
}

/// A group's gid from a numeric string or the group file. Parsed by hand: the binary is
/// static, and glibc's NSS lookups (getgrnam) crash in static binaries.
fn group_id(group_file: &Path, group: &str) -> Option<u32> {
    if let Ok(gid) = group.parse() {
        return Some(gid);
    }
    let text = fs::read_to_string(group_file).ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == group).then_some(())?;
        f.nth(1)?.parse().ok()
    })
}

fn tls_acceptor(t: &TlsConfig) -> Result<TlsAcceptor, ListenError> {
    let terr = |m: String| ListenError::Tls(m);
    let read = |p: &Path| {
        fs::File::open(p)
            .map(BufReader::new)
            .map_err(|e| terr(format!("{}: {e}", p.display())))
    };
    let certs = rustls_pemfile::certs(&mut read(&t.cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| terr(format!("{}: {e}", t.cert.display())))?;
    let key = rustls_pemfile::private_key(&mut read(&t.key)?)
        .map_err(|e| terr(format!("{}: {e}", t.key.display())))?
        .ok_or_else(|| terr(format!("{}: no private key", t.key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| terr(e.to_string()))?;
    let builder = match (&t.ca, t.verify) {
        (Some(ca), true) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in rustls_pemfile::certs(&mut read(ca)?) {
                let c = c.map_err(|e| terr(format!("{}: {e}", ca.display())))?;
                roots
                    .add(c)
                    .map_err(|e| terr(format!("{}: {e}", ca.display())))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| terr(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| terr(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// Accepts connections until `stop` turns true; each connection is served on its own task,
/// within the bounds of [`conns`] (shared by all listeners through `tracker`).
pub async fn serve(
    l: Listener,
    daemon: Arc<Daemon>,
    tracker: Arc<Tracker>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            conn = accept(&l) => match conn {
                Ok(conn) => {
                    let Some(handle) = tracker.admit() else {
                        // Every connection is busy: refuse this one by closing it.
                        tracing::warn!("API connection refused: {} busy connections", tracker.open());
                        continue;
                    };
                    let d = daemon.clone();
                    match conn {
                        Conn::Unix(s) => spawn_conn(s, d, handle),
                        Conn::Tcp(s, None) => spawn_conn(s, d, handle),
                        Conn::Tcp(s, Some(acc)) => {
                            tokio::spawn(async move {
                                // The handshake is part of the head's time budget.
                                match tokio::time::timeout(HEADER_READ_TIMEOUT, acc.accept(s)).await {
                                    Ok(Ok(tls)) => serve_conn(tls, d, handle).await,
                                    Ok(Err(e)) => tracing::debug!("TLS handshake failed: {e}"),
                                    Err(_) => tracing::debug!("TLS handshake timed out"),
                                }
                            });
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    // EMFILE and friends: back off instead of spinning.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }
    if let Listener::Unix(_, path) = &l {
        let _ = fs::remove_file(path);
    }
}

enum Conn {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream, Option<TlsAcceptor>),
}

async fn accept(l: &Listener) -> std::io::Result<Conn> {
    match l {
        Listener::Unix(u, _) => Ok(Conn::Unix(u.accept().await?.0)),
        Listener::Tcp(t, acc) => Ok(Conn::Tcp(t.accept().await?.0, acc.clone())),
    }
}

/// The HTTP/1 settings of every API connection. The header-read timeout needs the timer:
/// without one hyper silently ignores it.
fn http1(header_timeout: std::time::Duration) -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_header_size(MAX_HEADER_BYTES);
    b
}

fn spawn_conn<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    s: S,
    daemon: Arc<Daemon>,
    handle: ConnHandle,
) {
    tokio::spawn(serve_conn(s, daemon, handle));
}

async fn serve_conn<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    s: S,
    daemon: Arc<Daemon>,
    handle: ConnHandle,
) {
    let handle = Arc::new(handle);
    let h = handle.clone();
    let svc = service_fn(move |req| {
        let busy = h.request();
        let d = daemon.clone();
        async move {
            let resp = super::handle(d, req).await?;
            Ok::<_, std::convert::Infallible>(resp.map(|b| Tracked::new(b, busy)))
        }
    });
    let conn = http1(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(s), svc)
        .with_upgrades();
    tokio::select! {
        r = conn => if let Err(e) = r {
            tracing::debug!("connection ended: {e}");
        },
        // Dropping the connection closes it.
        () = handle.evicted() => tracing::debug!("idle connection closed at the connection cap"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unix_socket_is_0660_and_replaces_stale_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("d.sock");
        fs::write(&p, b"stale").expect("stale");
        let addr = format!("unix://{}", p.display());
        let l = bind(&addr, "wharf-no-such-group", None, false).expect("bind");
        let mode = fs::metadata(&p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        assert!(matches!(l, Listener::Unix(..)));
    }

    #[tokio::test]
    async fn silent_and_idle_connections_are_closed_at_the_header_timeout() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let timeout = std::time::Duration::from_millis(200);
        let serve = |io| {
            let svc = service_fn(|_req| async {
                Ok::<_, std::convert::Infallible>(hyper::Response::new(String::from("ok")))
            });
            tokio::spawn(http1(timeout).serve_connection(TokioIo::new(io), svc))
        };
        // Never sends a byte.
        let (_client, server) = tokio::io::duplex(4096);
        let conn = serve(server);
        tokio::time::timeout(timeout * 10, conn)
            .await
            .expect("a silent connection is closed")
            .expect("join")
            .expect_err("closed by the header-read timeout");
        // Kept alive after one request, then idle.
        let (mut client, server) = tokio::io::duplex(4096);
        let conn = serve(server);
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let mut buf = vec![0u8; 1024];
        let n = client.read(&mut buf).await.expect("read");
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        tokio::time::timeout(timeout * 10, conn)
            .await
            .expect("an idle kept-alive connection is closed")
            .expect("join")
            .expect_err("closed by the header-read timeout");
    }

    #[test]
    fn group_lookup() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("group");
        fs::write(&f, "root:x:0:\ndocker:x:998:alice\n").expect("w");
        assert_eq!(group_id(&f, "docker"), Some(998));
        assert_eq!(group_id(&f, "42"), Some(42));
        assert_eq!(group_id(&f, "nope"), None);
    }

    #[tokio::test]
    async fn plain_tcp_is_refused_unless_forced() {
        assert!(matches!(
            bind("tcp://127.0.0.1:0", "x", None, false),
            Err(ListenError::InsecureTcp(_))
        ));
        assert!(matches!(
            bind("tcp://127.0.0.1:0", "x", None, true),
            Ok(Listener::Tcp(_, None))
        ));
        assert!(matches!(
            bind("udp://x", "x", None, true),
            Err(ListenError::InvalidAddress(_))
        ));
        let bad = TlsConfig {
            verify: false,
            ca: None,
            cert: "/nonexistent".into(),
            key: "/nonexistent".into(),
        };
        assert!(matches!(
            bind("tcp://127.0.0.1:0", "x", Some(&bad), false),
            Err(ListenError::Tls(_))
        ));
    }
}
