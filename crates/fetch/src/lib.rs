//! A blocking HTTP(S) GET that streams the body, for `docker import <url>`.
//!
//! [`get`] follows up to [`MAX_REDIRECTS`] redirects and returns a [`Download`], which reads
//! like a file: each `read` drives hyper on a private current-thread tokio runtime, so nothing
//! is buffered beyond one network chunk. Host names resolve through hickory (`/etc/hosts`, then
//! the nameservers of `/etc/resolv.conf`), never glibc NSS, which static binaries cannot use.
//! Certificates are checked against the system's trust store, as Docker does.
//!
//! Call it from a blocking thread (the daemon's blocking pool), never from async code: the
//! private runtime cannot be started inside another one. [`send`] is the async building block
//! beneath it, for clients that speak a protocol over HTTP (the registry client).
#![forbid(unsafe_code)]

use std::io::{self, Read};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use http::{header, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use wharf_errdefs::{Classify, ErrorKind};

/// Redirects followed before giving up (Go's `http.Client` default, which Docker uses).
pub const MAX_REDIRECTS: usize = 10;

/// Bounds the TCP connect and the TLS handshake (Go's default dialer allows 30 s).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// How much of an error response's body goes into the error message.
const ERROR_BODY_LIMIT: usize = 1024;

/// Why a download failed; every message names the URL.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL cannot be parsed or is not http(s).
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Resolving, connecting, the TLS handshake or the request itself failed.
    #[error("Get {url:?}: {reason}")]
    Request {
        /// The URL being fetched.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The server answered 4xx or 5xx (Docker's wording).
    #[error("failed to GET {url} with status {status}: {body}")]
    Status {
        /// The URL being fetched.
        url: String,
        /// Code and reason, e.g. `404 Not Found`.
        status: String,
        /// The start of the response body, trimmed.
        body: String,
    },
    /// The redirect chain was longer than [`MAX_REDIRECTS`].
    #[error("Get {url:?}: stopped after {MAX_REDIRECTS} redirects")]
    TooManyRedirects {
        /// The URL that redirected once too often.
        url: String,
    },
}

impl Classify for FetchError {
    fn kind(&self) -> ErrorKind {
        match self {
            FetchError::InvalidUrl { .. } => ErrorKind::InvalidArgument,
            // Docker answers 500 for a remote it cannot reach or that refuses the GET.
            FetchError::Request { .. }
            | FetchError::Status { .. }
            | FetchError::TooManyRedirects { .. } => ErrorKind::Internal,
        }
    }
}

/// A response body being downloaded; read it like a file.
pub struct Download {
    rt: Runtime,
    body: Incoming,
    chunk: Bytes,
    url: String,
    content_length: Option<u64>,
    last_modified: Option<String>,
}

impl Download {
    /// The URL the body comes from, after redirects.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The body's length, when the server said.
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// The `Last-Modified` header as sent (an HTTP date), when there was one.
    pub fn last_modified(&self) -> Option<&str> {
        self.last_modified.as_deref()
    }
}

impl Read for Download {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rt.block_on(self.body.frame()) {
                None => return Ok(0),
                Some(Err(e)) => {
                    return Err(io::Error::other(format!("reading {}: {e}", self.url)));
                }
                // Trailers carry no data.
                Some(Ok(frame)) => self.chunk = frame.into_data().unwrap_or_default(),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk.advance(n);
        Ok(n)
    }
}

/// GETs `url` (http or https), following redirects, and returns the body once the server has
/// answered 2xx. A URL without a scheme is taken as `http://` (Docker does the same).
pub fn get(url: &str) -> Result<Download, FetchError> {
    let start = parse_url(url)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| request_error(url, format!("starting the HTTP client: {e}")))?;
    let (uri, resp) = rt.block_on(get_following(start))?;
    let content_length = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let last_modified = resp
        .headers()
        .get(header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Ok(Download {
        rt,
        body: resp.into_body(),
        chunk: Bytes::new(),
        url: uri.to_string(),
        content_length,
        last_modified,
    })
}

async fn get_following(mut uri: Uri) -> Result<(Uri, Response<Incoming>), FetchError> {
    for _ in 0..=MAX_REDIRECTS {
        let resp = request(&uri).await?;
        let status = resp.status();
        if is_redirect(status) {
            if let Some(loc) = resp.headers().get(header::LOCATION) {
                let loc = loc
                    .to_str()
                    .map_err(|_| request_error(&uri, "redirect to a non-ASCII Location"))?;
                uri = resolve_location(&uri, loc)?;
                continue;
            }
        }
        if status.is_client_error() || status.is_server_error() {
            return Err(FetchError::Status {
                url: uri.to_string(),
                status: status.to_string(),
                body: error_body(resp.into_body()).await,
            });
        }
        return Ok((uri, resp));
    }
    Err(FetchError::TooManyRedirects {
        url: uri.to_string(),
    })
}

fn is_redirect(s: StatusCode) -> bool {
    matches!(s.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// The start of an error response's body, for the message; a broken body just ends it.
async fn error_body(mut body: Incoming) -> String {
    let mut out = Vec::new();
    while out.len() < ERROR_BODY_LIMIT {
        match body.frame().await {
            Some(Ok(f)) => out.extend_from_slice(&f.into_data().unwrap_or_default()),
            _ => break,
        }
    }
    out.truncate(ERROR_BODY_LIMIT);
    String::from_utf8_lossy(&out).trim().to_string()
}

/// Anything hyper can speak HTTP/1.1 over: plain TCP or TLS.
trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

/// One GET on a fresh connection (an import makes one request per hop; pooling buys nothing).
async fn request(uri: &Uri) -> Result<Response<Incoming>, FetchError> {
    let req = Request::get(uri.clone())
        .header(header::ACCEPT, "*/*")
        .body(Empty::<Bytes>::new())
        .map_err(|e| request_error(uri, e.to_string()))?;
    send(req, &TlsOptions::default()).await
}

/// How https connections check the server.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Accept any certificate (Docker's `insecure-registries` over https).
    pub skip_verify: bool,
    /// PEM CA certificates trusted on top of the system's (`certs.d/<host>/*.crt`).
    pub extra_roots_pem: Vec<Vec<u8>>,
}

/// Sends one request, whose URI must be absolute (http or https), on a fresh connection and
/// returns the response once its head has arrived; redirects are the caller's business.
/// `Host` and `User-Agent` are added when absent. Call it from async code.
pub async fn send<B>(req: Request<B>, tls: &TlsOptions) -> Result<Response<Incoming>, FetchError>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let uri = req.uri().clone();
    let fail = |reason: String| request_error(&uri, reason);
    if uri.scheme_str().is_none() || uri.host().is_none() {
        return Err(FetchError::InvalidUrl {
            url: uri.to_string(),
            reason: "not an absolute URL".into(),
        });
    }
    let https = uri.scheme_str() == Some("https");
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let ip: IpAddr = match host.parse() {
        Ok(ip) => ip,
        Err(_) => resolve(host)
            .await
            .map_err(|e| fail(format!("lookup {host}: {e}")))?,
    };
    let connect = async {
        let tcp = TcpStream::connect((ip, port))
            .await
            .map_err(|e| fail(format!("dial tcp {ip}:{port}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let conn: Box<dyn Conn> = if https {
            let name = rustls::pki_types::ServerName::try_from(host.to_string())
                .map_err(|e| fail(format!("TLS server name {host}: {e}")))?;
            let tls = tokio_rustls::TlsConnector::from(tls_config(tls).map_err(&fail)?)
                .connect(name, tcp)
                .await
                .map_err(|e| fail(format!("TLS handshake: {e}")))?;
            Box::new(tls)
        } else {
            Box::new(tcp)
        };
        Ok(conn)
    };
    let conn = tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| fail(format!("dial tcp {ip}:{port}: timed out")))??;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(conn))
        .await
        .map_err(|e| fail(e.to_string()))?;
    // The connection task ends by itself when the body has been read or dropped.
    tokio::spawn(connection);
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .unwrap_or_else(|| host.to_string());
    let (mut parts, body) = req.into_parts();
    parts.uri = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .parse()
        .map_err(|e: http::uri::InvalidUri| fail(e.to_string()))?;
    if !parts.headers.contains_key(header::HOST) {
        let v = authority.parse().map_err(|_| fail("bad Host".into()))?;
        parts.headers.insert(header::HOST, v);
    }
    if !parts.headers.contains_key(header::USER_AGENT) {
        parts.headers.insert(
            header::USER_AGENT,
            http::HeaderValue::from_static(concat!("wharf/", env!("CARGO_PKG_VERSION"))),
        );
    }
    sender
        .send_request(Request::from_parts(parts, body))
        .await
        .map_err(|e| fail(e.to_string()))
}

/// A host name's first address: `/etc/hosts`, then DNS. Built per lookup so that IP-literal
/// URLs work on hosts without a resolv.conf.
async fn resolve(host: &str) -> Result<IpAddr, String> {
    let resolver = hickory_resolver::TokioResolver::builder_tokio()
        .map_err(|e| format!("reading the resolver config: {e}"))?
        .build();
    let found = resolver.lookup_ip(host).await.map_err(|e| e.to_string())?;
    found
        .iter()
        .next()
        .ok_or_else(|| "no addresses".to_string())
}

/// The client config for https: the system's roots (plus `extra_roots_pem`), ring, HTTP/1.1.
fn tls_config(opts: &TlsOptions) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let mut config = if opts.skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(found.certs);
        for pem in &opts.extra_roots_pem {
            let certs = rustls::pki_types::CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("reading CA certificate: {e}"))?;
            roots.add_parsable_certificates(certs);
        }
        if roots.is_empty() {
            return Err("no CA certificates found in the system trust store".into());
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts every server certificate while still checking handshake signatures: what Go's
/// `InsecureSkipVerify` does for Docker's insecure registries.
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn request_error(url: impl ToString, reason: impl Into<String>) -> FetchError {
    FetchError::Request {
        url: url.to_string(),
        reason: reason.into(),
    }
}

/// Parses an http(s) URL; no scheme means http.
fn parse_url(url: &str) -> Result<Uri, FetchError> {
    let invalid = |reason: &str| FetchError::InvalidUrl {
        url: url.to_string(),
        reason: reason.into(),
    };
    let full = if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    };
    let uri: Uri = full
        .parse()
        .map_err(|e: http::uri::InvalidUri| invalid(&e.to_string()))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(invalid("only http and https are supported")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("no host"));
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(invalid("credentials in URLs are not supported"));
    }
    Ok(uri)
}

/// Resolves a `Location` header against the URL that sent it (RFC 3986 §5.2, the forms
/// servers actually send: absolute, scheme-relative, absolute path, relative path).
fn resolve_location(base: &Uri, loc: &str) -> Result<Uri, FetchError> {
    let scheme = base.scheme_str().unwrap_or("http");
    let authority = base.authority().map(|a| a.as_str()).unwrap_or_default();
    let target = if loc.contains("://") {
        loc.to_string()
    } else if let Some(rest) = loc.strip_prefix("//") {
        format!("{scheme}://{rest}")
    } else if loc.starts_with('/') {
        format!("{scheme}://{authority}{loc}")
    } else {
        let path = base.path();
        let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
        let (rel, query) = loc.split_at(loc.find('?').unwrap_or(loc.len()));
        let path = remove_dot_segments(&format!("{dir}{rel}"));
        format!("{scheme}://{authority}{path}{query}")
    };
    parse_url(&target)
}

/// `/a/./b/../c` → `/a/c`; `..` never climbs above the root.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *seg {
            "." | ".." => {
                if *seg == ".." {
                    out.pop();
                }
                // A trailing dot segment names the directory itself.
                if last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(base: &str, loc: &str) -> String {
        resolve_location(&base.parse().unwrap(), loc)
            .unwrap()
            .to_string()
    }

    #[test]
    fn locations_resolve_against_the_base() {
        let base = "http://h:8080/a/b.tar?x=1";
        assert_eq!(resolve(base, "https://o/c.tar"), "https://o/c.tar");
        assert_eq!(resolve(base, "//o/c.tar"), "http://o/c.tar");
        assert_eq!(resolve(base, "/c.tar"), "http://h:8080/c.tar");
        assert_eq!(resolve(base, "c.tar"), "http://h:8080/a/c.tar");
        assert_eq!(resolve("http://h", "c.tar"), "http://h/c.tar");
        assert_eq!(resolve(base, "../c.tar?y=2"), "http://h:8080/c.tar?y=2");
        assert_eq!(resolve(base, "../../x/./c.tar"), "http://h:8080/x/c.tar");
        assert_eq!(resolve(base, "./"), "http://h:8080/a/");
    }

    #[test]
    fn urls_are_checked() {
        assert_eq!(
            parse_url("example.com/x.tar").unwrap().to_string(),
            "http://example.com/x.tar"
        );
        for bad in ["ftp://h/x", "http://", "http://u:p@h/x", "http://h h/x"] {
            let e = parse_url(bad).unwrap_err();
            assert!(matches!(e, FetchError::InvalidUrl { .. }), "{bad}: {e}");
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        }
    }

    #[test]
    fn redirect_codes() {
        for c in [301, 302, 303, 307, 308] {
            assert!(is_redirect(StatusCode::from_u16(c).unwrap()));
        }
        assert!(!is_redirect(StatusCode::NOT_MODIFIED));
    }
}
