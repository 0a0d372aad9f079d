//! Volumes for the API and for containers: the daemon's side of `wharf_volume` (events,
//! resolving a create request's mounts, mounting with copy-up at start, releasing at removal).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wharf_api_types::container::{ContainerConfig, HostConfig, Mount};
use wharf_volume::mounts::{check_target, parse_bind_spec, tmpfs_options, OciMount, VolumesFrom};
use wharf_volume::{MountKind, MountPoint, MountRequest, VolumeError, VolumeStore, VolumeView};

use crate::events::Events;
use crate::server::error::ApiError;

/// The daemon's volume backend.
pub struct Volumes {
    store: VolumeStore,
    events: Arc<Events>,
}

fn api(e: VolumeError) -> ApiError {
    ApiError::from_err(&e)
}

fn mount_config(kind: &str, msg: impl std::fmt::Display) -> ApiError {
    ApiError::invalid(format!("invalid mount config for type \"{kind}\": {msg}"))
}

/// Converts and checks one `HostConfig.Mounts` entry with dockerd's messages.
pub fn from_api_mount(m: &Mount) -> Result<MountRequest, ApiError> {
    let t = m.kind.as_str();
    let kind = match t {
        "bind" => MountKind::Bind,
        "volume" => MountKind::Volume,
        "tmpfs" => MountKind::Tmpfs,
        _ => return Err(mount_config(t, "mount type unknown")),
    };
    check_target(kind, &m.target).map_err(api)?;
    let extra = |f: &str| mount_config(t, format_args!("field {f} must not be specified"));
    let mut r = MountRequest {
        kind,
        source: m.source.clone(),
        target: m.target.clone(),
        read_only: m.read_only,
        ..Default::default()
    };
    if kind != MountKind::Bind && m.bind_options.is_some() {
        return Err(extra("BindOptions"));
    }
    if kind != MountKind::Volume && m.volume_options.is_some() {
        return Err(extra("VolumeOptions"));
    }
    if kind != MountKind::Tmpfs && m.tmpfs_options.is_some() {
        return Err(extra("TmpfsOptions"));
    }
    match kind {
        MountKind::Bind => {
            if m.source.is_empty() {
                return Err(mount_config(t, "field Source must not be empty"));
            }
            if !m.source.starts_with('/') {
                return Err(mount_config(
                    t,
                    format_args!(
                        "invalid mount path: '{}' mount path must be absolute",
                        m.source
                    ),
                ));
            }
            if !Path::new(&m.source).exists() {
                return Err(mount_config(
                    t,
                    format_args!("bind source path does not exist: {}", m.source),
                ));
            }
            if let Some(b) = &m.bind_options {
                let p = b.get("Propagation").and_then(|v| v.as_str()).unwrap_or("");
                if !matches!(
                    p,
                    "" | "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave"
                ) {
                    return Err(ApiError::invalid(format!("invalid propagation mode: {p}")));
                }
                r.propagation = p.to_string();
                r.nonrecursive = b
                    .get("NonRecursive")
                    .and_then(|v| v.as_bool())
                    .unwrap_or(false);
            }
        }
        MountKind::Volume => {
            if let Some(o) = &m.volume_options {
                r.nocopy = o.no_copy;
                r.labels = o.labels.clone().unwrap_or_default();
                r.subpath = o.subpath.clone();
                if let Some(d) = &o.driver_config {
                    r.driver = d.name.clone();
                    r.driver_opts = d.options.clone().unwrap_or_default();
                }
                if r.subpath.starts_with('/') || r.subpath.split('/').any(|c| c == "..") {
                    return Err(mount_config(
                        t,
                        "subpath must be a relative path within the volume",
                    ));
                }
            }
            r.mode = "z".into();
        }
        MountKind::Tmpfs => {
            if !m.source.is_empty() {
                return Err(extra("Source"));
            }
            if let Some(o) = &m.tmpfs_options {
                if o.size_bytes < 0 {
                    return Err(mount_config(t, "invalid tmpfs size"));
                }
                r.tmpfs_size = o.size_bytes;
                r.tmpfs_mode = o.mode;
            }
        }
    }
    Ok(r)
}

/// Every mount a create request asks for, in dockerd's order, checked without side effects:
/// `Binds`, then `Mounts` (a destination twice is an error), then the image's and `-v /path`
/// volumes not otherwise covered (anonymous volumes).
pub fn requests(hc: &HostConfig, config: &ContainerConfig) -> Result<Vec<MountRequest>, ApiError> {
    let mut out: Vec<MountRequest> = Vec::new();
    let dup = |out: &[MountRequest], t: &str| {
        out.iter()
            .any(|r| r.target.trim_end_matches('/') == t.trim_end_matches('/'))
    };
    for b in hc.binds.as_deref().unwrap_or(&[]) {
        let mut r = parse_bind_spec(b).map_err(api)?;
        r.driver = hc.volume_driver.clone();
        if dup(&out, &r.target) {
            return Err(ApiError::invalid(format!(
                "Duplicate mount point: {}",
                r.target
            )));
        }
        out.push(r);
    }
    for m in hc.mounts.as_deref().unwrap_or(&[]) {
        let r = from_api_mount(m)?;
        if dup(&out, &r.target) {
            return Err(ApiError::invalid(format!(
                "Duplicate mount point: {}",
                r.target
            )));
        }
        out.push(r);
    }
    let tmpfs = hc.tmpfs.clone().unwrap_or_default();
    for dest in config.volumes.iter().flat_map(|v| v.keys()) {
        if dup(&out, dest) || tmpfs.contains_key(dest) {
            continue;
        }
        check_target(MountKind::Volume, dest).map_err(api)?;
        out.push(MountRequest {
            kind: MountKind::Volume,
            target: dest.clone(),
            driver: hc.volume_driver.clone(),
            ..Default::default()
        });
    }
    Ok(out)
}

/// Opens `rel` under `root` with symlinks resolved inside `root`; returns the real host path.
fn resolve_in(root: &Path, rel: &str) -> std::io::Result<PathBuf> {
    use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
    let dir = std::fs::File::open(root)?;
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = openat2(&dir, rel.trim_start_matches('/'), how)?;
    std::fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&fd)
    ))
}

impl Volumes {
    /// Opens the store under `<data-root>/volumes` with the kernel mounter.
    pub fn open(root: &Path, events: Arc<Events>) -> Result<Volumes, VolumeError> {
        let store = VolumeStore::open(root, Arc::new(wharf_volume::sys::SysMounter))?;
        Ok(Volumes { store, events })
    }

    /// The store.
    pub fn store(&self) -> &VolumeStore {
        &self.store
    }

    /// Publishes a volume event (the volume's name is its id).
    pub fn emit(&self, action: &str, name: &str, driver: &str, extra: &[(&str, String)]) {
        let mut attrs = BTreeMap::new();
        attrs.insert("driver".to_string(), driver.to_string());
        for (k, v) in extra {
            attrs.insert(k.to_string(), v.clone());
        }
        self.events.publish("volume", action, name, attrs);
    }

    /// Creates (or returns) a volume for the API, with its event.
    pub fn create(
        &self,
        name: Option<&str>,
        driver: &str,
        opts: &BTreeMap<String, String>,
        labels: &BTreeMap<String, String>,
        user: Option<&str>,
    ) -> Result<VolumeView, ApiError> {
        let (v, created) = self
            .store
            .create(name, driver, opts, labels, user)
            .map_err(api)?;
        if created {
            self.emit("create", &v.name, &v.driver, &[]);
        }
        Ok(v)
    }

    /// Removes a volume, with its event.
    pub fn remove(&self, name: &str, force: bool) -> Result<(), ApiError> {
        let driver = self.store.get(name).map(|v| v.driver).unwrap_or_default();
        self.store.remove(name, force).map_err(api)?;
        if !driver.is_empty() {
            self.emit("destroy", name, &driver, &[]);
        }
        Ok(())
    }

    /// Turns a container's requests (plus `--volumes-from` parents' mount points, each with its
    /// ro/rw override) into mount points, creating volumes and taking references for `id`.
    /// On failure everything taken here is given back.
    pub fn resolve(
        &self,
        id: &str,
        reqs: &[MountRequest],
        from: &[VolumesFrom],
    ) -> Result<Vec<MountPoint>, ApiError> {
        let mut out: Vec<MountPoint> = Vec::new();
        let r = self.resolve_into(id, reqs, from, &mut out);
        if r.is_err() {
            self.release(id, &out, true);
        }
        r.map(|()| out)
    }

    fn resolve_into(
        &self,
        id: &str,
        reqs: &[MountRequest],
        from: &[VolumesFrom],
        out: &mut Vec<MountPoint>,
    ) -> Result<(), ApiError> {
        for (mps, ro) in from {
            for mp in mps {
                let mut mp = mp.clone();
                if let Some(ro) = ro {
                    mp.rw = !ro;
                }
                mp.copy_data = false;
                if mp.kind == MountKind::Volume {
                    self.store.add_ref(&mp.name, id).map_err(api)?;
                }
                out.retain(|o| o.destination != mp.destination);
                out.push(mp);
            }
        }
        for r in reqs {
            let mut mp = MountPoint {
                kind: r.kind,
                destination: r.target.clone(),
                rw: !r.read_only,
                mode: r.mode.clone(),
                propagation: r.propagation.clone(),
                subpath: r.subpath.clone(),
                nonrecursive: r.nonrecursive,
                ..Default::default()
            };
            match r.kind {
                MountKind::Bind => {
                    if r.create_source && !Path::new(&r.source).exists() {
                        std::fs::create_dir_all(&r.source).map_err(|e| {
                            ApiError::internal(format!(
                                "error while creating mount source path '{}': {e}",
                                r.source
                            ))
                        })?;
                    }
                    mp.source = r.source.clone();
                    if mp.propagation.is_empty() {
                        mp.propagation = "rprivate".into();
                    }
                }
                MountKind::Volume => {
                    let name = (!r.source.is_empty()).then_some(r.source.as_str());
                    if name.is_some() && r.mode.is_empty() {
                        mp.mode = "z".into();
                    }
                    let v = self.create(name, &r.driver, &r.driver_opts, &r.labels, Some(id))?;
                    mp.name = v.name;
                    mp.driver = v.driver;
                    mp.source = v.mountpoint.display().to_string();
                    mp.copy_data = !r.nocopy && r.subpath.is_empty();
                }
                MountKind::Tmpfs => mp.tmpfs_options = tmpfs_options(r.tmpfs_size, r.tmpfs_mode),
            }
            out.retain(|o| o.destination != mp.destination);
            out.push(mp);
        }
        Ok(())
    }

    /// At start: mounts the container's volumes, fills fresh ones from the image (`rootfs`),
    /// and returns the OCI mounts plus whether any copy-up happened (its flag is then cleared).
    pub fn mount_all(
        &self,
        id: &str,
        mps: &[MountPoint],
        rootfs: &Path,
    ) -> Result<(Vec<OciMount>, bool), ApiError> {
        let mut out = Vec::new();
        let mut copied = false;
        for (i, mp) in mps.iter().enumerate() {
            let source = match mp.kind {
                MountKind::Volume => {
                    let path = match self.store.mount(&mp.name, id) {
                        Ok(p) => p,
                        Err(e) => {
                            self.unmount_all(id, &mps[..i]);
                            return Err(api(e));
                        }
                    };
                    self.emit(
                        "mount",
                        &mp.name,
                        &mp.driver,
                        &[
                            ("container", id.to_string()),
                            ("destination", mp.destination.clone()),
                            ("read/write", mp.rw.to_string()),
                            ("propagation", mp.propagation.clone()),
                        ],
                    );
                    if mp.copy_data {
                        if let Ok(src) = resolve_in(rootfs, &mp.destination) {
                            copied |= wharf_volume::copyup::copy_up(&src, &path).map_err(api)?;
                        }
                    }
                    if mp.subpath.is_empty() {
                        path
                    } else {
                        resolve_in(&path, &mp.subpath).map_err(|e| {
                            ApiError::invalid(format!(
                                "cannot access path {}/{}: {e}",
                                path.display(),
                                mp.subpath
                            ))
                        })?
                    }
                }
                MountKind::Bind => PathBuf::from(&mp.source),
                MountKind::Tmpfs => PathBuf::new(),
            };
            out.push(mp.oci(&source.display().to_string()));
        }
        Ok((out, copied))
    }

    /// Ends `id`'s use of its volume mounts.
    pub fn unmount_all(&self, id: &str, mps: &[MountPoint]) {
        for mp in mps.iter().filter(|m| m.kind == MountKind::Volume) {
            match self.store.unmount(&mp.name, id) {
                Ok(true) => self.emit(
                    "unmount",
                    &mp.name,
                    &mp.driver,
                    &[("container", id.to_string())],
                ),
                Ok(false) => {}
                Err(e) => tracing::warn!(volume = %mp.name, "unmounting: {e}"),
            }
        }
    }

    /// Drops `id`'s references; with `remove_anonymous`, removes its anonymous volumes that
    /// nobody else uses (`rm -v`, `run --rm`); named volumes are never removed here.
    pub fn release(&self, id: &str, mps: &[MountPoint], remove_anonymous: bool) {
        for mp in mps.iter().filter(|m| m.kind == MountKind::Volume) {
            self.store.release(&mp.name, id);
            if !remove_anonymous {
                continue;
            }
            let Ok(v) = self.store.get(&mp.name) else {
                continue;
            };
            if v.anonymous() && v.users.is_empty() {
                if let Err(e) = self.remove(&mp.name, false) {
                    tracing::warn!(volume = %mp.name, "removing anonymous volume: {e}");
                }
            }
        }
    }

    /// At daemon start: references from every container record.
    pub fn restore_refs(&self, containers: &HashMap<String, Vec<MountPoint>>) {
        for (id, mps) in containers {
            for mp in mps.iter().filter(|m| m.kind == MountKind::Volume) {
                if let Err(e) = self.store.add_ref(&mp.name, id) {
                    tracing::warn!(container = %id, volume = %mp.name, "volume of a container is gone: {e}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wharf_api_types::container::{TmpfsOptions, VolumeOptions};

    fn mount(kind: &str, source: &str, target: &str) -> Mount {
        Mount {
            kind: kind.into(),
            source: source.into(),
            target: target.into(),
            ..Default::default()
        }
    }

    #[test]
    fn api_mounts_are_checked_like_dockerd() {
        let err = |m: Mount| from_api_mount(&m).expect_err("bad").message;
        assert_eq!(
            err(mount("bind", "/no/such/dir/anywhere", "/x")),
            "invalid mount config for type \"bind\": bind source path does not exist: /no/such/dir/anywhere"
        );
        assert_eq!(
            err(mount("bind", "rel", "/x")),
            "invalid mount config for type \"bind\": invalid mount path: 'rel' mount path must be absolute"
        );
        assert_eq!(
            err(mount("bind", "", "/x")),
            "invalid mount config for type \"bind\": field Source must not be empty"
        );
        assert_eq!(
            err(mount("npipe", "", "/x")),
            "invalid mount config for type \"npipe\": mount type unknown"
        );
        assert_eq!(
            err(mount("tmpfs", "src", "/x")),
            "invalid mount config for type \"tmpfs\": field Source must not be specified"
        );
        assert_eq!(
            err(mount("volume", "v", "rel")),
            "invalid mount config for type \"volume\": invalid mount path: 'rel' mount path must be absolute"
        );
        let mut m = mount("bind", "/", "/x");
        m.volume_options = Some(VolumeOptions::default());
        assert_eq!(
            err(m),
            "invalid mount config for type \"bind\": field VolumeOptions must not be specified"
        );
        let mut m = mount("volume", "v", "/x");
        m.volume_options = Some(VolumeOptions {
            subpath: "../up".into(),
            ..Default::default()
        });
        assert!(err(m).contains("subpath"));
        let mut t = mount("tmpfs", "", "/t");
        t.tmpfs_options = Some(TmpfsOptions {
            size_bytes: 1 << 20,
            mode: 0o700,
        });
        let r = from_api_mount(&t).expect("tmpfs");
        assert_eq!(
            tmpfs_options(r.tmpfs_size, r.tmpfs_mode),
            "size=1048576,mode=700"
        );
    }

    #[test]
    fn requests_follow_dockerd_order_and_refuse_duplicates() {
        let hc = HostConfig {
            binds: Some(vec!["v1:/a".into(), "/h:/b:ro".into()]),
            mounts: Some(vec![mount("tmpfs", "", "/c")]),
            tmpfs: Some([("/t".to_string(), String::new())].into_iter().collect()),
            ..Default::default()
        };
        let config = ContainerConfig {
            volumes: Some(
                ["/a", "/t", "/img"]
                    .into_iter()
                    .map(|d| (d.to_string(), Default::default()))
                    .collect(),
            ),
            ..Default::default()
        };
        let r = requests(&hc, &config).expect("requests");
        let targets: Vec<&str> = r.iter().map(|r| r.target.as_str()).collect();
        // The image's /a is covered by a bind and /t by --tmpfs: only /img is anonymous.
        assert_eq!(targets, ["/a", "/b", "/c", "/img"]);
        assert!(r[3].source.is_empty() && r[3].kind == MountKind::Volume);
        let dup = HostConfig {
            binds: Some(vec!["v1:/a".into()]),
            mounts: Some(vec![mount("tmpfs", "", "/a/")]),
            ..Default::default()
        };
        assert_eq!(
            requests(&dup, &ContainerConfig::default())
                .expect_err("dup")
                .message,
            "Duplicate mount point: /a/"
        );
    }
}
