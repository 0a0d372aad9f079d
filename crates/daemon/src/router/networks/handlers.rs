//! Networks handlers: parsing, then the networks service.

use std::sync::Arc;

use http::{Request, StatusCode};
use hyper::body::Incoming;
use serde_json::Value;
use wharf_api_types::ApiVersion;

use super::routes::Endpoint;
use crate::server::error::ApiError;
use crate::server::http::{self as h, parse_json, read_body, ApiResult, Query, MAX_JSON_BODY};
use crate::service::networks as svc;
use crate::wiring::Daemon;

/// Serves a networks endpoint.
pub async fn serve(
    d: Arc<Daemon>,
    _v: ApiVersion,
    ep: Endpoint,
    req: Request<Incoming>,
) -> ApiResult {
    let q = Query::parse(req.uri().query());
    match ep {
        Endpoint::List => h::ok_json(&svc::list(&d, &q.filters()?)?),
        Endpoint::Inspect(id) => h::ok_json(&svc::inspect(&d, &id)?),
        Endpoint::Create => {
            let b = read_body(req.into_body(), MAX_JSON_BODY).await?;
            let body: Value = parse_json(&b, false)?;
            let id = svc::create(&d, &body).await?;
            h::json(
                StatusCode::CREATED,
                &serde_json::json!({"Id": id, "Warning": ""}),
            )
        }
        Endpoint::Remove(id) => {
            svc::remove(&d, &id).await?;
            h::no_content(StatusCode::NO_CONTENT)
        }
        Endpoint::Connect(ref id) | Endpoint::Disconnect(ref id) => {
            let connect = matches!(ep, Endpoint::Connect(_));
            let b = read_body(req.into_body(), MAX_JSON_BODY).await?;
            let body: Value = parse_json(&b, false)?;
            let container = body
                .get("Container")
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty())
                .ok_or_else(|| ApiError::invalid("container is required"))?;
            let endpoint = connect.then(|| body.get("EndpointConfig").unwrap_or(&Value::Null));
            let force = body.get("Force").and_then(Value::as_bool).unwrap_or(false);
            svc::connect(&d, id, container, endpoint, force).await?;
            h::no_content(StatusCode::OK)
        }
        Endpoint::Prune => {
            let deleted = svc::prune(&d, &q.filters()?).await?;
            h::ok_json(&serde_json::json!({ "NetworksDeleted": deleted }))
        }
    }
}
