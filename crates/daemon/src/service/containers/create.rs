//! `POST /containers/create`: validation, merging the image's config, the rw layer, the record.

use wharf_api_types::container::{ContainerConfig, CreateRequest, HostConfig};
use wharf_errdefs::ErrorKind;

use super::{blocking, health, network, spec, ContainerService};
use crate::server::error::ApiError;
use crate::state::{normalize_name, Container, RunState, Store};

/// The restart policies Docker knows.
const RESTART_POLICIES: &[&str] = &["", "no", "always", "unless-stopped", "on-failure"];

/// Checks a HostConfig the way dockerd does at create time.
pub fn validate_host_config(hc: &HostConfig) -> Result<(), ApiError> {
    let rp = &hc.restart_policy;
    if !RESTART_POLICIES.contains(&rp.name.as_str()) {
        return Err(ApiError::invalid(format!("invalid restart policy: unknown policy '{}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'", rp.name)));
    }
    if rp.maximum_retry_count < 0 {
        return Err(ApiError::invalid(
            "invalid restart policy: maximum retry count can't be negative",
        ));
    }
    if rp.maximum_retry_count > 0 && rp.name != "on-failure" {
        return Err(ApiError::invalid(format!(
            "invalid restart policy: maximum retry count can only be used with 'on-failure'"
        )));
    }
    if hc.auto_remove && !matches!(rp.name.as_str(), "" | "no") {
        return Err(ApiError::invalid(
            "conflicting options: cannot specify both --restart and --rm",
        ));
    }
    if !hc.runtime.is_empty() && hc.runtime.contains('/') {
        return Err(ApiError::invalid(format!(
            "unknown or invalid runtime name: {}",
            hc.runtime
        )));
    }
    spec::validate(hc).map_err(|e| ApiError::from_err(&e))
}

/// Log drivers we have; [`DOCKER_ONLY_LOG_DRIVERS`] are dockerd's others.
const LOG_DRIVERS: &[&str] = &["json-file", "local", "none"];
const DOCKER_ONLY_LOG_DRIVERS: &[&str] = &[
    "awslogs",
    "fluentd",
    "gcplogs",
    "gelf",
    "journald",
    "logentries",
    "splunk",
    "syslog",
];

/// A driver dockerd does not know either gets dockerd's 400; one it knows that we lack, a 501.
fn check_log_driver(name: &str) -> Result<(), ApiError> {
    if LOG_DRIVERS.contains(&name) {
        Ok(())
    } else if DOCKER_ONLY_LOG_DRIVERS.contains(&name) {
        Err(ApiError::new(
            ErrorKind::NotImplemented,
            format!("log driver {name:?} is not supported"),
        ))
    } else {
        Err(ApiError::invalid(format!(
            "logger: no log driver named '{name}' is registered"
        )))
    }
}

/// Merges the user's config over the image's (Docker's rules: an entrypoint given by the user
/// drops the image's cmd; env and labels merge by key).
pub fn merge_config(user: &ContainerConfig, image: &ContainerConfig) -> ContainerConfig {
    let mut c = user.clone();
    if user.entrypoint.is_none() {
        c.entrypoint = image.entrypoint.clone();
        if user.cmd.is_none() {
            c.cmd = image.cmd.clone();
        }
    }
    let mut env: Vec<String> = image.env.clone().unwrap_or_default();
    for e in user.env.clone().unwrap_or_default() {
        let key = e.split('=').next().unwrap_or("").to_string();
        env.retain(|x| x.split('=').next() != Some(key.as_str()));
        env.push(e);
    }
    c.env = Some(env);
    if c.working_dir.is_empty() {
        c.working_dir = image.working_dir.clone();
    }
    if c.user.is_empty() {
        c.user = image.user.clone();
    }
    let mut labels = image.labels.clone().unwrap_or_default();
    labels.extend(user.labels.clone().unwrap_or_default());
    c.labels = Some(labels);
    if c.exposed_ports.is_none() {
        c.exposed_ports = image.exposed_ports.clone();
    }
    // dockerd adds the image's volumes to the user's (the CLI sends `{}` when there are none).
    if let Some(iv) = &image.volumes {
        let v = c.volumes.get_or_insert_with(Default::default);
        for (k, e) in iv {
            v.entry(k.clone()).or_insert_with(|| e.clone());
        }
    }
    if c.stop_signal.is_none() {
        c.stop_signal = image.stop_signal.clone();
    }
    if c.stop_timeout.is_none() {
        c.stop_timeout = image.stop_timeout;
    }
    if c.shell.is_none() {
        c.shell = image.shell.clone();
    }
    c.on_build = image.on_build.clone();
    c.healthcheck = health::merge(user.healthcheck.as_ref(), image.healthcheck.as_ref());
    c
}

/// The command as (path, args).
pub fn command(c: &ContainerConfig) -> Result<(String, Vec<String>), ApiError> {
    let mut argv: Vec<String> = c
        .entrypoint
        .as_ref()
        .map(|e| e.0.clone())
        .unwrap_or_default();
    argv.extend(c.cmd.as_ref().map(|c| c.0.clone()).unwrap_or_default());
    let mut it = argv.into_iter();
    match it.next() {
        Some(p) if !p.is_empty() => Ok((p, it.collect())),
        _ => Err(ApiError::invalid("no command specified")),
    }
}

const ADJECTIVES: &[&str] = &[
    "admiring",
    "brave",
    "clever",
    "dazzling",
    "eager",
    "focused",
    "gallant",
    "happy",
    "jolly",
    "keen",
    "lucid",
    "modest",
    "nifty",
    "optimistic",
    "peaceful",
    "quirky",
    "relaxed",
    "serene",
    "trusting",
    "upbeat",
    "vibrant",
    "wizardly",
    "youthful",
    "zealous",
];
const NAMES: &[&str] = &[
    "babbage", "curie", "dijkstra", "euler", "fermat", "gauss", "hopper", "knuth", "lamport",
    "lovelace", "meitner", "noether", "pascal", "ritchie", "shannon", "thompson", "turing",
    "wozniak",
];

fn random_name() -> String {
    use rand::Rng;
    let mut r = rand::rng();
    format!(
        "/{}_{}",
        ADJECTIVES[r.random_range(0..ADJECTIVES.len())],
        NAMES[r.random_range(0..NAMES.len())]
    )
}

/// Converts between the image crate's config and the API's (same JSON field names).
pub fn from_image_config(c: &wharf_image::ContainerConfig) -> ContainerConfig {
    serde_json::to_value(c)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

impl ContainerService {
    /// Creates a container; returns its id and warnings.
    pub async fn create(
        &self,
        name: Option<&str>,
        req: CreateRequest,
    ) -> Result<(String, Vec<String>), ApiError> {
        let mut hc = req.host_config.unwrap_or_default();
        network::validate(self, &mut hc, req.config.exposed_ports.as_ref())?;
        validate_host_config(&hc)?;
        self.check_links(&hc)?;
        let mut endpoints =
            network::endpoint_configs(&hc.network_mode, req.networking_config.as_ref())?;
        // `Config.MacAddress` (before API 1.44, docker-py's `mac_address=`) is the mode's
        // network's, as dockerd migrates it.
        if let (Some((_, first)), Some(m)) = (
            endpoints.first_mut(),
            req.config.mac_address.as_deref().filter(|m| !m.is_empty()),
        ) {
            if first.mac.is_none() {
                first.mac = Some(network::check_mac(m)?);
            }
        }
        // On a user network, `HostConfig.Links` (docker-py's `links=`) name endpoint aliases.
        if let (Some((_, first)), Some(links)) = (endpoints.first_mut(), hc.links.as_ref()) {
            if network::is_user_network(&hc.network_mode) && first.links.is_empty() {
                first.links = links.clone();
            }
        }
        let attachments = self
            .network
            .resolve(&endpoints)
            .map_err(|e| ApiError::from_err(&e))?;
        if hc.cgroupns_mode.is_empty() {
            // Stored resolved, as dockerd does: inspect shows which one the container got.
            hc.cgroupns_mode = spec::default_cgroupns_mode().to_string();
        }
        if hc.resources.memory_swappiness == Some(-1) {
            // The CLI's "unset"; dockerd stores it as null.
            hc.resources.memory_swappiness = None;
        }
        if hc.resources.memory > 0 && hc.resources.memory_swap == 0 {
            // dockerd stores the default it applies (swap = memory, so twice the limit in all).
            hc.resources.memory_swap = hc.resources.memory * 2;
        }
        let mut warnings = Vec::new();
        if hc.resources.cpu_percent > 0 {
            // dockerd on Linux discards it with this warning (CpuCount it ignores silently).
            warnings.push("linux does not support CPU percent. Percent discarded.".to_string());
            hc.resources.cpu_percent = 0;
        }
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => normalize_name(n).map_err(|e| ApiError::from_err(&e))?,
            None => loop {
                let n = random_name();
                if self.store.name_taken(&n).is_none() {
                    break n;
                }
            },
        };
        if let Some(id) = self.store.name_taken(&name) {
            return Err(ApiError::from_err(&crate::state::StateError::NameInUse {
                name,
                id,
            }));
        }
        if req.config.image.is_empty() {
            return Err(ApiError::invalid("config.Image is required"));
        }
        health::validate(req.config.healthcheck.as_ref())?;
        let images = self.images.clone();
        let reference = req.config.image.clone();
        let image = blocking(move || images.resolve(&reference)).await?;
        let config = merge_config(&req.config, &from_image_config(&image.config));
        let (path, args) = command(&config)?;
        let cfg = self.config();
        let runtime = if hc.runtime.is_empty() {
            cfg.default_runtime.clone()
        } else {
            hc.runtime.clone()
        };
        if !cfg.runtimes.contains_key(&runtime) {
            return Err(ApiError::invalid(format!(
                "unknown or invalid runtime name: {runtime}"
            )));
        }
        if hc.log_config.kind.is_empty() {
            hc.log_config.kind = cfg.log_driver.clone();
        }
        if hc.log_config.kind == cfg.log_driver {
            // dockerd's merge: the daemon's log-opts fill in what the container did not set.
            for (k, v) in &cfg.log_opts {
                hc.log_config
                    .config
                    .entry(k.clone())
                    .or_insert_with(|| v.clone());
            }
        }
        check_log_driver(&hc.log_config.kind)?;
        hc.runtime = runtime.clone();
        let mount_reqs = crate::service::volumes::requests(&hc, &config)?;
        let from = self.volumes_from(&hc)?;
        let id = crate::ids::new_id();
        // Journaled: a crash before the record is written undoes the layer at the next start.
        let intent = self
            .journal()
            .begin(
                super::reconcile::CREATE,
                &id,
                &super::reconcile::ContainerIntent { name: name.clone() },
            )
            .map_err(|e| ApiError::from_err(&e))?;
        let vols = self.volumes.clone();
        let cid = id.clone();
        let mount_points = match blocking(move || vols.resolve(&cid, &mount_reqs, &from)).await {
            Ok(m) => m,
            Err(e) => {
                let _ = intent.commit();
                return Err(e);
            }
        };
        let release = |mps: &[wharf_volume::MountPoint]| self.volumes.release(&id, mps, true);
        let images = self.images.clone();
        let (cid, iid) = (id.clone(), image.id.clone());
        if let Err(e) = blocking(move || images.create_rw_layer(&cid, &iid)).await {
            // The image store undoes its own partial work.
            release(&mount_points);
            let _ = intent.commit();
            return Err(e);
        }
        crate::fault::point("create:after-layer");
        // Before the record, so a started container always finds them; the journal's undo of
        // an interrupted create forgets them.
        if let Some(list) = attachments {
            if let Err(e) = self.network.configure(&id, list) {
                let images = self.images.clone();
                let cid = id.clone();
                release(&mount_points);
                if blocking(move || images.remove_rw_layer(&cid)).await.is_ok() {
                    let _ = intent.commit();
                }
                return Err(ApiError::from_err(&e));
            }
        }
        crate::fault::point("create:after-endpoints");
        let record = Container {
            id: id.clone(),
            name,
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            path,
            args,
            config,
            host_config: hc,
            image: image.id.clone(),
            runtime,
            driver: self.images.driver().name().to_string(),
            state: RunState::default(),
            restart_count: 0,
            manually_stopped: false,
            has_been_started: false,
            mount_points: mount_points.clone(),
        };
        let inserted = self.store.insert(record);
        let h = match inserted {
            Ok(h) => h,
            Err(e) => {
                let images = self.images.clone();
                let cid = id.clone();
                release(&mount_points);
                self.network_forget(&id);
                if blocking(move || images.remove_rw_layer(&cid)).await.is_ok() {
                    let _ = intent.commit();
                }
                return Err(ApiError::from_err(&e));
            }
        };
        let _ = intent.commit();
        let c = Store::lock(&h).clone();
        self.emit(&c, "create", &[]);
        Ok((id, warnings))
    }
}

impl ContainerService {
    /// `--volumes-from c[:ro|rw]`: each parent's mount points with the override.
    fn volumes_from(
        &self,
        hc: &HostConfig,
    ) -> Result<Vec<wharf_volume::mounts::VolumesFrom>, ApiError> {
        let mut out = Vec::new();
        for spec in hc.volumes_from.as_deref().unwrap_or(&[]) {
            let (name, ro) = wharf_volume::mounts::parse_volumes_from(spec)
                .map_err(|e| ApiError::from_err(&e))?;
            out.push((self.snapshot(&name)?.mount_points, ro));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wharf_api_types::container::RestartPolicy;
    use wharf_api_types::strslice::StrSlice;

    fn cfg(entry: Option<&[&str]>, cmd: Option<&[&str]>, env: &[&str]) -> ContainerConfig {
        let s = |v: &[&str]| StrSlice(v.iter().map(|x| x.to_string()).collect());
        ContainerConfig {
            entrypoint: entry.map(s),
            cmd: cmd.map(s),
            env: Some(env.iter().map(|x| x.to_string()).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn merge_follows_docker_rules() {
        let image = cfg(Some(&["/init"]), Some(&["serve"]), &["PATH=/bin", "A=1"]);
        let m = merge_config(&cfg(None, None, &["A=2", "B=3"]), &image);
        assert_eq!(
            command(&m).expect("cmd"),
            ("/init".to_string(), vec!["serve".to_string()])
        );
        assert_eq!(m.env.expect("env"), ["PATH=/bin", "A=2", "B=3"]);
        let m = merge_config(&cfg(Some(&["sh"]), None, &[]), &image);
        assert_eq!(command(&m).expect("cmd"), ("sh".to_string(), vec![]));
        let m = merge_config(&cfg(None, Some(&["echo", "hi"]), &[]), &image);
        assert_eq!(command(&m).expect("cmd").1, ["echo", "hi"]);
        assert!(command(&cfg(None, None, &[])).is_err());
    }

    #[test]
    fn host_config_checks() {
        let ok = HostConfig::default();
        assert!(validate_host_config(&ok).is_ok());
        let bad = |hc: HostConfig| validate_host_config(&hc).is_err();
        assert!(bad(HostConfig {
            restart_policy: RestartPolicy {
                name: "sometimes".into(),
                maximum_retry_count: 0
            },
            ..Default::default()
        }));
        assert!(bad(HostConfig {
            restart_policy: RestartPolicy {
                name: "always".into(),
                maximum_retry_count: 3
            },
            ..Default::default()
        }));
        assert!(bad(HostConfig {
            auto_remove: true,
            restart_policy: RestartPolicy {
                name: "always".into(),
                maximum_retry_count: 0
            },
            ..Default::default()
        }));
        assert!(bad(HostConfig {
            cap_add: Some(vec!["NOPE".into()]),
            ..Default::default()
        }));
    }

    #[test]
    fn log_drivers_are_checked_like_dockerd() {
        assert!(check_log_driver("json-file").is_ok());
        let e = check_log_driver("syslog").expect_err("not ours");
        assert_eq!(e.kind, ErrorKind::NotImplemented);
        let e = check_log_driver("nope").expect_err("unknown");
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        assert_eq!(
            e.message,
            "logger: no log driver named 'nope' is registered"
        );
    }

    #[test]
    fn random_names_are_valid() {
        for _ in 0..20 {
            assert!(normalize_name(&random_name()).is_ok());
        }
    }
}
