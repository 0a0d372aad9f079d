//! Routing: each API area has `routes.rs` (the table, with version gates) and `handlers.rs`
//! (pure parsing plus calls into the area's backend).

pub mod build;
pub mod containers;
pub mod distribution;
pub mod hijack;
pub mod images;
pub mod networks;
pub mod system;
pub mod volumes;

use std::sync::Arc;

use http::Request;
use hyper::body::Incoming;
use wharf_api_types::ApiVersion;

use crate::server::error::ApiError;
use crate::server::http::ApiResult;
use crate::wiring::Daemon;

/// Finds the endpoint for `path` (version prefix already removed) and serves it.
pub async fn dispatch(
    d: Arc<Daemon>,
    v: ApiVersion,
    path: &str,
    req: Request<Incoming>,
) -> ApiResult {
    let decoded: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(crate::server::http::decode_path_segment)
        .collect();
    let segs: Vec<&str> = decoded.iter().map(String::as_str).collect();
    let method = req.method().clone();
    if let Some(ep) = system::routes::route(&method, &segs) {
        return system::handlers::serve(d, v, ep, req).await;
    }
    if let Some(ep) = containers::routes::route(&method, &segs) {
        return containers::handlers::serve(d, v, ep, req).await;
    }
    if let Some(ep) = build::routes::route(&method, &segs) {
        return build::handlers::serve(d, v, ep, req).await;
    }
    if let Some(ep) = images::routes::route(&method, &segs) {
        return images::handlers::serve(d, v, ep, req).await;
    }
    if let Some(ep) = volumes::routes::route(&method, &segs) {
        return volumes::handlers::serve(d, v, ep, req).await;
    }
    if let Some(ep) = distribution::routes::route(&method, &segs) {
        return distribution::handlers::serve(d, v, ep, req).await;
    }
    if let Some(ep) = networks::routes::route(&method, &segs) {
        return networks::handlers::serve(d, v, ep, req).await;
    }
    Err(ApiError::not_found("page not found"))
}
