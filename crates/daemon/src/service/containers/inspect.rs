//! Inspect and list views of container records, and the list filters.

use std::collections::BTreeMap;

use wharf_api_types::container::{
    ContainerInspect, ContainerState, ContainerSummary, GraphDriver, HostConfig, MountPoint,
    SummaryHostConfig, SummaryNetworkSettings,
};
use wharf_api_types::Filters;

use super::{blocking, ContainerService};
use crate::server::error::ApiError;
use crate::state::{Container, Status, Store};

/// Filters `GET /containers/json` accepts.
pub const LIST_FILTERS: &[&str] = &[
    "ancestor",
    "before",
    "expose",
    "exited",
    "health",
    "id",
    "isolation",
    "is-task",
    "label",
    "name",
    "network",
    "publish",
    "since",
    "status",
    "volume",
];

/// Options of `GET /containers/json`.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Include stopped containers.
    pub all: bool,
    /// Only the newest N (implies all).
    pub limit: Option<usize>,
    /// Compute SizeRw/SizeRootFs.
    pub size: bool,
    /// Filters.
    pub filters: Filters,
}

/// Docker's `units.HumanDuration`.
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..=59 => format!("{s} seconds"),
        60..=119 => "About a minute".into(),
        _ if s < 3600 => format!("{} minutes", s / 60),
        _ if s < 7200 => "About an hour".into(),
        _ if s < 48 * 3600 => format!("{} hours", s / 3600),
        _ if s < 7 * 24 * 3600 * 2 => format!("{} days", s / (24 * 3600)),
        _ if s < 30 * 24 * 3600 * 3 => format!("{} weeks", s / (7 * 24 * 3600)),
        _ if s < 365 * 24 * 3600 * 2 => format!("{} months", s / (30 * 24 * 3600)),
        _ => format!("{} years", s / (365 * 24 * 3600)),
    }
}

fn since(rfc: &str, now: i64) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc)
        .map(|t| now - t.timestamp())
        .unwrap_or(0)
}

/// The STATUS column (`Up 5 minutes`, `Exited (0) 3 seconds ago`, ...).
pub fn status_text(c: &Container, now: i64) -> String {
    let health = c
        .state
        .health
        .as_ref()
        .map(|h| {
            format!(
                " ({})",
                if h.status == "starting" {
                    "health: starting"
                } else {
                    h.status.as_str()
                }
            )
        })
        .unwrap_or_default();
    match c.state.status {
        Status::Running => format!(
            "Up {}{health}",
            human_duration(since(&c.state.started_at, now))
        ),
        Status::Paused => format!(
            "Up {} (Paused)",
            human_duration(since(&c.state.started_at, now))
        ),
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            c.state.exit_code,
            human_duration(since(&c.state.finished_at, now))
        ),
        Status::Exited if c.has_been_started => format!(
            "Exited ({}) {} ago",
            c.state.exit_code,
            human_duration(since(&c.state.finished_at, now))
        ),
        Status::Exited | Status::Created => "Created".into(),
        Status::Removing => "Removal In Progress".into(),
        Status::Dead => "Dead".into(),
    }
}

/// The container's binds, volumes and `--mount` tmpfs as inspect reports them.
pub(super) fn mounts_view(c: &Container) -> Vec<MountPoint> {
    c.mount_points
        .iter()
        .map(|m| MountPoint {
            kind: m.kind.as_str().to_string(),
            name: m.name.clone(),
            source: m.source.clone(),
            destination: m.destination.clone(),
            driver: m.driver.clone(),
            mode: m.mode.clone(),
            rw: m.rw,
            propagation: m.propagation.clone(),
        })
        .collect()
}

impl ContainerService {
    /// `GET /containers/{id}/json`.
    pub async fn inspect(&self, key: &str, size: bool) -> Result<ContainerInspect, ApiError> {
        let c = self.snapshot(key)?;
        let dir = self.store.dir(&c.id);
        let (size_rw, size_root) = if size {
            self.sizes(&c.id)
                .await
                .map(|(a, b)| (Some(a), Some(b)))
                .unwrap_or((None, None))
        } else {
            (None, None)
        };
        let alive = c.state.status.is_alive();
        let mut data = BTreeMap::new();
        if let Some(mp) = self
            .images
            .driver()
            .status()
            .into_iter()
            .find(|(k, _)| k == "Backing Filesystem")
        {
            data.insert("BackingFilesystem".to_string(), mp.1);
        }
        Ok(ContainerInspect {
            id: c.id.clone(),
            created: c.created.clone(),
            path: c.path.clone(),
            args: c.args.clone(),
            state: ContainerState {
                status: c.state.status.as_str().to_string(),
                running: alive || c.state.status == Status::Restarting,
                paused: c.state.status == Status::Paused,
                restarting: c.state.status == Status::Restarting,
                oom_killed: c.state.oom_killed,
                dead: c.state.status == Status::Dead,
                pid: c.state.pid,
                exit_code: c.state.exit_code,
                error: c.state.error.clone(),
                started_at: c.state.started_at.clone(),
                finished_at: c.state.finished_at.clone(),
                health: c.state.health.clone(),
            },
            image: c.image.clone(),
            resolv_conf_path: dir.join("resolv.conf").display().to_string(),
            hostname_path: dir.join("hostname").display().to_string(),
            hosts_path: dir.join("hosts").display().to_string(),
            log_path: if c.host_config.log_config.kind == "json-file" {
                self.log_path(&c.id).display().to_string()
            } else {
                String::new()
            },
            name: c.name.clone(),
            restart_count: c.restart_count,
            driver: c.driver.clone(),
            platform: "linux".into(),
            exec_ids: Some(self.exec_ids(&c.id)).filter(|v| !v.is_empty()),
            host_config: HostConfig {
                links: self.links_view(&c),
                ..c.host_config.clone()
            },
            graph_driver: GraphDriver {
                name: c.driver.clone(),
                data,
            },
            size_rw,
            size_root_fs: size_root,
            mounts: mounts_view(&c),
            config: c.config.clone(),
            network_settings: self.network_settings(&c),
            ..Default::default()
        })
    }

    async fn sizes(&self, id: &str) -> Result<(i64, i64), ApiError> {
        let images = self.images.clone();
        let id = id.to_string();
        let (rw, root) = blocking(move || images.rw_layer_size(&id)).await?;
        Ok((rw as i64, root as i64))
    }

    /// `GET /containers/json`.
    pub async fn list(&self, opts: &ListOptions) -> Result<Vec<ContainerSummary>, ApiError> {
        let f = &opts.filters;
        f.validate(LIST_FILTERS)
            .map_err(|e| ApiError::from_err(&e))?;
        let mut all: Vec<Container> = self
            .store
            .all()
            .iter()
            .map(|h| Store::lock(h).clone())
            .collect();
        all.sort_by(|a, b| b.created.cmp(&a.created));
        let bound = |k: &str| -> Result<Option<String>, ApiError> {
            match f.get(k).first() {
                Some(v) => Ok(Some(self.snapshot(v)?.created)),
                None => Ok(None),
            }
        };
        let (before, after) = (bound("before")?, bound("since")?);
        let mut ancestors: Vec<String> = Vec::new();
        for a in f.get("ancestor") {
            let images = self.images.clone();
            let a2 = a.clone();
            if let Ok(img) = blocking(move || images.resolve(&a2)).await {
                ancestors.push(img.id);
            }
        }
        for s in f.get("status") {
            if ![
                "created",
                "restarting",
                "running",
                "removing",
                "paused",
                "exited",
                "dead",
            ]
            .contains(&s.as_str())
            {
                return Err(ApiError::invalid(format!("invalid filter 'status={s}'")));
            }
        }
        let exited: Vec<i64> = f
            .get("exited")
            .iter()
            .map(|v| {
                v.parse()
                    .map_err(|_| ApiError::invalid(format!("invalid filter 'exited={v}'")))
            })
            .collect::<Result<_, _>>()?;
        let all_wanted = opts.all
            || opts.limit.is_some()
            || f.contains("status")
            || f.contains("exited")
            || before.is_some()
            || after.is_some();
        let now = chrono::Utc::now().timestamp();
        let mut out = Vec::new();
        for c in all {
            let st = c.state.status;
            if !all_wanted && !(st.is_alive() || st == Status::Restarting) {
                continue;
            }
            let ok = f.matches_any("status", |v| v == st.as_str())
                && f.matches_any("id", |v| c.id.starts_with(v))
                && f.matches_any("name", |v| {
                    c.short_name().contains(v.trim_start_matches('/'))
                })
                && f.matches_labels(&c.config.labels.clone().unwrap_or_default())
                && (exited.is_empty()
                    || (st == Status::Exited && exited.contains(&c.state.exit_code)))
                && (!f.contains("ancestor")
                    || ancestors.contains(&c.image)
                    || f.get("ancestor").contains(&c.config.image))
                && f.matches_any("health", |v| {
                    c.state
                        .health
                        .as_ref()
                        .map(|h| h.status.as_str())
                        .unwrap_or("none")
                        == v
                })
                && before.as_ref().is_none_or(|b| c.created < *b)
                && after.as_ref().is_none_or(|a| c.created > *a);
            if !ok {
                continue;
            }
            let (size_rw, size_root_fs) = if opts.size {
                self.sizes(&c.id)
                    .await
                    .map(|(a, b)| (Some(a), Some(b)))
                    .unwrap_or((None, None))
            } else {
                (None, None)
            };
            out.push(ContainerSummary {
                id: c.id.clone(),
                names: vec![c.name.clone()],
                image: c.config.image.clone(),
                image_id: c.image.clone(),
                command: c.command_line(),
                created: chrono::DateTime::parse_from_rfc3339(&c.created)
                    .map(|t| t.timestamp())
                    .unwrap_or(0),
                ports: self.ports_summary(&c),
                size_rw,
                size_root_fs,
                labels: c.config.labels.clone().unwrap_or_default(),
                state: st.as_str().to_string(),
                status: status_text(&c, now),
                host_config: SummaryHostConfig {
                    network_mode: c.host_config.network_mode.clone(),
                },
                network_settings: SummaryNetworkSettings {
                    networks: {
                        let sb = self
                            .network
                            .sandbox(&c.id)
                            .filter(|_| c.state.status.is_alive());
                        self.endpoints_view(&c, sb.as_ref())
                    },
                },
                mounts: mounts_view(&c),
            });
            if opts.limit.is_some_and(|l| out.len() >= l) {
                break;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_docker() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(5), "5 seconds");
        assert_eq!(human_duration(90), "About a minute");
        assert_eq!(human_duration(600), "10 minutes");
        assert_eq!(human_duration(5000), "About an hour");
        assert_eq!(human_duration(3 * 3600), "3 hours");
    }
}
