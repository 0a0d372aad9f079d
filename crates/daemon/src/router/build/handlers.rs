//! Build handlers: query parsing (pure), the context upload, and the JSON message stream.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;
use wharf_api_types::container::{Resources, Ulimit};
use wharf_api_types::ApiVersion;
use wharf_builder::{BuildError, BuildOptions, Context, Engine, Event, Secrets};
use wharf_errdefs::ErrorKind;

use super::routes::Endpoint;
use crate::server::error::ApiError;
use crate::server::http::{self as h, ApiResult, Query};
use crate::wiring::Daemon;

fn json_map(q: &Query, key: &str) -> Result<BTreeMap<String, Option<String>>, ApiError> {
    match q.get(key).filter(|s| !s.is_empty() && *s != "null") {
        None => Ok(BTreeMap::new()),
        Some(s) => serde_json::from_str(s)
            .map_err(|e| ApiError::invalid(format!("invalid {key} value: {e}"))),
    }
}

/// A JSON list parameter (`cachefrom`, `ulimits`); absent, empty or `null` is empty.
fn json_list<T: serde::de::DeserializeOwned>(q: &Query, key: &str) -> Result<Vec<T>, ApiError> {
    match q.get(key).filter(|s| !s.is_empty() && *s != "null") {
        None => Ok(Vec::new()),
        Some(s) => serde_json::from_str::<Option<Vec<T>>>(s)
            .map(Option::unwrap_or_default)
            .map_err(|e| ApiError::invalid(format!("invalid {key} value: {e}"))),
    }
}

/// The limits RUN containers get (the classic builder's resource parameters).
fn resources(q: &Query) -> Result<Resources, ApiError> {
    let int = |k| q.int(k).map(Option::unwrap_or_default);
    Ok(Resources {
        memory: int("memory")?,
        memory_swap: int("memswap")?,
        cpu_shares: int("cpushares")?,
        cpu_period: int("cpuperiod")?,
        cpu_quota: int("cpuquota")?,
        cpuset_cpus: q.get("cpusetcpus").unwrap_or("").to_string(),
        cpuset_mems: q.get("cpusetmems").unwrap_or("").to_string(),
        ulimits: Some(json_list::<Ulimit>(q, "ulimits")?).filter(|u| !u.is_empty()),
        ..Default::default()
    })
}

/// `POST /build` query → options.
pub fn parse_build(q: &Query) -> Result<BuildOptions, ApiError> {
    if q.get("version") == Some("2") {
        return Err(ApiError::new(
            ErrorKind::NotImplemented,
            "BuildKit (builder version 2) is not supported; use the classic builder (DOCKER_BUILDKIT=0)",
        ));
    }
    if q.bool("squash") {
        return Err(ApiError::invalid(
            "squash is only supported with experimental mode",
        ));
    }
    if let Some(i) = q
        .get("isolation")
        .filter(|i| !i.is_empty() && *i != "default")
    {
        return Err(ApiError::invalid(format!(
            "Isolation {i} is not supported on linux"
        )));
    }
    if let Some(p) = q.get("platform").filter(|p| !p.is_empty()) {
        let host = format!("linux/{}", wharf_image::host_arch());
        if p != host && p != "linux" {
            return Err(ApiError::new(
                ErrorKind::NotImplemented,
                format!("building for platform {p} is not supported (this host builds {host})"),
            ));
        }
    }
    let network = match q.get("networkmode").unwrap_or("") {
        "" | "default" | "bridge" => "default",
        "none" => "none",
        "host" => "host",
        other => {
            return Err(ApiError::new(
                ErrorKind::NotImplemented,
                format!("network mode {other:?} is not supported for builds yet"),
            ))
        }
    };
    let labels = json_map(q, "labels")?
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect();
    Ok(BuildOptions {
        dockerfile: q.get("dockerfile").unwrap_or("Dockerfile").to_string(),
        tags: q
            .all("t")
            .iter()
            .filter(|t| !t.is_empty())
            .cloned()
            .collect(),
        build_args: json_map(q, "buildargs")?,
        target: q.get("target").filter(|t| !t.is_empty()).map(String::from),
        no_cache: q.bool("nocache"),
        labels,
        network: network.to_string(),
        remove: q.bool_or("rm", true),
        force_remove: q.bool("forcerm"),
        quiet: q.bool("q"),
        pull: q.bool("pull"),
        // Not in the classic API (BuildKit's `no-cache` attribute): `wharf build` sends it.
        no_cache_filter: json_list(q, "nocachefilter")?,
        resources: resources(q)?,
        shm_size: q.int("shmsize")?.unwrap_or_default(),
        secrets: Secrets::default(),
        cache_from: json_list(q, "cachefrom")?,
        extra_hosts: q
            .all("extrahosts")
            .iter()
            .flat_map(|v| v.split(','))
            .filter(|v| !v.is_empty())
            .map(String::from)
            .collect(),
    })
}

fn line(v: serde_json::Value) -> bytes::Bytes {
    let mut b = serde_json::to_vec(&v).unwrap_or_default();
    b.push(b'\n');
    b.into()
}

fn render(e: &Event) -> bytes::Bytes {
    match e {
        Event::Stream(s) => line(json!({ "stream": s })),
        Event::Aux(id) => line(json!({ "aux": { "ID": id } })),
    }
}

fn render_error(e: &BuildError) -> bytes::Bytes {
    let msg = e.to_string();
    match e {
        BuildError::RunFailed { code, .. } => {
            line(json!({"errorDetail": {"code": code, "message": msg}, "error": msg}))
        }
        _ => line(json!({"errorDetail": {"message": msg}, "error": msg})),
    }
}

enum Msg {
    Event(Event),
    Done(Result<String, BuildError>),
}

/// Header `wharf build --secret` sends: a JSON map from secret id to hex-encoded content (a
/// header, not the query, so secrets stay out of request logs and the context).
pub const SECRETS_HEADER: &str = "X-Wharf-Build-Secrets";

fn parse_secrets(v: Option<&str>) -> Result<Secrets, ApiError> {
    let Some(v) = v.filter(|v| !v.is_empty()) else {
        return Ok(Secrets::default());
    };
    let bad = || ApiError::invalid(format!("invalid {SECRETS_HEADER} header"));
    let map: BTreeMap<String, String> = serde_json::from_str(v).map_err(|_| bad())?;
    map.into_iter()
        .map(|(k, v)| Ok((k, hex::decode(v).map_err(|_| bad())?)))
        .collect::<Result<_, ApiError>>()
        .map(Secrets)
}

async fn build(d: Arc<Daemon>, req: Request<Incoming>) -> ApiResult {
    let q = Query::parse(req.uri().query());
    let mut opts = parse_build(&q)?;
    opts.secrets = parse_secrets(
        req.headers()
            .get(SECRETS_HEADER)
            .and_then(|v| v.to_str().ok()),
    )?;
    // With `remote=` the body is ignored, as dockerd does.
    let remote = q.get("remote").filter(|r| !r.is_empty()).map(String::from);
    let mut file = crate::router::images::handlers::spool(&d, req.into_body()).await?;
    let build_id = crate::ids::new_id();
    let builds = d.builds.clone();
    let cancel = builds.start(&build_id);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Msg>(256);
    let bid = build_id.clone();
    let flag = cancel.clone();
    tokio::task::spawn_blocking(move || {
        let dir = builds.scratch(&bid);
        let ctx = match &remote {
            Some(r) => Context::from_remote(r, &dir, &opts.dockerfile),
            None => Context::from_tar(&mut file, &dir),
        };
        let res = ctx.and_then(|ctx| {
            let worker = builds.worker(&bid);
            let send = |e: Event| {
                let _ = tx.blocking_send(Msg::Event(e));
            };
            Engine::new(&worker, builds.cache().clone()).build(&ctx, &opts, &send, &flag)
        });
        builds.finish(&bid);
        let _ = tx.blocking_send(Msg::Done(res));
    });
    let first = rx
        .recv()
        .await
        .ok_or_else(|| ApiError::internal("build ended without a result"))?;
    if let Msg::Done(Err(e)) = &first {
        // Nothing was streamed yet: a plain error response, as dockerd answers.
        return Err(ApiError::from_err(e));
    }
    let (out, body) = h::channel_body(64);
    tokio::spawn(async move {
        let mut next = Some(first);
        loop {
            let m = match next.take() {
                Some(m) => m,
                None => match rx.recv().await {
                    Some(m) => m,
                    None => break,
                },
            };
            let bytes = match &m {
                Msg::Event(e) => render(e),
                Msg::Done(Ok(_)) => break,
                Msg::Done(Err(e)) => render_error(e),
            };
            if out.send(bytes).await.is_err() {
                // The client went away: stop the build at the next step.
                cancel.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    Ok(h::with_type(
        Response::builder().status(StatusCode::OK),
        "application/json",
        body,
    ))
}

/// Serves one build endpoint.
pub async fn serve(
    d: Arc<Daemon>,
    _v: ApiVersion,
    ep: Endpoint,
    req: Request<Incoming>,
) -> ApiResult {
    let q = Query::parse(req.uri().query());
    match ep {
        Endpoint::Build => build(d, req).await,
        Endpoint::Prune => {
            let builds = d.builds.clone();
            let ids = crate::service::containers::blocking(move || builds.prune()).await?;
            h::ok_json(&json!({"CachesDeleted": ids, "SpaceReclaimed": 0}))
        }
        Endpoint::Cancel => {
            let id = q
                .get("id")
                .filter(|i| !i.is_empty())
                .ok_or_else(|| ApiError::invalid("build ID not provided"))?;
            if d.builds.cancel(id) {
                h::no_content(StatusCode::OK)
            } else {
                Err(ApiError::not_found(format!("build with id {id} not found")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_classic_cli_sends() {
        let q = Query::parse(Some(
            "t=a%3A1&t=b&buildargs=%7B%22X%22%3A%221%22%2C%22Y%22%3Anull%7D&labels=%7B%22l%22%3A%22v%22%7D&rm=1&forcerm=1&nocache=1&networkmode=none&target=t&dockerfile=sub%2FDf&shmsize=0&memory=0&cachefrom=%5B%5D&ulimits=null&version=1",
        ));
        let o = parse_build(&q).expect("parse");
        assert_eq!(o.tags, ["a:1", "b"]);
        assert_eq!(o.build_args.get("X"), Some(&Some("1".to_string())));
        assert_eq!(o.build_args.get("Y"), Some(&None));
        assert_eq!(o.labels.get("l").map(String::as_str), Some("v"));
        assert!(o.no_cache && o.force_remove && o.remove);
        assert_eq!(
            (
                o.network.as_str(),
                o.target.as_deref(),
                o.dockerfile.as_str()
            ),
            ("none", Some("t"), "sub/Df")
        );
        let q = Query::parse(Some(
            "pull=1&memory=67108864&cpushares=512&cpusetcpus=0&shmsize=1048576&ulimits=%5B%7B%22Name%22%3A%22nofile%22%2C%22Hard%22%3A200%2C%22Soft%22%3A100%7D%5D&nocachefilter=%5B%22a%22%5D",
        ));
        let o = parse_build(&q).expect("parse");
        assert!(o.pull);
        assert_eq!(o.no_cache_filter, ["a"]);
        assert_eq!(
            (o.resources.memory, o.resources.cpu_shares, o.shm_size),
            (64 << 20, 512, 1 << 20)
        );
        assert_eq!(o.resources.cpuset_cpus, "0");
        assert_eq!(
            o.resources.ulimits,
            Some(vec![Ulimit {
                name: "nofile".into(),
                soft: 100,
                hard: 200
            }])
        );
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        for bad in [
            "version=2",
            "squash=1",
            "memory=x",
            "ulimits=%7B%7D",
            "networkmode=foo",
            "platform=linux%2Fs390x",
            "cachefrom=x",
        ] {
            assert!(parse_build(&Query::parse(Some(bad))).is_err(), "{bad}");
        }
    }
}
