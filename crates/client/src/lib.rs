//! Docker Engine API client for Wharf: blocking, one connection per request, over a unix socket,
//! TCP or mutual TLS.
//!
//! ```no_run
//! use wharf_client::{Client, Host, Query};
//! let mut client = Client::new(Host::parse("unix:///run/wharf.sock")?, None)?;
//! client.negotiate_version()?;
//! let list: serde_json::Value = client.get_json("/containers/json", &Query::new())?;
//! # Ok::<(), wharf_client::ClientError>(())
//! ```
#![forbid(unsafe_code)]

mod conn;
mod error;
mod http;
mod stream;
mod tls;

use std::io::{BufReader, Read};
use std::path::PathBuf;
use std::sync::Arc;

use serde::de::DeserializeOwned;

pub use conn::Conn;
pub use error::ClientError;
pub use http::{encode_component, Body, Head, Query, RequestBody};
pub use stream::{copy_multiplexed, Hijacked, JsonStream};
pub use tls::TlsOptions;

/// The newest API version this client speaks (the one the shared API model describes);
/// negotiation never goes above it.
pub const MAX_API_VERSION: wharf_api_types::ApiVersion = wharf_api_types::version::MAX_API_VERSION;
/// Where the daemon listens when nothing says otherwise.
pub const DEFAULT_HOST: &str = "unix:///run/wharf.sock";

/// Where the daemon is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A unix socket path.
    Unix(PathBuf),
    /// `host:port` over TCP.
    Tcp(String),
}

impl Host {
    /// Parses Docker's host syntax: `unix:///path`, `tcp://host[:port]`, or a bare `/path`.
    /// A TCP host without a port gets 2375 (2376 with TLS is the caller's choice via
    /// [`Host::with_default_port`]).
    pub fn parse(s: &str) -> Result<Host, ClientError> {
        let s = s.trim();
        if let Some(path) = s.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(ClientError::InvalidHost(s.to_string()));
            }
            return Ok(Host::Unix(PathBuf::from(path)));
        }
        if s.starts_with('/') {
            return Ok(Host::Unix(PathBuf::from(s)));
        }
        if let Some(rest) = s
            .strip_prefix("tcp://")
            .or_else(|| s.strip_prefix("http://"))
        {
            let rest = rest.trim_end_matches('/');
            if rest.is_empty() || rest.contains('/') {
                return Err(ClientError::InvalidHost(s.to_string()));
            }
            return Ok(Host::Tcp(rest.to_string()));
        }
        Err(ClientError::InvalidHost(s.to_string()))
    }

    /// Adds `port` to a TCP host that has none.
    pub fn with_default_port(self, port: u16) -> Host {
        match self {
            Host::Tcp(addr) => {
                let has_port = match addr.rsplit_once(':') {
                    Some((h, p)) => {
                        !p.is_empty()
                            && p.bytes().all(|b| b.is_ascii_digit())
                            && (!h.contains(':') || h.ends_with(']'))
                    }
                    None => false,
                };
                if has_port {
                    Host::Tcp(addr)
                } else {
                    Host::Tcp(format!("{addr}:{port}"))
                }
            }
            other => other,
        }
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Unix(p) => write!(f, "unix://{}", p.display()),
            Host::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

/// A response whose status was a success; read the body from it.
pub struct Response {
    /// Status and headers.
    pub head: Head,
    /// The decoded body.
    pub body: Body,
}

impl Response {
    /// Deserialises the whole body.
    pub fn json<T: DeserializeOwned>(self) -> Result<T, ClientError> {
        Ok(serde_json::from_reader(self.body)?)
    }

    /// Reads the whole body.
    pub fn bytes(mut self) -> Result<Vec<u8>, ClientError> {
        let mut out = Vec::new();
        self.body.read_to_end(&mut out)?;
        Ok(out)
    }

    /// The body as a stream of concatenated JSON documents (events, stats, progress).
    pub fn json_stream(self) -> JsonStream<Body> {
        JsonStream::new(self.body)
    }
}

/// What `/_ping` told us.
#[derive(Debug, Clone, Default)]
pub struct Ping {
    /// `API-Version` header.
    pub api_version: Option<String>,
    /// `OSType` header.
    pub os_type: Option<String>,
}

/// A handle on one daemon. Cheap to keep and clone; every request opens its own connection.
#[derive(Clone)]
pub struct Client {
    host: Host,
    tls: Option<Arc<rustls::ClientConfig>>,
    version: Option<String>,
}

impl Client {
    /// A client for `host`, with TLS when `tls` is enabled.
    pub fn new(host: Host, tls: Option<&TlsOptions>) -> Result<Client, ClientError> {
        let tls = match tls {
            Some(t) if t.enabled || t.verify => Some(t.client_config()?),
            _ => None,
        };
        Ok(Client {
            host,
            tls,
            version: None,
        })
    }

    /// The daemon address.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// Pins the API version (`DOCKER_API_VERSION`) instead of negotiating.
    pub fn set_version(&mut self, version: impl Into<String>) {
        self.version = Some(version.into());
    }

    /// The API version requests are sent with, if any.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// Pings the daemon and settles on min(daemon's version, [`MAX_API_VERSION`]).
    pub fn negotiate_version(&mut self) -> Result<Ping, ClientError> {
        let ping = self.ping()?;
        if self.version.is_none() {
            // An unparsable or newer daemon version means "speak ours".
            let server = ping
                .api_version
                .as_deref()
                .and_then(|v| v.parse::<wharf_api_types::ApiVersion>().ok());
            let v = match server {
                Some(server) if server < MAX_API_VERSION => server,
                _ => MAX_API_VERSION,
            };
            self.version = Some(v.to_string());
        }
        Ok(ping)
    }

    /// `GET /_ping` (unversioned).
    pub fn ping(&self) -> Result<Ping, ClientError> {
        let (head, body) = self.round_trip("GET", "/_ping", &[], RequestBody::Empty)?;
        let head = check_status(head, body)?.head;
        Ok(Ping {
            api_version: head.header("API-Version").map(str::to_string),
            os_type: head.header("OSType").map(str::to_string),
        })
    }

    /// Sends a request; statuses >= 400 become [`ClientError::Api`] with the daemon's message.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        query: &Query,
        body: RequestBody<'_>,
    ) -> Result<Response, ClientError> {
        self.request_with(method, path, query, &[], body)
    }

    /// [`Client::request`] with extra headers (`X-Registry-Auth`).
    pub fn request_with(
        &self,
        method: &str,
        path: &str,
        query: &Query,
        headers: &[(&str, &str)],
        body: RequestBody<'_>,
    ) -> Result<Response, ClientError> {
        let target = self.target(path, query);
        let (head, body) = self.round_trip(method, &target, headers, body)?;
        check_status(head, body)
    }

    /// `GET` and deserialise.
    pub fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &Query,
    ) -> Result<T, ClientError> {
        self.request("GET", path, query, RequestBody::Empty)?.json()
    }

    /// `POST` with an optional JSON body.
    pub fn post(
        &self,
        path: &str,
        query: &Query,
        json: Option<&serde_json::Value>,
    ) -> Result<Response, ClientError> {
        let body = match json {
            Some(v) => RequestBody::Json(serde_json::to_vec(v)?),
            None => RequestBody::Empty,
        };
        self.request("POST", path, query, body)
    }

    /// `DELETE`.
    pub fn delete(&self, path: &str, query: &Query) -> Result<Response, ClientError> {
        self.request("DELETE", path, query, RequestBody::Empty)
    }

    /// Sends a request asking to upgrade the connection to a raw stream (attach, exec start).
    /// Daemons that answer 200 instead of 101 are accepted too: the body is the stream.
    pub fn hijack(
        &self,
        method: &str,
        path: &str,
        query: &Query,
        json: Option<&serde_json::Value>,
    ) -> Result<Hijacked, ClientError> {
        let target = self.target(path, query);
        let body = match json {
            Some(v) => RequestBody::Json(serde_json::to_vec(v)?),
            None => RequestBody::Empty,
        };
        let headers = [("Connection", "Upgrade"), ("Upgrade", "tcp")];
        let (head, body) = self.round_trip(method, &target, &headers, body)?;
        if head.status >= 400 {
            return Err(check_status(head, body)
                .err()
                .unwrap_or_else(|| ClientError::Protocol("error status without error".into())));
        }
        if head.status == 101 {
            let (buffered, conn) = body.into_upgraded();
            Ok(Hijacked::upgraded(buffered, conn)?)
        } else {
            Ok(Hijacked::from_body(body))
        }
    }

    /// Sends a request without waiting for the answer, so a caller can be sure the daemon has
    /// it (e.g. a `wait` registered before `start`) and read the response later.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        query: &Query,
        json: Option<&serde_json::Value>,
    ) -> Result<Pending, ClientError> {
        let target = self.target(path, query);
        let body = match json {
            Some(v) => RequestBody::Json(serde_json::to_vec(v)?),
            None => RequestBody::Empty,
        };
        let mut conn = self.connect()?;
        http::write_request(&mut conn, method, &target, self.host_header(), &[], body)?;
        Ok(Pending {
            conn,
            method: method.to_string(),
        })
    }

    fn host_header(&self) -> &str {
        match &self.host {
            // What the docker CLI sends on a unix socket; any valid name works.
            Host::Unix(_) => "api.moby.localhost",
            Host::Tcp(a) => a.as_str(),
        }
    }

    fn target(&self, path: &str, query: &Query) -> String {
        match &self.version {
            Some(v) => format!("/v{v}{path}{}", query.encode()),
            None => format!("{path}{}", query.encode()),
        }
    }

    fn connect(&self) -> Result<Conn, ClientError> {
        let res = match &self.host {
            Host::Unix(path) => Conn::unix(path),
            Host::Tcp(addr) => match &self.tls {
                None => Conn::tcp(addr, None),
                Some(cfg) => Conn::tcp(addr, Some((cfg, tls::server_name(addr)?))),
            },
        };
        res.map_err(|source| ClientError::Connect {
            host: self.host.to_string(),
            source,
        })
    }

    fn round_trip(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: RequestBody<'_>,
    ) -> Result<(Head, Body), ClientError> {
        let mut conn = self.connect()?;
        http::write_request(&mut conn, method, target, self.host_header(), headers, body)?;
        let mut reader = BufReader::with_capacity(16 * 1024, conn);
        let head = http::read_head(&mut reader)?;
        let body = Body::new(reader, &head, method);
        Ok((head, body))
    }
}

/// A request that has been sent and whose response has not been read yet.
pub struct Pending {
    conn: Conn,
    method: String,
}

impl Pending {
    /// Blocks for the response; error statuses become [`ClientError::Api`].
    pub fn response(self) -> Result<Response, ClientError> {
        let mut reader = BufReader::with_capacity(16 * 1024, self.conn);
        let head = http::read_head(&mut reader)?;
        let body = Body::new(reader, &head, &self.method);
        check_status(head, body)
    }
}

/// Turns an error status into [`ClientError::Api`], taking `message` from a JSON body.
fn check_status(head: Head, mut body: Body) -> Result<Response, ClientError> {
    if head.status < 400 {
        return Ok(Response { head, body });
    }
    let mut raw = Vec::new();
    // A truncated error body still carries a useful message; keep what arrived.
    let _ = body.by_ref().take(1 << 20).read_to_end(&mut raw);
    let message = serde_json::from_slice::<serde_json::Value>(&raw)
        .ok()
        .and_then(|v| {
            v.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| String::from_utf8_lossy(&raw).trim().to_string());
    Err(ClientError::Api {
        status: head.status,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_parsing() {
        assert_eq!(
            Host::parse("unix:///run/wharf.sock").unwrap(),
            Host::Unix("/run/wharf.sock".into())
        );
        assert_eq!(
            Host::parse("/tmp/x.sock").unwrap(),
            Host::Unix("/tmp/x.sock".into())
        );
        assert_eq!(
            Host::parse("tcp://1.2.3.4:2376").unwrap(),
            Host::Tcp("1.2.3.4:2376".into())
        );
        assert!(Host::parse("ssh://me@box").is_err());
        assert!(Host::parse("unix://").is_err());
        assert!(Host::parse("tcp://").is_err());
        assert_eq!(
            Host::parse("tcp://example.com")
                .unwrap()
                .with_default_port(2376),
            Host::Tcp("example.com:2376".into())
        );
        assert_eq!(
            Host::parse("tcp://[::1]:99")
                .unwrap()
                .with_default_port(2376),
            Host::Tcp("[::1]:99".into())
        );
        assert_eq!(Host::parse("tcp://h:1").unwrap().to_string(), "tcp://h:1");
    }

    #[test]
    fn connect_error_names_the_host() {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::Unix(dir.path().join("missing.sock"));
        let client = Client::new(host, None).unwrap();
        let err = client.ping().unwrap_err();
        assert!(err
            .to_string()
            .starts_with("Cannot connect to the Docker daemon at unix://"));
        assert_eq!(
            wharf_errdefs::Classify::kind(&err),
            wharf_errdefs::ErrorKind::Unavailable
        );
    }
}
