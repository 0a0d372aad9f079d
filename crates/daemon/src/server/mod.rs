//! The HTTP server: listeners (unix sockets, TCP with rustls), the API-version prefix, common
//! headers, and the error → response mapping. Routing lives in [`crate::router`].

pub mod conns;
pub mod error;
pub mod http;
pub mod listen;

use std::convert::Infallible;
use std::sync::Arc;

use ::http::{HeaderValue, Request};
use hyper::body::Incoming;
use wharf_api_types::version::{MAX_API_VERSION, MIN_API_VERSION};
use wharf_api_types::ApiVersion;

use self::error::ApiError;
use self::http::{error_response, Resp};
use crate::wiring::Daemon;

/// What the `Server` header says.
pub fn server_header() -> String {
    format!("Wharf/{} (linux)", env!("CARGO_PKG_VERSION"))
}

/// Splits `/v1.45/containers/json` into the version and the rest. Unprefixed paths get the
/// newest version. `Ok(None)` means a `/v...` segment that is not a version: no route matches.
pub fn split_version(path: &str) -> Result<Option<(ApiVersion, &str)>, ApiError> {
    let Some(rest) = path.strip_prefix("/v") else {
        return Ok(Some((MAX_API_VERSION, path)));
    };
    let (ver, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let Ok(v) = ver.parse::<ApiVersion>() else {
        if ver.starts_with(|c: char| c.is_ascii_digit()) {
            return Ok(None);
        }
        // "/version", "/volumes": not a version prefix at all.
        return Ok(Some((MAX_API_VERSION, path)));
    };
    if v > MAX_API_VERSION {
        return Err(ApiError::invalid(format!(
            "client version {v} is too new. Maximum supported API version is {MAX_API_VERSION}"
        )));
    }
    if v < MIN_API_VERSION {
        return Err(ApiError::invalid(format!(
            "client version {v} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
        )));
    }
    Ok(Some((v, tail)))
}

/// Serves one request: version check, routing, error mapping, common headers.
pub async fn handle(daemon: Arc<Daemon>, req: Request<Incoming>) -> Result<Resp, Infallible> {
    let path = req.uri().path().to_string();
    let mut resp = if missing_host(&req) {
        // HTTP/1.1 requires it (RFC 9112 §3.2); Go's server, and so dockerd, answers 400.
        error_response(&ApiError::invalid("missing required Host header"))
    } else {
        match split_version(&path) {
            Ok(Some((v, rest))) => {
                let rest = rest.to_string();
                crate::router::dispatch(daemon.clone(), v, &rest, req)
                    .await
                    .unwrap_or_else(|e| error_response(&e))
            }
            Ok(None) => error_response(&ApiError::not_found("page not found")),
            Err(e) => error_response(&e),
        }
    };
    let h = resp.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(api_version_str()));
    h.insert(
        "Docker-Experimental",
        HeaderValue::from_static(if daemon.experimental() {
            "true"
        } else {
            "false"
        }),
    );
    h.insert("Ostype", HeaderValue::from_static("linux"));
    if let Ok(v) = HeaderValue::from_str(&server_header()) {
        h.insert(::http::header::SERVER, v);
    }
    Ok(resp)
}

/// An HTTP/1.1 request without a Host header (HTTP/1.0 may omit it).
fn missing_host<B>(req: &Request<B>) -> bool {
    req.version() == ::http::Version::HTTP_11 && !req.headers().contains_key(::http::header::HOST)
}

fn api_version_str() -> &'static str {
    // Keep in step with MAX_API_VERSION (checked by a test).
    "1.45"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefixes() {
        let (v, p) = split_version("/v1.41/containers/json")
            .expect("ok")
            .expect("some");
        assert_eq!((v, p), (ApiVersion::new(1, 41), "/containers/json"));
        let (v, p) = split_version("/version").expect("ok").expect("some");
        assert_eq!((v, p), (MAX_API_VERSION, "/version"));
        assert_eq!(
            split_version("/volumes").expect("ok").map(|x| x.1),
            Some("/volumes")
        );
        assert_eq!(split_version("/v1.x/info").expect("ok"), None);
        let e = split_version("/v1.99/info").expect_err("too new");
        assert_eq!(
            e.message,
            "client version 1.99 is too new. Maximum supported API version is 1.45"
        );
        assert!(split_version("/v1.12/info")
            .expect_err("too old")
            .message
            .contains("too old"));
        assert_eq!(api_version_str(), MAX_API_VERSION.to_string());
    }
}
