//! Volumes handlers: the backend is `service::volumes::Volumes`, called on the blocking pool.

use std::sync::Arc;

use http::{Request, StatusCode};
use hyper::body::Incoming;
use wharf_api_types::volume::{
    UsageData, Volume, VolumeCreateOptions, VolumeListResponse, VolumePruneResponse,
};
use wharf_api_types::ApiVersion;
use wharf_volume::VolumeView;

use super::routes::Endpoint;
use crate::server::error::ApiError;
use crate::server::http::{self as h, parse_json, read_body, ApiResult, Query, MAX_JSON_BODY};
use crate::service::containers::blocking;
use crate::wiring::Daemon;

/// The API form of a volume; `usage` only for `system df`.
pub fn to_api(v: &VolumeView, usage: Option<UsageData>) -> Volume {
    Volume {
        created_at: v.created_at.clone(),
        driver: v.driver.clone(),
        labels: v.labels.clone(),
        mountpoint: v.mountpoint.display().to_string(),
        name: v.name.clone(),
        options: v.options.clone(),
        scope: v.scope.clone(),
        status: v.status.clone(),
        usage_data: usage,
    }
}

/// `system df`'s volume rows: each volume with its size and reference count.
pub async fn disk_usage(d: &Daemon) -> Result<Vec<Volume>, ApiError> {
    let vols = d.containers.volumes().clone();
    blocking(move || {
        Ok::<_, ApiError>(
            vols.store()
                .list()
                .iter()
                .map(|v| {
                    let usage = UsageData {
                        size: wharf_volume::store::dir_size(&v.mountpoint) as i64,
                        ref_count: v.users.len() as i64,
                    };
                    to_api(v, Some(usage))
                })
                .collect(),
        )
    })
    .await
}

fn truthy(v: &str) -> bool {
    matches!(v, "1" | "true" | "True")
}

/// Serves a volumes endpoint.
pub async fn serve(
    d: Arc<Daemon>,
    v: ApiVersion,
    ep: Endpoint,
    req: Request<Incoming>,
) -> ApiResult {
    let q = Query::parse(req.uri().query());
    let vols = d.containers.volumes().clone();
    match ep {
        Endpoint::List => {
            let f = q.filters()?;
            f.validate(&["dangling", "driver", "label", "name"])
                .map_err(|e| ApiError::from_err(&e))?;
            for b in f.get("dangling") {
                if !matches!(b.as_str(), "1" | "0" | "true" | "false") {
                    return Err(ApiError::invalid(format!("invalid filter 'dangling={b}'")));
                }
            }
            let list = blocking(move || Ok::<_, ApiError>(vols.store().list())).await?;
            let out: Vec<Volume> = list
                .iter()
                .filter(|v| f.matches_any("dangling", |b| truthy(b) == v.users.is_empty()))
                .filter(|v| f.matches_any("driver", |x| x == v.driver))
                .filter(|v| f.matches_any("name", |x| v.name.contains(x)))
                .filter(|v| f.matches_labels(&v.labels))
                .map(|v| to_api(v, None))
                .collect();
            h::ok_json(&VolumeListResponse {
                volumes: out,
                warnings: None,
            })
        }
        Endpoint::Create => {
            let body = read_body(req.into_body(), MAX_JSON_BODY).await?;
            let o: VolumeCreateOptions = parse_json(&body, true)?;
            let v = blocking(move || {
                vols.create(
                    Some(o.name.as_str()),
                    &o.driver,
                    &o.driver_opts.unwrap_or_default(),
                    &o.labels.unwrap_or_default(),
                    None,
                )
            })
            .await?;
            h::json(StatusCode::CREATED, &to_api(&v, None))
        }
        Endpoint::Inspect(name) => {
            let v = blocking(move || vols.store().get(&name)).await?;
            h::ok_json(&to_api(&v, None))
        }
        Endpoint::Remove(name) => {
            let force = q.bool("force");
            blocking(move || vols.remove(&name, force)).await?;
            h::no_content(StatusCode::NO_CONTENT)
        }
        Endpoint::Prune => {
            let f = q.filters()?;
            f.validate(&["label", "label!", "all"])
                .map_err(|e| ApiError::from_err(&e))?;
            // Before 1.42 prune took every unused volume; since, anonymous ones unless `all`.
            let all = !v.at_least(1, 42) || f.get("all").iter().any(|a| truthy(a));
            let (names, reclaimed) = blocking(move || {
                let pick = |v: &VolumeView| {
                    (all || v.anonymous())
                        && f.matches_labels(&v.labels)
                        && f.get("label!").iter().all(|l| match l.split_once('=') {
                            Some((k, val)) => v.labels.get(k).is_none_or(|have| have != val),
                            None => !v.labels.contains_key(l.as_str()),
                        })
                };
                let (names, bytes) = vols
                    .store()
                    .prune(pick)
                    .map_err(|e| ApiError::from_err(&e))?;
                for n in &names {
                    vols.emit("destroy", n, "local", &[]);
                }
                vols.emit("prune", "", "", &[("reclaimed", bytes.to_string())]);
                Ok::<_, ApiError>((names, bytes))
            })
            .await?;
            h::ok_json(&VolumePruneResponse {
                volumes_deleted: Some(names),
                space_reclaimed: reclaimed,
            })
        }
    }
}
