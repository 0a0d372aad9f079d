//! Requests to one repository on one endpoint, with authentication handled on the way: a 401
//! teaches the host's challenge, a Bearer token for the repository's scope is fetched (and
//! cached), and the request is sent again once.

use std::sync::Arc;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use wharf_errdefs::ErrorKind;

use crate::auth::{parse_challenge, AuthCache, Challenge, Credentials, TokenResponse};
use crate::endpoints::Endpoint;
use crate::error::DistributionError;

/// How much of an error (or token) response is read.
const SMALL_BODY_LIMIT: usize = 64 << 10;
/// Redirects followed for blobs (storage back ends redirect to signed URLs).
const MAX_REDIRECTS: usize = 10;

/// One repository (`library/alpine`) on one endpoint, with the caller's credentials.
#[derive(Clone)]
pub(crate) struct Repo {
    pub endpoint: Endpoint,
    pub path: String,
    /// `pull` or `pull,push`.
    pub actions: &'static str,
    /// Another repository (path) whose `pull` the token must also cover: the source of a
    /// cross-repository mount, which token registries check.
    pub mount_from: Option<String>,
    pub creds: Option<Credentials>,
    pub cache: Arc<AuthCache>,
}

/// The registry's error envelope.
#[derive(Debug, Default, Deserialize)]
struct Envelope {
    #[serde(default)]
    errors: Vec<EnvelopeError>,
}

#[derive(Debug, Default, Deserialize)]
struct EnvelopeError {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

impl Repo {
    /// `base/v2/<path>/<rest>`.
    pub fn url(&self, rest: &str) -> String {
        format!("{}/v2/{}/{rest}", self.endpoint.base, self.path)
    }

    /// `host[:port]/path`: how blob sources name this repository.
    pub fn key(&self) -> String {
        format!("{}/{}", self.endpoint.host, self.path)
    }

    /// The token scopes; none for a bare `/v2/` check (login).
    fn scopes(&self) -> Vec<String> {
        if self.actions.is_empty() {
            return Vec::new();
        }
        let mut out = vec![format!("repository:{}:{}", self.path, self.actions)];
        if let Some(from) = &self.mount_from {
            out.push(format!("repository:{from}:pull"));
        }
        out
    }

    /// Sends `method url` with `headers`, authenticating as the registry asks; blob
    /// redirects are followed without credentials. Non-2xx answers are returned as they are.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(header::HeaderName, String)],
    ) -> Result<Response<Incoming>, DistributionError> {
        let mut auth = self.authorization(false).await?;
        let mut retried = false;
        loop {
            let resp = self
                .send_once(&method, url, headers, auth.as_deref(), empty())
                .await?;
            if resp.status() == StatusCode::UNAUTHORIZED && !retried {
                let challenge = resp
                    .headers()
                    .get(header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_challenge);
                if let Some(c) = challenge {
                    self.cache.set_challenge(&self.endpoint.host, c);
                    let fresh = self.authorization(true).await?;
                    if fresh.is_some() {
                        auth = fresh;
                        retried = true;
                        continue;
                    }
                }
            }
            return self.follow(resp, &method, headers).await;
        }
    }

    /// Sends a request with a body (a blob or manifest upload) using the token an earlier
    /// [`Repo::send`] on this repository obtained; no retry, as the body is consumed.
    pub async fn send_body(
        &self,
        method: Method,
        url: &str,
        headers: &[(header::HeaderName, String)],
        body: Body,
    ) -> Result<Response<Incoming>, DistributionError> {
        let auth = self.authorization(true).await?;
        self.send_once(&method, url, headers, auth.as_deref(), body)
            .await
    }

    async fn send_once(
        &self,
        method: &Method,
        url: &str,
        headers: &[(header::HeaderName, String)],
        auth: Option<&str>,
        body: Body,
    ) -> Result<Response<Incoming>, DistributionError> {
        let mut req = Request::builder().method(method.clone()).uri(url);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        if let Some(a) = auth {
            req = req.header(header::AUTHORIZATION, a);
        }
        let req = req
            .body(body)
            .map_err(|e| DistributionError::InvalidArgument(format!("{url}: {e}")))?;
        Ok(wharf_fetch::send(req, &self.endpoint.tls).await?)
    }

    /// Follows redirects of a GET/HEAD to wherever the blob is, without credentials.
    async fn follow(
        &self,
        mut resp: Response<Incoming>,
        method: &Method,
        headers: &[(header::HeaderName, String)],
    ) -> Result<Response<Incoming>, DistributionError> {
        for _ in 0..MAX_REDIRECTS {
            if !matches!(resp.status().as_u16(), 301 | 302 | 303 | 307 | 308) {
                return Ok(resp);
            }
            let Some(loc) = resp
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
            else {
                return Ok(resp);
            };
            let next = if loc.starts_with('/') {
                format!("{}{loc}", self.endpoint.base)
            } else {
                loc.to_string()
            };
            resp = self
                .send_once(method, &next, headers, None, empty())
                .await?;
        }
        Err(DistributionError::InvalidManifest(format!(
            "stopped after {MAX_REDIRECTS} redirects"
        )))
    }

    /// The `Authorization` value for this repository, from the host's known challenge;
    /// `fetch` asks the token server when no fresh token is cached.
    async fn authorization(&self, fetch: bool) -> Result<Option<String>, DistributionError> {
        if let Some(t) = self
            .creds
            .as_ref()
            .map(|c| c.registrytoken.as_str())
            .filter(|t| !t.is_empty())
        {
            return Ok(Some(format!("Bearer {t}")));
        }
        match self.cache.challenge(&self.endpoint.host) {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.creds.as_ref().and_then(Credentials::basic_header)),
            Some(Challenge::Bearer { realm, service }) => {
                let user = self
                    .creds
                    .as_ref()
                    .and_then(Credentials::basic)
                    .map(|(u, _)| u)
                    .unwrap_or_default();
                let key = format!("{realm}|{service}|{}|{user}", self.scopes().join(" "));
                if let Some(t) = self.cache.token(&key) {
                    return Ok(Some(format!("Bearer {t}")));
                }
                if !fetch {
                    return Ok(None);
                }
                let tok = self.fetch_token(&realm, &service).await?;
                let header = format!("Bearer {}", tok.token());
                self.cache
                    .set_token(&key, tok.token().to_string(), tok.lifetime());
                Ok(Some(header))
            }
        }
    }

    /// GETs a token from `realm` (with Basic credentials when the caller has them).
    async fn fetch_token(
        &self,
        realm: &str,
        service: &str,
    ) -> Result<TokenResponse, DistributionError> {
        let mut params = Vec::new();
        for scope in self.scopes() {
            params.push(format!("scope={}", query_escape(&scope)));
        }
        if !service.is_empty() {
            params.push(format!("service={}", query_escape(service)));
        }
        let sep = if realm.contains('?') { '&' } else { '?' };
        let url = if params.is_empty() {
            realm.to_string()
        } else {
            format!("{realm}{sep}{}", params.join("&"))
        };
        let mut req = Request::get(&url);
        if let Some(b) = self.creds.as_ref().and_then(Credentials::basic_header) {
            req = req.header(header::AUTHORIZATION, b);
        }
        let req = req
            .body(Full::new(Bytes::new()))
            .map_err(|e| DistributionError::InvalidArgument(format!("token realm {realm}: {e}")))?;
        let resp = wharf_fetch::send(req, &self.endpoint.tls).await?;
        if !resp.status().is_success() {
            return Err(registry_error(resp, &url).await);
        }
        let body = read_small(resp.into_body()).await?;
        let tok: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
            DistributionError::InvalidManifest(format!("token server {realm}: bad answer: {e}"))
        })?;
        if tok.token().is_empty() {
            return Err(DistributionError::InvalidManifest(format!(
                "token server {realm} returned no token"
            )));
        }
        Ok(tok)
    }
}

/// A request body: empty, bytes, or a stream read from a file.
pub(crate) type Body = BoxBody<Bytes, std::io::Error>;

/// An empty request body.
pub(crate) fn empty() -> Body {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}

/// A request body of `bytes`.
pub(crate) fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

/// Reads a small body whole.
pub(crate) async fn read_small(body: Incoming) -> Result<Bytes, DistributionError> {
    read_limited(body, SMALL_BODY_LIMIT).await
}

/// Reads a body whole, refusing more than `limit` bytes.
pub(crate) async fn read_limited(body: Incoming, limit: usize) -> Result<Bytes, DistributionError> {
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => Err(DistributionError::InvalidManifest(format!(
            "reading the registry's answer: {e}"
        ))),
    }
}

/// Turns a non-2xx answer into an error in Docker's words (`<code>: <message>` per
/// registry error), classified by status.
pub(crate) async fn registry_error(resp: Response<Incoming>, url: &str) -> DistributionError {
    let status = resp.status();
    let body = read_small(resp.into_body()).await.unwrap_or_default();
    let env: Envelope = serde_json::from_slice(&body).unwrap_or_default();
    let code = env
        .errors
        .first()
        .map(|e| e.code.clone())
        .unwrap_or_default();
    let message = if env.errors.is_empty() {
        let text = String::from_utf8_lossy(&body).trim().to_string();
        match status {
            StatusCode::UNAUTHORIZED => "unauthorized: authentication required".to_string(),
            StatusCode::TOO_MANY_REQUESTS => format!("toomanyrequests: {text}"),
            _ if text.is_empty() => format!("{url}: {status}"),
            _ => format!("{url}: {status}: {text}"),
        }
    } else {
        env.errors
            .iter()
            .map(|e| {
                format!(
                    "{}: {}",
                    e.code.to_ascii_lowercase().replace('_', " "),
                    e.message
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let kind = match status {
        StatusCode::NOT_FOUND => ErrorKind::NotFound,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ErrorKind::Forbidden,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => ErrorKind::Unavailable,
        s if s.is_client_error() => ErrorKind::InvalidArgument,
        _ => ErrorKind::Internal,
    };
    DistributionError::Registry {
        status: status.as_u16(),
        code,
        message,
        kind,
    }
}

/// Percent-encodes a query value.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_is_escaped() {
        assert_eq!(
            query_escape("repository:library/alpine:pull"),
            "repository%3Alibrary%2Falpine%3Apull"
        );
    }
}
