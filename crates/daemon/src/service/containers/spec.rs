//! Builds a container's OCI runtime spec (`config.json`) from its Config and HostConfig, with
//! Docker's defaults: capabilities, masked/readonly paths, default mounts, device rules,
//! seccomp, cgroup resources. Pure: every input from the host (passwd text, paths, the seccomp
//! profile) is passed in, so it is unit-tested on literal values.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use wharf_api_types::container::{DeviceMapping, HostConfig, Resources, ThrottleDevice, Ulimit};
use wharf_errdefs::{Classify, ErrorKind};

use crate::state::Container;

/// Docker's default capability set.
pub const DEFAULT_CAPS: &[&str] = wharf_seccomp::DOCKER_DEFAULT_CAPS;

/// Every capability Linux defines (through 6.x), for `--privileged` and `--cap-add ALL`.
pub const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Paths Docker hides from unprivileged containers.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths Docker makes read-only in unprivileged containers.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Where `--init` puts our init inside the container (Docker's path).
pub const INIT_PATH: &str = "/sbin/docker-init";

const DEFAULT_PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Errors building a spec; all are the user's input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// A setting that cannot be applied.
    #[error("{0}")]
    Invalid(String),
    /// A user or group name missing from the image.
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoSuchUser(String),
    /// A group name missing from the image.
    #[error("unable to find group {0}: no matching entries in group file")]
    NoSuchGroup(String),
    /// A feature that is not available yet.
    #[error("{0} is not supported")]
    NotSupported(String),
}

impl Classify for SpecError {
    fn kind(&self) -> ErrorKind {
        match self {
            SpecError::NotSupported(_) => ErrorKind::NotImplemented,
            _ => ErrorKind::InvalidArgument,
        }
    }
}

/// Which seccomp profile applies.
#[derive(Debug, Clone, PartialEq)]
pub enum Seccomp {
    /// No filter.
    Unconfined,
    /// A Docker-format profile (JSON) converted for the container's capabilities.
    Profile(Vec<u8>),
}

/// Everything besides the container record that shapes the spec.
#[derive(Debug, Clone)]
pub struct SpecInputs {
    /// The container's merged root filesystem.
    pub rootfs: PathBuf,
    /// Generated /etc/hosts, /etc/hostname, /etc/resolv.conf.
    pub hosts_path: PathBuf,
    /// See `hosts_path`.
    pub hostname_path: PathBuf,
    /// See `hosts_path`.
    pub resolv_conf_path: PathBuf,
    /// Bind-mounted netns; `None` shares the host's network namespace.
    pub netns: Option<PathBuf>,
    /// The `wharf-init` binary on the host (needed when `--init` is set).
    pub init_binary: Option<PathBuf>,
    /// The image's `/etc/passwd` text (to resolve user names); empty when absent.
    pub passwd: String,
    /// The image's `/etc/group` text.
    pub group: String,
    /// The daemon's seccomp choice (before `--security-opt seccomp=...`).
    pub seccomp: Seccomp,
    /// The daemon's `--cgroup-parent` (container's own one wins).
    pub cgroup_parent: String,
    /// The daemon's `--default-ulimit`s (container's own ones win per name).
    pub default_ulimits: Vec<Ulimit>,
    /// The container's binds, volumes and `--mount` tmpfs, resolved to host paths.
    pub user_mounts: Vec<wharf_volume::mounts::OciMount>,
}

/// Docker's default `CgroupnsMode`: `private` on a cgroup v2 host, `host` on v1 or hybrid.
pub fn default_cgroupns_mode() -> &'static str {
    if crate::service::system::host_cgroup_v2() {
        "private"
    } else {
        "host"
    }
}

/// Checks everything in a HostConfig that [`build`] would reject, without host inputs.
pub fn validate(hc: &HostConfig) -> Result<(), SpecError> {
    if !matches!(hc.cgroupns_mode.as_str(), "" | "host" | "private") {
        return Err(SpecError::Invalid(format!(
            "invalid cgroup namespace mode: {}",
            hc.cgroupns_mode
        )));
    }
    if !matches!(hc.isolation.as_str(), "" | "default") {
        return Err(SpecError::Invalid(format!(
            "invalid isolation '{}' on linux",
            hc.isolation
        )));
    }
    if hc.storage_opt.as_ref().is_some_and(|o| !o.is_empty()) {
        // Docker's overlay2 answer without xfs project quotas, which we never have.
        return Err(SpecError::Invalid(
            "--storage-opt is supported only for overlay over xfs with 'pquota' mount option"
                .into(),
        ));
    }
    SecurityOpts::parse(hc.security_opt.as_deref().unwrap_or(&[]))?;
    capabilities(hc)?;
    resources(&hc.resources, hc.privileged)?;
    rlimits(hc.resources.ulimits.as_deref().unwrap_or(&[]), &[])?;
    // Binds and Mounts are checked where they are resolved (`service::volumes::requests`).
    Ok(())
}

/// Builds the spec as JSON (serialised as-is into `config.json`).
pub fn build(c: &Container, inp: &SpecInputs) -> Result<Value, SpecError> {
    let hc = &c.host_config;
    let sec = SecurityOpts::parse(hc.security_opt.as_deref().unwrap_or(&[]))?;
    let caps = capabilities(hc)?;
    let (uid, gid, extra_gids) = resolve_user(
        &c.config.user,
        &inp.passwd,
        &inp.group,
        hc.group_add.as_deref().unwrap_or(&[]),
    )?;

    let mut args: Vec<String> = std::iter::once(c.path.clone())
        .chain(c.args.iter().cloned())
        .collect();
    let init = hc.init.unwrap_or(false);
    if init {
        args.splice(0..0, [INIT_PATH.to_string(), "--".to_string()]);
    }
    let mut env: Vec<String> = c.config.env.clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH_ENV.to_string());
    }
    env.push(format!("HOSTNAME={}", hostname(c)));
    if c.config.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".to_string());
    }
    let mut process = json!({
        "terminal": c.config.tty,
        "user": {"uid": uid, "gid": gid, "additionalGids": extra_gids},
        "args": args,
        "env": env,
        "cwd": if c.config.working_dir.is_empty() { "/" } else { c.config.working_dir.as_str() },
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "rlimits": rlimits(hc.resources.ulimits.as_deref().unwrap_or(&[]), &inp.default_ulimits)?,
        "noNewPrivileges": sec.no_new_privileges,
        "oomScoreAdj": hc.oom_score_adj,
    });
    if let (true, Some([h, w])) = (c.config.tty, hc.console_size) {
        process["consoleSize"] = json!({"height": h, "width": w});
    }

    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    match &inp.netns {
        Some(p) => namespaces.push(json!({"type": "network", "path": p})),
        None if !is_host_network(hc) => namespaces.push(json!({"type": "network"})),
        None => {}
    }
    for (mode, what) in [
        (&hc.pid_mode, "pid"),
        (&hc.ipc_mode, "ipc"),
        (&hc.uts_mode, "uts"),
    ] {
        match mode.as_str() {
            "" | "private" | "shareable" => {}
            "host" => namespaces.retain(|n| n["type"] != what),
            other => return Err(SpecError::NotSupported(format!("{what} mode {other:?}"))),
        }
    }
    let private_cgroupns = match hc.cgroupns_mode.as_str() {
        "" => default_cgroupns_mode() == "private",
        mode => mode == "private",
    };
    if private_cgroupns {
        namespaces.push(json!({"type": "cgroup"}));
    }
    if !matches!(hc.userns_mode.as_str(), "" | "host") {
        return Err(SpecError::NotSupported(format!(
            "userns mode {:?}",
            hc.userns_mode
        )));
    }

    let mut nodes = Vec::new();
    for d in hc.resources.devices.iter().flatten() {
        nodes.extend(host_devices(d)?.iter().map(HostDevice::node));
    }
    let mut linux = json!({
        "namespaces": namespaces,
        "devices": nodes,
        "resources": resources(&hc.resources, hc.privileged)?,
        "cgroupsPath": cgroups_path(c, &inp.cgroup_parent),
        "sysctl": hc.sysctls.clone().unwrap_or_default(),
    });
    if !hc.privileged {
        linux["maskedPaths"] = json!(hc
            .masked_paths
            .clone()
            .unwrap_or_else(|| strs(MASKED_PATHS)));
        linux["readonlyPaths"] = json!(hc
            .readonly_paths
            .clone()
            .unwrap_or_else(|| strs(READONLY_PATHS)));
        let profile = match (&sec.seccomp, &inp.seccomp) {
            (Some(s), _) => s.clone(),
            (None, d) => d.clone(),
        };
        if let Seccomp::Profile(p) = profile {
            let oci = wharf_seccomp::docker_profile_to_oci(&p, &caps)
                .map_err(|e| SpecError::Invalid(format!("seccomp profile: {e}")))?;
            linux["seccomp"] =
                serde_json::to_value(oci).map_err(|e| SpecError::Invalid(e.to_string()))?;
        }
    }
    Ok(json!({
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": inp.rootfs, "readonly": hc.readonly_rootfs},
        "hostname": hostname(c),
        "mounts": mounts(c, inp)?,
        "linux": linux,
    }))
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The container's hostname: `Config.Hostname` or the short id.
pub fn hostname(c: &Container) -> String {
    if c.config.hostname.is_empty() {
        c.id.chars().take(12).collect()
    } else {
        c.config.hostname.clone()
    }
}

/// Network mode `host`.
pub fn is_host_network(hc: &HostConfig) -> bool {
    hc.network_mode == "host"
}

/// `/wharf/<id>`, or `<parent>/<id>` with the container's or the daemon's cgroup parent.
pub fn cgroups_path(c: &Container, daemon_parent: &str) -> String {
    let parent = if c.host_config.resources.cgroup_parent.is_empty() {
        daemon_parent
    } else {
        &c.host_config.resources.cgroup_parent
    };
    let parent = if parent.is_empty() { "/wharf" } else { parent };
    format!("/{}/{}", parent.trim_matches('/'), c.id)
}

/// `--security-opt` values that shape the spec.
#[derive(Debug, Default)]
struct SecurityOpts {
    seccomp: Option<Seccomp>,
    no_new_privileges: bool,
}

impl SecurityOpts {
    fn parse(opts: &[String]) -> Result<SecurityOpts, SpecError> {
        let mut s = SecurityOpts::default();
        for o in opts {
            let (k, v) = o.split_once(['=', ':']).unwrap_or((o.as_str(), ""));
            match k {
                "seccomp" if v == "unconfined" => s.seccomp = Some(Seccomp::Unconfined),
                "seccomp" => {
                    // The docker CLI inlines the profile file's JSON into the option.
                    if !v.trim_start().starts_with('{') {
                        return Err(SpecError::Invalid(format!(
                            "seccomp profile must be JSON, got {v:?}"
                        )));
                    }
                    s.seccomp = Some(Seccomp::Profile(v.as_bytes().to_vec()));
                }
                "no-new-privileges" => s.no_new_privileges = v.is_empty() || v == "true",
                "apparmor" | "label" => {}
                _ => return Err(SpecError::Invalid(format!("invalid --security-opt: {o:?}"))),
            }
        }
        Ok(s)
    }
}

fn normalize_cap(c: &str) -> Result<String, SpecError> {
    let up = c.to_ascii_uppercase();
    let name = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    if ALL_CAPS.contains(&name.as_str()) {
        Ok(name)
    } else {
        Err(SpecError::Invalid(format!("unknown capability: {c:?}")))
    }
}

/// Docker's cap-add/cap-drop rules over the default set ("ALL" allowed in both).
pub fn capabilities(hc: &HostConfig) -> Result<Vec<String>, SpecError> {
    if hc.privileged {
        return Ok(strs(ALL_CAPS));
    }
    let add = hc.cap_add.as_deref().unwrap_or(&[]);
    let drop = hc.cap_drop.as_deref().unwrap_or(&[]);
    let is_all = |c: &String| c.eq_ignore_ascii_case("ALL");
    let mut caps: Vec<String> = if add.iter().any(is_all) {
        strs(ALL_CAPS)
    } else {
        strs(DEFAULT_CAPS)
    };
    if drop.iter().any(is_all) {
        caps.clear();
    } else {
        let drop: Vec<String> = drop
            .iter()
            .map(|c| normalize_cap(c))
            .collect::<Result<_, _>>()?;
        caps.retain(|c| !drop.contains(c));
    }
    for a in add.iter().filter(|c| !is_all(c)) {
        let a = normalize_cap(a)?;
        if !caps.contains(&a) {
            caps.push(a);
        }
    }
    Ok(caps)
}

/// Resolves `user[:group]` (names or numbers) against the image's passwd/group text.
pub fn resolve_user(
    user: &str,
    passwd: &str,
    group: &str,
    group_add: &[String],
) -> Result<(u32, u32, Vec<u32>), SpecError> {
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let pw: Vec<Vec<&str>> = passwd
        .lines()
        .map(|l| l.split(':').collect())
        .filter(|f: &Vec<&str>| f.len() >= 4)
        .collect();
    let gr: Vec<Vec<&str>> = group
        .lines()
        .map(|l| l.split(':').collect())
        .filter(|f: &Vec<&str>| f.len() >= 3)
        .collect();
    let (uid, name, mut gid) = if u.is_empty() {
        (0, "root".to_string(), 0)
    } else if let Ok(n) = u.parse::<u32>() {
        let e = pw.iter().find(|f| f[2] == u);
        (
            n,
            e.map(|f| f[0].to_string()).unwrap_or_default(),
            e.and_then(|f| f[3].parse().ok()).unwrap_or(0),
        )
    } else {
        let e = pw
            .iter()
            .find(|f| f[0] == u)
            .ok_or_else(|| SpecError::NoSuchUser(u.to_string()))?;
        let num = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| SpecError::NoSuchUser(u.to_string()))
        };
        (num(e[2])?, u.to_string(), num(e[3])?)
    };
    let lookup_group = |g: &str| -> Result<u32, SpecError> {
        if let Ok(n) = g.parse() {
            return Ok(n);
        }
        gr.iter()
            .find(|f| f[0] == g)
            .and_then(|f| f[2].parse().ok())
            .ok_or_else(|| SpecError::NoSuchGroup(g.to_string()))
    };
    if let Some(g) = g.filter(|g| !g.is_empty()) {
        gid = lookup_group(g)?;
    }
    let mut extra: Vec<u32> = Vec::new();
    if !name.is_empty() {
        for f in &gr {
            if f.get(3).is_some_and(|m| m.split(',').any(|m| m == name)) {
                if let Ok(n) = f[2].parse::<u32>() {
                    if n != gid && !extra.contains(&n) {
                        extra.push(n);
                    }
                }
            }
        }
    }
    for g in group_add {
        let n = lookup_group(g)?;
        if !extra.contains(&n) {
            extra.push(n);
        }
    }
    Ok((uid, gid, extra))
}

fn rlimits(own: &[Ulimit], defaults: &[Ulimit]) -> Result<Vec<Value>, SpecError> {
    let mut by_name: BTreeMap<String, &Ulimit> = BTreeMap::new();
    for u in defaults.iter().chain(own) {
        by_name.insert(u.name.to_ascii_lowercase(), u);
    }
    const KNOWN: &[&str] = &[
        "as",
        "core",
        "cpu",
        "data",
        "fsize",
        "locks",
        "memlock",
        "msgqueue",
        "nice",
        "nofile",
        "nproc",
        "rss",
        "rtprio",
        "rttime",
        "sigpending",
        "stack",
    ];
    by_name
        .into_iter()
        .map(|(n, u)| {
            if !KNOWN.contains(&n.as_str()) {
                return Err(SpecError::Invalid(format!("invalid ulimit type: {}", u.name)));
            }
            if u.soft < -1 || u.hard < -1 || (u.hard >= 0 && u.soft > u.hard) || (u.hard >= 0 && u.soft == -1) {
                return Err(SpecError::Invalid(format!("invalid ulimit {}: soft {} hard {}", u.name, u.soft, u.hard)));
            }
            // -1 means unlimited (RLIM_INFINITY).
            let v = |x: i64| if x < 0 { u64::MAX } else { x as u64 };
            Ok(json!({"type": format!("RLIMIT_{}", n.to_ascii_uppercase()), "soft": v(u.soft), "hard": v(u.hard)}))
        })
        .collect()
}

/// The device cgroup rules Docker allows by default.
fn device_rules(privileged: bool) -> Vec<Value> {
    if privileged {
        return vec![json!({"allow": true, "access": "rwm"})];
    }
    let r = |t: &str, maj: Option<i64>, min: Option<i64>, acc: &str| json!({"allow": true, "type": t, "major": maj, "minor": min, "access": acc});
    vec![
        json!({"allow": false, "access": "rwm"}),
        r("c", None, None, "m"),
        r("b", None, None, "m"),
        r("c", Some(1), Some(3), "rwm"),
        r("c", Some(1), Some(5), "rwm"),
        r("c", Some(1), Some(7), "rwm"),
        r("c", Some(1), Some(8), "rwm"),
        r("c", Some(1), Some(9), "rwm"),
        r("c", Some(5), Some(0), "rwm"),
        r("c", Some(5), Some(1), "rwm"),
        r("c", Some(5), Some(2), "rwm"),
        r("c", Some(136), None, "rwm"),
        r("c", Some(10), Some(200), "rwm"),
    ]
}

/// `--device-cgroup-rule "c 1:3 rwm"` as an OCI allow entry (`*` is a wildcard, like Docker's
/// `^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$`).
fn cgroup_rule(rule: &str) -> Result<Value, SpecError> {
    let bad = || SpecError::Invalid(format!("invalid device cgroup rule format: '{rule}'"));
    let num = |s: &str| -> Result<Option<i64>, SpecError> {
        match s {
            "*" => Ok(None),
            _ if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                s.parse().map(Some).map_err(|_| bad())
            }
            _ => Err(bad()),
        }
    };
    let [ty, nums, access] = rule.split(' ').collect::<Vec<_>>()[..] else {
        return Err(bad());
    };
    let (major, minor) = nums.split_once(':').ok_or_else(bad)?;
    if !matches!(ty, "a" | "b" | "c")
        || !(1..=3).contains(&access.len())
        || !access.chars().all(|c| "rwm".contains(c))
    {
        return Err(bad());
    }
    Ok(
        json!({"allow": true, "type": ty, "major": num(major)?, "minor": num(minor)?, "access": access}),
    )
}

/// One `--device` node: where it appears in the container, and how the host has it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostDevice {
    dest: String,
    block: bool,
    rdev: u64,
    mode: u32,
    uid: u32,
    gid: u32,
}

impl HostDevice {
    fn kind(&self) -> &'static str {
        if self.block {
            "b"
        } else {
            "c"
        }
    }

    /// The OCI `linux.devices` entry (the node is created with the host's mode and owner).
    fn node(&self) -> Value {
        json!({"path": self.dest, "type": self.kind(),
            "major": libc::major(self.rdev), "minor": libc::minor(self.rdev),
            "fileMode": self.mode & 0o7777, "uid": self.uid, "gid": self.gid})
    }

    /// The device cgroup rule granting `access` to the node.
    fn rule(&self, access: &str) -> Value {
        json!({"allow": true, "type": self.kind(), "major": libc::major(self.rdev),
            "minor": libc::minor(self.rdev), "access": access})
    }
}

/// Docker's `--device` permissions: a non-empty subset of `rwm` (the CLI's default is `rwm`).
fn device_access(perms: &str) -> Result<&str, SpecError> {
    match perms {
        "" => Ok("rwm"),
        p if p.len() <= 3 && p.chars().all(|c| "rwm".contains(c)) => Ok(p),
        p => Err(SpecError::Invalid(format!("invalid device mode: {p}"))),
    }
}

/// The host nodes of one `--device`, as dockerd's `devicesFromPath`: the node itself, or every
/// node below a directory (mapped under the container path).
fn host_devices(d: &DeviceMapping) -> Result<Vec<HostDevice>, SpecError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let host = d.path_on_host.as_str();
    let dest = if d.path_in_container.is_empty() {
        host
    } else {
        d.path_in_container.as_str()
    };
    let fail = |why: String| {
        SpecError::Invalid(format!(
            "error gathering device information while adding custom device {host:?}: {why}"
        ))
    };
    let errno = |e: std::io::Error| {
        // Go's wording of the errno (lower case, no "(os error N)").
        let text = nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0)).desc();
        let mut c = text.chars();
        c.next()
            .map(|f| f.to_lowercase().chain(c).collect())
            .unwrap_or_default()
    };
    let of = |path: &Path, dest: String| -> Result<Option<HostDevice>, SpecError> {
        let m = std::fs::metadata(path).map_err(|e| fail(errno(e)))?;
        let ft = m.file_type();
        Ok(
            (ft.is_char_device() || ft.is_block_device()).then(|| HostDevice {
                dest,
                block: ft.is_block_device(),
                rdev: m.rdev(),
                mode: m.mode(),
                uid: m.uid(),
                gid: m.gid(),
            }),
        )
    };
    if let Some(dev) = of(Path::new(host), dest.to_string())? {
        return Ok(vec![dev]);
    }
    if !Path::new(host).is_dir() {
        return Err(fail("not a device node".into()));
    }
    let mut out = Vec::new();
    let mut todo = vec![PathBuf::from(host)];
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir)
            .map_err(|e| fail(errno(e)))?
            .flatten()
        {
            let path = e.path();
            let rel = path.strip_prefix(host).unwrap_or(&path);
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(path);
            } else if let Ok(Some(dev)) = of(&path, Path::new(dest).join(rel).display().to_string())
            {
                out.push(dev);
            }
        }
    }
    out.sort_by(|a, b| a.dest.cmp(&b.dest));
    Ok(out)
}

/// A device's major and minor numbers from stat(2), as Docker resolves blkio device paths.
fn device_numbers(path: &str) -> Result<(u64, u64), SpecError> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(path) {
        Ok(m) => Ok((libc::major(m.rdev()) as u64, libc::minor(m.rdev()) as u64)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(SpecError::Invalid(format!(
            "stat {path}: no such file or directory"
        ))),
        Err(e) => Err(SpecError::Invalid(format!("stat {path}: {e}"))),
    }
}

/// OCI `linux.resources.blockIO` from Docker's weight and per-device settings; `None` if unset.
fn block_io(r: &Resources) -> Result<Option<Value>, SpecError> {
    let mut b = serde_json::Map::new();
    if r.blkio_weight > 0 {
        b.insert("weight".into(), json!(r.blkio_weight));
    }
    let mut weights = Vec::new();
    for d in r.blkio_weight_device.iter().flatten() {
        if d.weight != 0 && !(10..=1000).contains(&d.weight) {
            return Err(SpecError::Invalid(
                "Range of blkio weight is from 10 to 1000".into(),
            ));
        }
        let (major, minor) = device_numbers(&d.path)?;
        weights.push(json!({"major": major, "minor": minor, "weight": d.weight}));
    }
    if !weights.is_empty() {
        b.insert("weightDevice".into(), json!(weights));
    }
    let throttle = |list: &Option<Vec<ThrottleDevice>>| -> Result<Vec<Value>, SpecError> {
        list.iter()
            .flatten()
            .map(|d| {
                device_numbers(&d.path)
                    .map(|(major, minor)| json!({"major": major, "minor": minor, "rate": d.rate}))
            })
            .collect()
    };
    for (key, list) in [
        ("throttleReadBpsDevice", &r.blkio_device_read_bps),
        ("throttleWriteBpsDevice", &r.blkio_device_write_bps),
        ("throttleReadIOPSDevice", &r.blkio_device_read_iops),
        ("throttleWriteIOPSDevice", &r.blkio_device_write_iops),
    ] {
        let v = throttle(list)?;
        if !v.is_empty() {
            b.insert(key.into(), json!(v));
        }
    }
    Ok((!b.is_empty()).then_some(Value::Object(b)))
}

/// Docker's Linux refusal of a device request (`--gpus`): no device driver is registered.
fn refuse_device_requests(r: &Resources) -> Result<(), SpecError> {
    let Some(req) = r.device_requests.as_ref().and_then(|d| d.first()) else {
        return Ok(());
    };
    let driver = req
        .get("Driver")
        .and_then(Value::as_str)
        .unwrap_or_default();
    // Go's %v of [][]string: [[gpu compute]].
    let caps: Vec<String> = req
        .get("Capabilities")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|set| {
            let words: Vec<&str> = set
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            format!("[{}]", words.join(" "))
        })
        .collect();
    Err(SpecError::Invalid(format!(
        "could not select device driver \"{driver}\" with capabilities: [{}]",
        caps.join(" ")
    )))
}

/// OCI `linux.resources` from Docker's resource settings (also used by `update`).
pub fn resources(r: &Resources, privileged: bool) -> Result<Value, SpecError> {
    let inval = |m: &str| Err(SpecError::Invalid(m.to_string()));
    if r.memory < 0
        || r.memory_reservation < 0
        || r.cpu_shares < 0
        || r.cpu_quota < -1
        || r.cpu_period < 0
        || r.nano_cpus < 0
    {
        return inval("resource values must not be negative");
    }
    if r.memory > 0 && r.memory < 6 * 1024 * 1024 {
        return inval("Minimum memory limit allowed is 6MB");
    }
    if r.memory_swap > 0 && r.memory > 0 && r.memory_swap < r.memory {
        return inval("Minimum memoryswap limit should be larger than memory limit, see usage");
    }
    if r.nano_cpus > 0 && (r.cpu_quota > 0 || r.cpu_period > 0) {
        return inval("Conflicting options: Nano CPUs and CPU Period cannot both be set");
    }
    if r.blkio_weight != 0 && !(10..=1000).contains(&r.blkio_weight) {
        return inval("Range of blkio weight is from 10 to 1000");
    }
    if r.io_maximum_bandwidth != 0 || r.io_maximum_iops != 0 {
        return inval(
            "Invalid QoS settings: linux does not support Maximum IO Bandwidth or Maximum IO IOps",
        );
    }
    if r.cpu_realtime_period != 0
        && r.cpu_realtime_runtime != 0
        && r.cpu_realtime_runtime > r.cpu_realtime_period
    {
        return inval("cpu-rt-runtime cannot be higher than cpu-rt-period");
    }
    refuse_device_requests(r)?;
    let mut devices = device_rules(privileged);
    for d in r.devices.iter().flatten() {
        let access = device_access(&d.cgroup_permissions)?;
        devices.extend(host_devices(d)?.iter().map(|dev| dev.rule(access)));
    }
    for rule in r.device_cgroup_rules.iter().flatten() {
        devices.push(cgroup_rule(rule)?);
    }
    let mut out = json!({"devices": devices});
    let mut mem = serde_json::Map::new();
    if r.memory > 0 {
        mem.insert("limit".into(), json!(r.memory));
        // Docker: swap unset with a memory limit means swap = memory (total = 2x).
        let swap = if r.memory_swap == 0 {
            r.memory * 2
        } else {
            r.memory_swap
        };
        mem.insert("swap".into(), json!(swap));
    } else if r.memory_swap != 0 {
        mem.insert("swap".into(), json!(r.memory_swap));
    }
    if r.memory_reservation > 0 {
        mem.insert("reservation".into(), json!(r.memory_reservation));
    }
    // -1 is Docker's "unset".
    if let Some(s) = r.memory_swappiness.filter(|s| *s != -1) {
        if !(0..=100).contains(&s) {
            return Err(SpecError::Invalid(format!(
                "Invalid value: {s}, valid memory swappiness range is 0-100"
            )));
        }
        mem.insert("swappiness".into(), json!(s));
    }
    if r.oom_kill_disable == Some(true) {
        mem.insert("disableOOMKiller".into(), json!(true));
    }
    if !mem.is_empty() {
        out["memory"] = Value::Object(mem);
    }
    let mut cpu = serde_json::Map::new();
    if r.cpu_shares > 0 {
        cpu.insert("shares".into(), json!(r.cpu_shares));
    }
    if r.nano_cpus > 0 {
        let period: i64 = 100_000;
        cpu.insert("period".into(), json!(period));
        cpu.insert("quota".into(), json!(r.nano_cpus * period / 1_000_000_000));
    }
    if r.cpu_period > 0 {
        cpu.insert("period".into(), json!(r.cpu_period));
    }
    if r.cpu_quota != 0 {
        cpu.insert("quota".into(), json!(r.cpu_quota));
    }
    if !r.cpuset_cpus.is_empty() {
        cpu.insert("cpus".into(), json!(r.cpuset_cpus));
    }
    if !r.cpuset_mems.is_empty() {
        cpu.insert("mems".into(), json!(r.cpuset_mems));
    }
    if r.cpu_realtime_period > 0 {
        cpu.insert("realtimePeriod".into(), json!(r.cpu_realtime_period));
    }
    if r.cpu_realtime_runtime != 0 {
        cpu.insert("realtimeRuntime".into(), json!(r.cpu_realtime_runtime));
    }
    if !cpu.is_empty() {
        out["cpu"] = Value::Object(cpu);
    }
    if let Some(p) = r.pids_limit.filter(|p| *p != 0) {
        out["pids"] = json!({"limit": if p < 0 { -1 } else { p }});
    }
    if let Some(b) = block_io(r)? {
        out["blockIO"] = b;
    }
    Ok(out)
}

fn mount(dest: &str, kind: &str, source: &str, opts: &[&str]) -> Value {
    json!({"destination": dest, "type": kind, "source": source, "options": opts})
}

fn mounts(c: &Container, inp: &SpecInputs) -> Result<Vec<Value>, SpecError> {
    let hc = &c.host_config;
    let shm = if hc.shm_size > 0 {
        hc.shm_size
    } else {
        64 << 20
    };
    let sys_ro = if hc.privileged { "rw" } else { "ro" };
    let shm_size = format!("size={}k", shm / 1024);
    let mut v = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", sys_ro],
        ),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", sys_ro],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", &shm_size],
        ),
    ];
    let mut user_dests: Vec<String> = Vec::new();
    for m in &inp.user_mounts {
        user_dests.push(m.destination.clone());
        v.push(json!({"destination": m.destination, "type": m.kind, "source": m.source, "options": m.options}));
    }
    for (dest, opts) in hc.tmpfs.clone().unwrap_or_default() {
        if !dest.starts_with('/') {
            return Err(SpecError::Invalid(format!(
                "invalid tmpfs mount point {dest:?}: must be absolute"
            )));
        }
        let mut o: Vec<&str> = vec!["nosuid", "nodev", "noexec"];
        let user: Vec<&str> = opts.split(',').filter(|s| !s.is_empty()).collect();
        if user.contains(&"exec") {
            o.retain(|x| *x != "noexec");
        }
        o.extend(user.iter().filter(|x| **x != "exec"));
        user_dests.push(dest.clone());
        v.push(mount(&dest, "tmpfs", "tmpfs", &o));
    }
    // Generated files, unless the user mounted something over them.
    for (dest, src) in [
        ("/etc/resolv.conf", &inp.resolv_conf_path),
        ("/etc/hostname", &inp.hostname_path),
        ("/etc/hosts", &inp.hosts_path),
    ] {
        if !user_dests.iter().any(|d| d == dest) {
            v.push(json!({"destination": dest, "type": "bind", "source": src, "options": ["rbind", "rprivate"]}));
        }
    }
    if hc.init.unwrap_or(false) {
        let init = inp.init_binary.as_ref().ok_or_else(|| {
            SpecError::NotSupported("--init without the wharf-init binary".into())
        })?;
        v.push(json!({"destination": INIT_PATH, "type": "bind", "source": init, "options": ["bind", "ro"]}));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::RunState;

    fn container(hc: HostConfig) -> Container {
        Container {
            id: "0123456789abcdef".repeat(4),
            name: "/t".into(),
            created: String::new(),
            path: "sh".into(),
            args: vec!["-c".into(), "true".into()],
            config: Default::default(),
            host_config: hc,
            image: String::new(),
            runtime: "runc".into(),
            driver: "vfs".into(),
            state: RunState::default(),
            restart_count: 0,
            manually_stopped: false,
            has_been_started: false,
            mount_points: Vec::new(),
        }
    }

    fn inputs() -> SpecInputs {
        SpecInputs {
            rootfs: "/r".into(),
            hosts_path: "/c/hosts".into(),
            hostname_path: "/c/hostname".into(),
            resolv_conf_path: "/c/resolv.conf".into(),
            netns: Some("/run/wharf/netns/x".into()),
            init_binary: Some("/usr/bin/wharf-init".into()),
            passwd: "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n".into(),
            group: "root:x:0:\nusers:x:100:alice\nalice:x:1000:\nwheel:x:10:\n".into(),
            seccomp: Seccomp::Unconfined,
            cgroup_parent: String::new(),
            default_ulimits: vec![Ulimit {
                name: "nproc".into(),
                soft: 100,
                hard: 200,
            }],
            user_mounts: vec![wharf_volume::mounts::OciMount {
                destination: "/data".into(),
                kind: "bind".into(),
                source: "/host".into(),
                options: vec!["rbind".into(), "ro".into(), "rprivate".into()],
            }],
        }
    }

    #[test]
    fn defaults_match_docker() {
        let s = build(&container(HostConfig::default()), &inputs()).expect("spec");
        assert_eq!(s["process"]["args"], json!(["sh", "-c", "true"]));
        assert_eq!(
            s["process"]["capabilities"]["bounding"]
                .as_array()
                .map(Vec::len),
            Some(DEFAULT_CAPS.len())
        );
        assert_eq!(s["hostname"], "0123456789ab");
        assert_eq!(
            s["linux"]["cgroupsPath"],
            format!("/wharf/{}", "0123456789abcdef".repeat(4))
        );
        assert!(s["linux"]["maskedPaths"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("/proc/kcore"))));
        let ns = s["linux"]["namespaces"].as_array().expect("ns");
        assert!(ns.contains(&json!({"type": "network", "path": "/run/wharf/netns/x"})));
        let dests: Vec<&str> = s["mounts"]
            .as_array()
            .expect("m")
            .iter()
            .filter_map(|m| m["destination"].as_str())
            .collect();
        for d in [
            "/proc",
            "/dev",
            "/dev/pts",
            "/dev/shm",
            "/dev/mqueue",
            "/sys",
            "/sys/fs/cgroup",
            "/etc/hosts",
            "/etc/hostname",
            "/etc/resolv.conf",
        ] {
            assert!(dests.contains(&d), "{d}");
        }
        assert_eq!(
            s["process"]["rlimits"],
            json!([{"type": "RLIMIT_NPROC", "soft": 100, "hard": 200}])
        );
        assert!(s["process"]["env"]
            .as_array()
            .is_some_and(|e| e[0].as_str().is_some_and(|p| p.starts_with("PATH="))));
        assert!(s["linux"].get("seccomp").is_none());
    }

    #[test]
    fn init_privileged_readonly_and_resources() {
        let hc = HostConfig {
            init: Some(true),
            privileged: true,
            readonly_rootfs: true,
            resources: Resources {
                memory: 64 << 20,
                pids_limit: Some(10),
                nano_cpus: 500_000_000,
                ..Default::default()
            },
            ..Default::default()
        };
        let s = build(&container(hc), &inputs()).expect("spec");
        assert_eq!(s["process"]["args"][0], INIT_PATH);
        assert_eq!(s["process"]["args"][1], "--");
        assert_eq!(s["root"]["readonly"], true);
        assert!(s["linux"].get("maskedPaths").is_none());
        assert_eq!(
            s["process"]["capabilities"]["bounding"]
                .as_array()
                .map(Vec::len),
            Some(ALL_CAPS.len())
        );
        let r = &s["linux"]["resources"];
        assert_eq!(r["memory"]["limit"], 64 << 20);
        assert_eq!(r["memory"]["swap"], 128 << 20);
        assert_eq!(r["pids"]["limit"], 10);
        assert_eq!(r["cpu"]["quota"], 50_000);
        assert!(s["mounts"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["destination"] == INIT_PATH)));
    }

    #[test]
    fn caps_add_drop() {
        let hc = HostConfig {
            cap_drop: Some(vec!["net_raw".into(), "CAP_KILL".into()]),
            cap_add: Some(vec!["SYS_ADMIN".into()]),
            ..Default::default()
        };
        let caps = capabilities(&hc).expect("caps");
        assert!(
            !caps.contains(&"CAP_NET_RAW".to_string()) && !caps.contains(&"CAP_KILL".to_string())
        );
        assert!(caps.contains(&"CAP_SYS_ADMIN".to_string()));
        let hc = HostConfig {
            cap_drop: Some(vec!["ALL".into()]),
            cap_add: Some(vec!["chown".into()]),
            ..Default::default()
        };
        assert_eq!(capabilities(&hc).expect("caps"), ["CAP_CHOWN"]);
        let hc = HostConfig {
            cap_add: Some(vec!["BOGUS".into()]),
            ..Default::default()
        };
        assert!(capabilities(&hc).is_err());
    }

    #[test]
    fn users_and_groups() {
        let i = inputs();
        assert_eq!(
            resolve_user("", &i.passwd, &i.group, &[]).expect("root"),
            (0, 0, vec![])
        );
        assert_eq!(
            resolve_user("alice", &i.passwd, &i.group, &[]).expect("alice"),
            (1000, 1000, vec![100])
        );
        assert_eq!(
            resolve_user("1000:wheel", &i.passwd, &i.group, &["5".into()]).expect("num"),
            (1000, 10, vec![100, 5])
        );
        assert_eq!(
            resolve_user("4242", &i.passwd, &i.group, &[]).expect("unknown uid"),
            (4242, 0, vec![])
        );
        assert!(matches!(
            resolve_user("bob", &i.passwd, &i.group, &[]),
            Err(SpecError::NoSuchUser(_))
        ));
        assert!(matches!(
            resolve_user("0:nogroup", &i.passwd, &i.group, &[]),
            Err(SpecError::NoSuchGroup(_))
        ));
    }

    #[test]
    fn binds_tmpfs_and_bad_values() {
        let hc = HostConfig {
            tmpfs: Some(
                [("/run".to_string(), "size=1m,exec".to_string())]
                    .into_iter()
                    .collect(),
            ),
            ..Default::default()
        };
        let s = build(&container(hc), &inputs()).expect("spec");
        let m = s["mounts"].as_array().expect("m");
        assert!(m
            .iter()
            .any(|m| m["destination"] == "/data"
                && m["options"] == json!(["rbind", "ro", "rprivate"])));
        assert!(m
            .iter()
            .any(|m| m["destination"] == "/run"
                && m["options"] == json!(["nosuid", "nodev", "size=1m"])));
        for hc in [
            HostConfig {
                security_opt: Some(vec!["bogus=1".into()]),
                ..Default::default()
            },
            HostConfig {
                resources: Resources {
                    memory: 1024,
                    ..Default::default()
                },
                ..Default::default()
            },
            HostConfig {
                resources: Resources {
                    ulimits: Some(vec![Ulimit {
                        name: "bogus".into(),
                        soft: 1,
                        hard: 1,
                    }]),
                    ..Default::default()
                },
                ..Default::default()
            },
            HostConfig {
                pid_mode: "container:x".into(),
                ..Default::default()
            },
        ] {
            assert!(build(&container(hc), &inputs()).is_err());
        }
    }

    #[test]
    fn seccomp_default_profile_applies_unless_unconfined() {
        let mut i = inputs();
        i.seccomp = Seccomp::Profile(wharf_seccomp::default_docker_profile().to_vec());
        let s = build(&container(HostConfig::default()), &i).expect("spec");
        assert_eq!(s["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        let hc = HostConfig {
            security_opt: Some(vec!["seccomp=unconfined".into()]),
            ..Default::default()
        };
        assert!(build(&container(hc), &i).expect("spec")["linux"]
            .get("seccomp")
            .is_none());
    }

    #[test]
    fn blkio_devices_resolve_through_stat() {
        use wharf_api_types::container::WeightDevice;
        let dev = |rate| {
            Some(vec![ThrottleDevice {
                path: "/dev/null".into(),
                rate,
            }])
        };
        let r = Resources {
            blkio_weight: 500,
            blkio_weight_device: Some(vec![WeightDevice {
                path: "/dev/zero".into(),
                weight: 300,
            }]),
            blkio_device_read_bps: dev(1 << 20),
            blkio_device_write_iops: dev(7),
            ..Default::default()
        };
        let b = &resources(&r, false).expect("resources")["blockIO"];
        assert_eq!(b["weight"], 500);
        assert_eq!(
            b["weightDevice"],
            json!([{"major": 1, "minor": 5, "weight": 300}])
        );
        assert_eq!(
            b["throttleReadBpsDevice"],
            json!([{"major": 1, "minor": 3, "rate": 1 << 20}])
        );
        assert_eq!(
            b["throttleWriteIOPSDevice"],
            json!([{"major": 1, "minor": 3, "rate": 7}])
        );
        assert!(b.get("throttleWriteBpsDevice").is_none());
        let missing = Resources {
            blkio_device_read_bps: Some(vec![ThrottleDevice {
                path: "/dev/wharf-none".into(),
                rate: 1,
            }]),
            ..Default::default()
        };
        assert_eq!(
            resources(&missing, false),
            Err(SpecError::Invalid(
                "stat /dev/wharf-none: no such file or directory".into()
            ))
        );
    }

    #[test]
    fn cgroup_rules_realtime_and_swappiness() {
        let r = Resources {
            device_cgroup_rules: Some(vec!["c 1:3 rwm".into(), "b *:* r".into()]),
            cpu_realtime_period: 1_000_000,
            cpu_realtime_runtime: 950_000,
            memory_swappiness: Some(10),
            ..Default::default()
        };
        let out = resources(&r, false).expect("resources");
        let devices = out["devices"].as_array().expect("devices");
        assert_eq!(
            devices[devices.len() - 2],
            json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"})
        );
        assert_eq!(
            devices[devices.len() - 1],
            json!({"allow": true, "type": "b", "major": null, "minor": null, "access": "r"})
        );
        assert_eq!(out["cpu"]["realtimePeriod"], 1_000_000);
        assert_eq!(out["cpu"]["realtimeRuntime"], 950_000);
        assert_eq!(out["memory"]["swappiness"], 10);
        let unset = resources(
            &Resources {
                memory_swappiness: Some(-1),
                ..Default::default()
            },
            false,
        )
        .expect("unset");
        assert!(unset.get("memory").is_none());
        let bad = |r: Resources| resources(&r, false).err().map(|e| e.to_string());
        assert_eq!(
            bad(Resources {
                device_cgroup_rules: Some(vec!["c 1:3 rwx".into()]),
                ..Default::default()
            })
            .as_deref(),
            Some("invalid device cgroup rule format: 'c 1:3 rwx'")
        );
        assert_eq!(
            bad(Resources {
                memory_swappiness: Some(101),
                ..Default::default()
            })
            .as_deref(),
            Some("Invalid value: 101, valid memory swappiness range is 0-100")
        );
        assert_eq!(
            bad(Resources {
                cpu_realtime_period: 10,
                cpu_realtime_runtime: 20,
                ..Default::default()
            })
            .as_deref(),
            Some("cpu-rt-runtime cannot be higher than cpu-rt-period")
        );
    }

    #[test]
    fn devices_become_nodes_and_rules() {
        let dev = |host: &str, dest: &str, perms: &str| DeviceMapping {
            path_on_host: host.into(),
            path_in_container: dest.into(),
            cgroup_permissions: perms.into(),
        };
        let mut hc = HostConfig::default();
        hc.resources.devices = Some(vec![dev("/dev/null", "/dev/n2", "r")]);
        let s = build(&container(hc.clone()), &inputs()).expect("spec");
        let node = &s["linux"]["devices"][0];
        assert_eq!(
            (&node["path"], &node["type"], &node["major"], &node["minor"]),
            (&json!("/dev/n2"), &json!("c"), &json!(1), &json!(3))
        );
        let rules = s["linux"]["resources"]["devices"]
            .as_array()
            .expect("rules");
        assert!(rules
            .contains(&json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "r"})));
        hc.resources.devices = Some(vec![dev("/dev/null", "", "rx")]);
        assert_eq!(
            validate(&hc).map_err(|e| e.to_string()),
            Err("invalid device mode: rx".into())
        );
        hc.resources.devices = Some(vec![dev("/dev/wharf-none", "", "rwm")]);
        assert_eq!(
            validate(&hc).map_err(|e| e.to_string()),
            Err("error gathering device information while adding custom device \"/dev/wharf-none\": no such file or directory".into())
        );
    }

    #[test]
    fn windows_only_and_unavailable_settings_are_refused_like_docker() {
        let bad = |hc: HostConfig| validate(&hc).err().map(|e| e.to_string());
        let res = |r: Resources| HostConfig {
            resources: r,
            ..Default::default()
        };
        assert_eq!(bad(res(Resources { io_maximum_iops: 5, ..Default::default() })).as_deref(), Some("Invalid QoS settings: linux does not support Maximum IO Bandwidth or Maximum IO IOps"));
        let gpus = json!({"Driver": "", "Count": -1, "Capabilities": [["gpu"]]});
        assert_eq!(
            bad(res(Resources {
                device_requests: Some(vec![gpus]),
                ..Default::default()
            }))
            .as_deref(),
            Some("could not select device driver \"\" with capabilities: [[gpu]]")
        );
        assert_eq!(
            bad(HostConfig {
                isolation: "hyperv".into(),
                ..Default::default()
            })
            .as_deref(),
            Some("invalid isolation 'hyperv' on linux")
        );
        assert!(validate(&HostConfig {
            isolation: "default".into(),
            ..Default::default()
        })
        .is_ok());
        assert!(validate(&res(Resources {
            cpu_count: 2,
            cpu_percent: 50,
            ..Default::default()
        }))
        .is_ok());
    }
}
