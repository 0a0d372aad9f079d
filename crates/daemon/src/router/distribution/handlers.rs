//! Registry handlers: the backend is `wharf_distribution::Registry`.

use std::sync::Arc;

use http::{Request, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;
use wharf_api_types::ApiVersion;
use wharf_distribution::Credentials;

use super::routes::Endpoint;
use crate::server::error::ApiError;
use crate::server::http::{self as h, read_body, ApiResult};
use crate::wiring::Daemon;

/// Largest `/auth` body (an AuthConfig is a few hundred bytes).
const MAX_AUTH_BODY: usize = 64 << 10;

/// `POST /auth`'s answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct AuthResponse {
    status: &'static str,
    identity_token: String,
}

/// Parses an AuthConfig body; unknown fields (`email`) are accepted.
pub fn parse_auth(body: &[u8]) -> Result<Credentials, ApiError> {
    let c: Credentials = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("invalid JSON: {e}")))?;
    if c.basic().is_none() && c.identitytoken.is_empty() && c.registrytoken.is_empty() {
        return Err(ApiError::invalid("no username or password given"));
    }
    Ok(c)
}

/// Serves a registry endpoint.
pub async fn serve(
    d: Arc<Daemon>,
    _v: ApiVersion,
    ep: Endpoint,
    req: Request<Incoming>,
) -> ApiResult {
    match ep {
        Endpoint::Auth => {
            let body = read_body(req.into_body(), MAX_AUTH_BODY).await?;
            let creds = parse_auth(&body)?;
            d.registry
                .login(&creds)
                .await
                .map_err(|e| ApiError::from_err(&e))?;
            h::json(
                StatusCode::OK,
                &AuthResponse {
                    status: "Login Succeeded",
                    identity_token: String::new(),
                },
            )
        }
        Endpoint::Inspect(name) => {
            let r = wharf_image::Reference::parse(&name)
                .map_err(|e| ApiError::invalid(e.to_string()))?;
            let creds = req
                .headers()
                .get("X-Registry-Auth")
                .and_then(|v| v.to_str().ok())
                .and_then(Credentials::from_header);
            let info = d
                .registry
                .inspect(&r, creds.as_ref())
                .await
                .map_err(|e| ApiError::from_err(&e))?;
            h::ok_json(&info)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wharf_errdefs::ErrorKind;

    #[test]
    fn auth_bodies() {
        let c =
            parse_auth(br#"{"username":"u","password":"p","email":"","serveraddress":"h:5000"}"#)
                .unwrap();
        assert_eq!(c.serveraddress, "h:5000");
        assert_eq!(
            parse_auth(b"{}").unwrap_err().kind,
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            parse_auth(b"nope").unwrap_err().kind,
            ErrorKind::InvalidArgument
        );
    }
}
