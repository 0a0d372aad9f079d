//! System handlers.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use wharf_api_types::system::{ComponentVersion, Info, Platform, RuntimeInfo, VersionResponse};
use wharf_api_types::version::{MAX_API_VERSION, MIN_API_VERSION};
use wharf_api_types::{ApiVersion, Filters};

use super::routes::Endpoint;
use crate::events::{self, EVENT_FILTERS};
use crate::server::error::ApiError;
use crate::server::http::{self as h, ApiResult, Query};
use crate::wiring::Daemon;

/// Serves a system endpoint.
pub async fn serve(
    d: Arc<Daemon>,
    _v: ApiVersion,
    ep: Endpoint,
    req: Request<Incoming>,
) -> ApiResult {
    let q = Query::parse(req.uri().query());
    match ep {
        Endpoint::Ping { head } => Ok(ping(head)),
        Endpoint::Version => h::ok_json(&version(&d)),
        Endpoint::Info => h::ok_json(&d.info()),
        Endpoint::Events => events_stream(&d, parse_events(&q)?),
    }
}

fn ping(head: bool) -> h::Resp {
    let mut r = h::text(StatusCode::OK, if head { "" } else { "OK" });
    let hs = r.headers_mut();
    hs.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    hs.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    hs.insert("Swarm", HeaderValue::from_static("inactive"));
    r
}

fn version(d: &Daemon) -> VersionResponse {
    let host = &d.host;
    let ver = env!("CARGO_PKG_VERSION").to_string();
    let mut details = std::collections::BTreeMap::new();
    details.insert("ApiVersion".to_string(), MAX_API_VERSION.to_string());
    details.insert("MinAPIVersion".to_string(), MIN_API_VERSION.to_string());
    details.insert("Os".to_string(), "linux".to_string());
    details.insert("Arch".to_string(), host.goarch().to_string());
    details.insert("KernelVersion".to_string(), host.kernel_version.clone());
    details.insert("Experimental".to_string(), d.experimental().to_string());
    VersionResponse {
        platform: Platform {
            name: "Wharf Engine".to_string(),
        },
        components: vec![ComponentVersion {
            name: "Engine".to_string(),
            version: ver.clone(),
            details,
        }],
        version: ver,
        api_version: MAX_API_VERSION.to_string(),
        min_api_version: MIN_API_VERSION.to_string(),
        git_commit: option_env!("WHARF_GIT_COMMIT")
            .unwrap_or("unknown")
            .to_string(),
        go_version: "n/a (Rust)".to_string(),
        os: "linux".to_string(),
        arch: host.goarch().to_string(),
        kernel_version: host.kernel_version.clone(),
        experimental: d.experimental(),
        build_time: String::new(),
    }
}

impl Daemon {
    /// The `/info` answer.
    pub fn info(&self) -> Info {
        let cfg = self.config();
        let counts = self.container_counts();
        Info {
            id: self.id.clone(),
            containers: counts.iter().sum(),
            containers_running: counts[0],
            containers_paused: counts[1],
            containers_stopped: counts[2],
            images: i64::try_from(self.containers.images().list().len()).unwrap_or(i64::MAX),
            driver: cfg.storage_driver.clone(),
            plugins: serde_json::json!({"Volume": ["local"], "Network": ["bridge", "host", "ipvlan", "macvlan", "null"], "Authorization": null,
                "Log": ["json-file", "local", "none"]}),
            memory_limit: true,
            swap_limit: true,
            cpu_cfs_period: true,
            cpu_cfs_quota: true,
            cpu_shares: true,
            cpu_set: true,
            pids_limit: true,
            // Read each time, as dockerd does: anyone may change it.
            ipv4_forwarding: std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
                .is_ok_and(|v| v.trim() == "1"),
            debug: cfg.debug,
            nfd: std::fs::read_dir("/proc/self/fd")
                .map(|r| r.count() as i64)
                .unwrap_or(0),
            n_goroutines: 0,
            system_time: chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, false),
            logging_driver: cfg.log_driver.clone(),
            cgroup_driver: "cgroupfs".to_string(),
            cgroup_version: self.host.cgroup_version.clone(),
            n_events_listener: self.events.listeners() as i64,
            kernel_version: self.host.kernel_version.clone(),
            operating_system: self.host.operating_system.clone(),
            os_version: self.host.os_version.clone(),
            os_type: "linux".to_string(),
            architecture: self.host.architecture.clone(),
            ncpu: self.host.ncpu,
            mem_total: self.host.mem_total,
            docker_root_dir: cfg.data_root.display().to_string(),
            name: self.host.hostname.clone(),
            labels: cfg.labels.clone(),
            experimental_build: cfg.experimental,
            server_version: env!("CARGO_PKG_VERSION").to_string(),
            runtimes: cfg
                .runtimes
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        RuntimeInfo {
                            path: v.path.clone(),
                            runtime_args: v.runtime_args.clone(),
                        },
                    )
                })
                .collect(),
            default_runtime: cfg.default_runtime.clone(),
            live_restore_enabled: cfg.live_restore,
            isolation: String::new(),
            init_binary: "wharf-init".to_string(),
            security_options: if cfg.seccomp_profile.as_deref() == Some("unconfined") {
                vec![]
            } else {
                vec!["name=seccomp,profile=builtin".to_string()]
            },
            warnings: Vec::new(),
            swarm: serde_json::json!({"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                "ControlAvailable": false, "Error": "", "RemoteManagers": null}),
            ..Info::default()
        }
    }
}

/// Parsed `/events` query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsQuery {
    /// Replay from here (ns since epoch).
    pub since: Option<i64>,
    /// Stop here (ns since epoch).
    pub until: Option<i64>,
    /// Filters.
    pub filters: Filters,
}

/// Parses `since`, `until`, `filters`.
pub fn parse_events(q: &Query) -> Result<EventsQuery, ApiError> {
    let t = |k: &str| -> Result<Option<i64>, ApiError> {
        match q.get(k).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => events::parse_time(s)
                .map(Some)
                .ok_or_else(|| ApiError::invalid(format!("invalid value for {k}: {s:?}"))),
        }
    };
    let filters = q.filters()?;
    filters
        .validate(EVENT_FILTERS)
        .map_err(|e| ApiError::from_err(&e))?;
    let (since, until) = (t("since")?, t("until")?);
    if let (Some(s), Some(u)) = (since, until) {
        if s > u {
            return Err(ApiError::invalid(
                "`since` time must be before `until` time",
            ));
        }
    }
    Ok(EventsQuery {
        since,
        until,
        filters,
    })
}

fn events_stream(d: &Daemon, q: EventsQuery) -> ApiResult {
    let (past, mut rx) = d.events.subscribe(q.since);
    let (tx, body) = h::channel_body(64);
    tokio::spawn(async move {
        let until = q.until;
        let enc = |e: &wharf_api_types::system::EventMessage| {
            let mut v = serde_json::to_vec(e).unwrap_or_default();
            v.push(b'\n');
            Bytes::from(v)
        };
        for e in past
            .iter()
            .filter(|e| until.is_none_or(|u| e.time_nano <= u))
        {
            if events::matches(&q.filters, e) && tx.send(enc(e)).await.is_err() {
                return;
            }
        }
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
        let deadline = until.map(|u| Duration::from_nanos(u.saturating_sub(now).max(0) as u64));
        let sleep = tokio::time::sleep(deadline.unwrap_or(Duration::from_secs(u64::MAX / 4)));
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep, if deadline.is_some() => return,
                _ = tx.closed() => return,
                ev = rx.recv() => match ev {
                    Ok(e) => if events::matches(&q.filters, &e) && tx.send(enc(&e)).await.is_err() { return },
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return,
                },
            }
        }
    });
    Ok(h::with_type(
        Response::builder().status(StatusCode::OK),
        "application/json",
        body,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_query() {
        let q = Query::parse(Some(
            "since=10&until=20&filters=%7B%22type%22%3A%5B%22container%22%5D%7D",
        ));
        let e = parse_events(&q).expect("ok");
        assert_eq!(
            (e.since, e.until),
            (Some(10_000_000_000), Some(20_000_000_000))
        );
        assert!(parse_events(&Query::parse(Some("since=20&until=10"))).is_err());
        assert!(parse_events(&Query::parse(Some("since=abc"))).is_err());
        assert!(parse_events(&Query::parse(Some(
            "filters=%7B%22nope%22%3A%5B%22x%22%5D%7D"
        )))
        .is_err());
    }

    #[test]
    fn ping_has_headers() {
        let r = ping(true);
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers().get("Swarm").is_some());
    }
}
