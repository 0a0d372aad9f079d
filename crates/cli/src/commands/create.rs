//! Turns `run`/`create` flags into the Engine API's create body (pure; unit-tested).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use wharf_client::Host;

use crate::cli::{CreateArgs, ResourceArgs};
use crate::format::units::ram_in_bytes;

/// A create request: the JSON body plus query parameters.
#[derive(Debug)]
pub(crate) struct CreateRequest {
    pub body: Value,
    pub name: Option<String>,
    pub platform: Option<String>,
}

/// Parses Go duration strings ("1m30s", "500ms") to nanoseconds.
pub(crate) fn go_duration_ns(s: &str) -> Result<i64, String> {
    let bad = || format!("time: invalid duration \"{s}\"");
    if s == "0" {
        return Ok(0);
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if num_end == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += n * mult;
        rest = &rest[unit_end..];
    }
    Ok(total as i64)
}

fn kv_map(items: &[String]) -> Map<String, Value> {
    items
        .iter()
        .map(|i| match i.split_once('=') {
            Some((k, v)) => (k.to_string(), Value::String(v.to_string())),
            None => (i.to_string(), Value::String(String::new())),
        })
        .collect()
}

/// Reads `--env-file` lines: `KEY=VAL`, bare `KEY` taken from our environment, `#` comments.
pub(crate) fn read_env_files(files: &[String]) -> anyhow::Result<Vec<String>> {
    read_kv_files(files, expand_env)
}

/// Reads docker's line-delimited `KEY=VAL` files; a bare `KEY` line becomes what `bare` makes
/// of it (dropped when `None`).
fn read_kv_files(
    files: &[String],
    bare: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|e| anyhow::anyhow!("open {f}: {e}"))?;
        for line in text.lines() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key = line.split_once('=').map_or(line, |(k, _)| k);
            if key.contains(char::is_whitespace) {
                anyhow::bail!("invalid env file ({f}): variable '{key}' contains whitespaces");
            }
            if line.contains('=') {
                out.push(line.to_string());
            } else {
                out.extend(bare(line));
            }
        }
    }
    Ok(out)
}

/// `-e KEY` takes KEY from our environment (and is dropped if unset), as docker does.
pub(crate) fn expand_env(e: &str) -> Option<String> {
    if e.contains('=') {
        return Some(e.to_string());
    }
    std::env::var(e).ok().map(|v| format!("{e}={v}"))
}

/// Parses `-p [ip:][hostPort:]containerPort[/proto]` into (port key, binding).
pub(crate) fn parse_publish(p: &str) -> Result<Vec<(String, Value)>, String> {
    let (spec, proto) = match p.rsplit_once('/') {
        Some((s, proto)) => (s, proto.to_string()),
        None => (p, "tcp".to_string()),
    };
    // An IPv6 host address is bracketed: [::1]:8080:80
    let (ip, rest) = if let Some(r) = spec.strip_prefix('[') {
        let (ip, r) = r
            .split_once("]:")
            .ok_or_else(|| format!("invalid publish spec: {p}"))?;
        (ip.to_string(), r.to_string())
    } else {
        (String::new(), spec.to_string())
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, host, container) = match parts.as_slice() {
        [c] => (ip, "", *c),
        [h, c] => (ip, *h, *c),
        [i, h, c] if ip.is_empty() => (i.to_string(), *h, *c),
        _ => return Err(format!("invalid publish spec: {p}")),
    };
    let range = |s: &str| -> Result<(u32, u32), String> {
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let a: u32 = a
            .parse()
            .map_err(|_| format!("invalid containerPort: {s}"))?;
        let b: u32 = b
            .parse()
            .map_err(|_| format!("invalid containerPort: {s}"))?;
        if a == 0 || b < a || b > 65535 {
            return Err(format!("invalid port range: {s}"));
        }
        Ok((a, b))
    };
    let (c0, c1) = range(container)?;
    let host_range = if host.is_empty() {
        None
    } else {
        Some(range(host)?)
    };
    let mut out = Vec::new();
    for (i, port) in (c0..=c1).enumerate() {
        let host_port = match host_range {
            None => String::new(),
            Some((h0, h1)) if h1 - h0 == c1 - c0 => (h0 + i as u32).to_string(),
            Some((h0, h1)) if h0 == h1 => h0.to_string(),
            Some((h0, h1)) => format!("{h0}-{h1}"),
        };
        out.push((
            format!("{port}/{proto}"),
            json!({"HostIp": ip, "HostPort": host_port}),
        ));
    }
    Ok(out)
}

/// Parses `--mount type=bind,source=/a,target=/b,readonly` with the docker CLI's keys and
/// messages (`opts/mount.go`).
pub(crate) fn parse_mount(m: &str) -> Result<Value, String> {
    let bad = |msg: String| format!("invalid argument \"{m}\" for \"--mount\" flag: {msg}");
    let mut obj = Map::new();
    let mut ty = "volume".to_string();
    let mut bind_opts = Map::new();
    let mut tmpfs_opts = Map::new();
    let mut vol_opts = Map::new();
    let mut driver = Map::new();
    let mut driver_opts = Map::new();
    let mut labels = Map::new();
    let truth = |k: &str, v: &str| match v.to_lowercase().as_str() {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err(bad(format!("invalid value for {k}: {v}"))),
    };
    for field in m.split(',') {
        let (k, v) = match field.split_once('=') {
            Some(kv) => kv,
            None => match field.to_lowercase().as_str() {
                "readonly" | "ro" | "volume-nocopy" | "bind-nonrecursive" => (field, "true"),
                _ => {
                    return Err(bad(format!(
                        "invalid field '{field}' must be a key=value pair"
                    )))
                }
            },
        };
        let key = k.to_lowercase();
        match key.as_str() {
            "type" => ty = v.to_string(),
            "source" | "src" => {
                obj.insert("Source".into(), json!(v));
            }
            "target" | "destination" | "dst" => {
                obj.insert("Target".into(), json!(v));
            }
            "readonly" | "ro" => {
                obj.insert("ReadOnly".into(), json!(truth(&key, v)?));
            }
            "consistency" => {
                obj.insert("Consistency".into(), json!(v));
            }
            "bind-propagation" => {
                bind_opts.insert("Propagation".into(), json!(v));
            }
            "bind-nonrecursive" => {
                bind_opts.insert("NonRecursive".into(), json!(truth(&key, v)?));
            }
            "volume-nocopy" => {
                vol_opts.insert("NoCopy".into(), json!(truth(&key, v)?));
            }
            "volume-subpath" => {
                vol_opts.insert("Subpath".into(), json!(v));
            }
            "volume-driver" => {
                driver.insert("Name".into(), json!(v));
            }
            "volume-label" => {
                let (lk, lv) = v.split_once('=').unwrap_or((v, ""));
                labels.insert(lk.into(), json!(lv));
            }
            "volume-opt" => {
                let (ok, ov) = v.split_once('=').unwrap_or((v, ""));
                driver_opts.insert(ok.into(), json!(ov));
            }
            "tmpfs-size" => {
                tmpfs_opts.insert("SizeBytes".into(), json!(ram_in_bytes(v)?));
            }
            "tmpfs-mode" => {
                let mode = u32::from_str_radix(v, 8)
                    .map_err(|_| bad(format!("invalid value for {key}: {v}")))?;
                tmpfs_opts.insert("Mode".into(), json!(mode));
            }
            _ => return Err(bad(format!("unexpected key '{key}' in '{field}'"))),
        }
    }
    if !obj.contains_key("Target") {
        return Err(bad("target is required".into()));
    }
    if !driver_opts.is_empty() {
        driver.insert("Options".into(), Value::Object(driver_opts));
    }
    if !driver.is_empty() {
        vol_opts.insert("DriverConfig".into(), Value::Object(driver));
    }
    if !labels.is_empty() {
        vol_opts.insert("Labels".into(), Value::Object(labels));
    }
    if !bind_opts.is_empty() {
        obj.insert("BindOptions".into(), Value::Object(bind_opts));
    }
    if !tmpfs_opts.is_empty() {
        obj.insert("TmpfsOptions".into(), Value::Object(tmpfs_opts));
    }
    if !vol_opts.is_empty() {
        obj.insert("VolumeOptions".into(), Value::Object(vol_opts));
    }
    obj.insert("Type".into(), json!(ty));
    Ok(Value::Object(obj))
}

fn parse_ulimit(u: &str) -> Result<Value, String> {
    let (name, limits) = u
        .split_once('=')
        .ok_or_else(|| format!("invalid ulimit argument: {u}"))?;
    let (soft, hard) = limits.split_once(':').unwrap_or((limits, limits));
    let soft: i64 = soft
        .parse()
        .map_err(|_| format!("invalid ulimit argument: {u}"))?;
    let hard: i64 = hard
        .parse()
        .map_err(|_| format!("invalid ulimit argument: {u}"))?;
    Ok(json!({"Name": name, "Soft": soft, "Hard": hard}))
}

fn parse_device(d: &str) -> Result<Value, String> {
    let parts: Vec<&str> = d.split(':').collect();
    let (host, cont, perms) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, c] if c.chars().all(|ch| "rwm".contains(ch)) && !c.is_empty() => (*h, *h, *c),
        [h, c] => (*h, *c, "rwm"),
        [h, c, p] => (*h, *c, *p),
        _ => return Err(format!("invalid device specification: {d}")),
    };
    Ok(json!({"PathOnHost": host, "PathInContainer": cont, "CgroupPermissions": perms}))
}

/// Parses `--restart no|always|unless-stopped|on-failure[:N]`.
pub(crate) fn parse_restart(r: &str) -> Result<Value, String> {
    let (name, count) = match r.split_once(':') {
        Some((n, c)) => (n, Some(c)),
        None => (r, None),
    };
    let max: i64 = match count {
        Some(c) => c
            .parse()
            .map_err(|_| format!("invalid restart policy format: {r}"))?,
        None => 0,
    };
    match name {
        "no" | "" => Ok(json!({"Name": "no", "MaximumRetryCount": 0})),
        "always" | "unless-stopped" if count.is_none() => {
            Ok(json!({"Name": name, "MaximumRetryCount": 0}))
        }
        "on-failure" => Ok(json!({"Name": name, "MaximumRetryCount": max})),
        _ => Err(format!("invalid restart policy format: {r}")),
    }
}

/// `-m 512m`-style sizes; "-1" means unlimited (`--memory-swap -1`).
fn mem_bytes(s: &Option<String>) -> Result<Option<i64>, String> {
    match s.as_deref() {
        None => Ok(None),
        Some("-1") => Ok(Some(-1)),
        Some(v) => ram_in_bytes(v).map(Some),
    }
}

/// The resource fields `create` (inside HostConfig) and `update` send, only those given.
pub(crate) fn resources_body(r: &ResourceArgs) -> Result<Map<String, Value>, String> {
    let mut m = Map::new();
    let mut set = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(k.into(), v);
        }
    };
    set("BlkioWeight", r.blkio_weight.map(Value::from));
    set("CpuPeriod", r.cpu_period.map(Value::from));
    set("CpuQuota", r.cpu_quota.map(Value::from));
    set("CpuRealtimePeriod", r.cpu_rt_period.map(Value::from));
    set("CpuRealtimeRuntime", r.cpu_rt_runtime.map(Value::from));
    set("CpuShares", r.cpu_shares.map(Value::from));
    set("NanoCpus", r.cpus.map(|c| json!((c * 1e9) as i64)));
    set("CpusetCpus", r.cpuset_cpus.clone().map(Value::from));
    set("CpusetMems", r.cpuset_mems.clone().map(Value::from));
    set("Memory", mem_bytes(&r.memory)?.map(Value::from));
    set(
        "MemoryReservation",
        mem_bytes(&r.memory_reservation)?.map(Value::from),
    );
    set("MemorySwap", mem_bytes(&r.memory_swap)?.map(Value::from));
    set("PidsLimit", r.pids_limit.map(Value::from));
    Ok(m)
}

/// docker's wording for a flag value it rejects while parsing.
fn bad_flag(flag: &str, value: &str, why: impl std::fmt::Display) -> String {
    format!("invalid argument \"{value}\" for \"--{flag}\" flag: {why}")
}

/// `PATH:VALUE` of the blkio device flags; the path must be under /dev/ as docker checks.
fn device_and_value<'a>(flag: &str, v: &'a str) -> Result<(&'a str, &'a str), String> {
    match v.split_once(':') {
        Some((p, _)) if !p.is_empty() && !p.starts_with("/dev/") => Err(bad_flag(
            flag,
            v,
            format_args!("bad format for device path: {v}"),
        )),
        Some((p, rate)) if !p.is_empty() => Ok((p, rate)),
        _ => Err(bad_flag(flag, v, format_args!("bad format: {v}"))),
    }
}

/// `--blkio-weight-device /dev/sda:300` → `{Path, Weight}`.
fn parse_weight_device(v: &str) -> Result<Value, String> {
    let flag = "blkio-weight-device";
    let (path, w) = device_and_value(flag, v)?;
    match w.parse::<u16>() {
        Ok(w) if w == 0 || (10..=1000).contains(&w) => Ok(json!({"Path": path, "Weight": w})),
        _ => Err(bad_flag(
            flag,
            v,
            format_args!("invalid weight for device: {v}"),
        )),
    }
}

/// `--device-{read,write}-bps /dev/sda:1mb` (size units) → `{Path, Rate}`.
fn parse_throttle_bps(flag: &str, v: &str) -> Result<Value, String> {
    let (path, rate) = device_and_value(flag, v)?;
    match ram_in_bytes(rate) {
        Ok(r) if r >= 0 => Ok(json!({"Path": path, "Rate": r})),
        _ => Err(bad_flag(flag, v, format_args!("invalid rate for device: {v}. The correct format is <device-path>:<number>[<unit>]. Number must be a positive integer. Unit is optional and can be kb, mb, or gb"))),
    }
}

/// `--device-{read,write}-iops /dev/sda:100` → `{Path, Rate}`.
fn parse_throttle_iops(flag: &str, v: &str) -> Result<Value, String> {
    let (path, rate) = device_and_value(flag, v)?;
    let r: u64 = rate.parse().map_err(|_| {
        bad_flag(flag, v, format_args!("invalid rate for device: {v}. The correct format is <device-path>:<number>. Number must be a positive integer"))
    })?;
    Ok(json!({"Path": path, "Rate": r}))
}

/// docker's client-side check of `--device-cgroup-rule`: `[acb] MAJ:MIN [rwm]{1,3}`, `*` wildcards.
fn check_cgroup_rule(v: &str) -> Result<(), String> {
    let number = |s: &str| s == "*" || (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
    let ok = match v.split(' ').collect::<Vec<_>>().as_slice() {
        [ty, nums, access] => {
            matches!(*ty, "a" | "b" | "c")
                && nums
                    .split_once(':')
                    .is_some_and(|(a, b)| number(a) && number(b))
                && (1..=3).contains(&access.len())
                && access.chars().all(|c| "rwm".contains(c))
        }
        _ => false,
    };
    ok.then_some(()).ok_or_else(|| {
        bad_flag(
            "device-cgroup-rule",
            v,
            format_args!("invalid device cgroup format '{v}'"),
        )
    })
}

/// `--gpus all|N|driver=..,count=..,device=..,capabilities=..,options=..` → a DeviceRequest.
fn parse_gpus(v: &str) -> Result<Value, String> {
    let bad = |why: String| bad_flag("gpus", v, why);
    let count = |s: &str| -> Result<i64, String> {
        if s == "all" {
            return Ok(-1);
        }
        s.parse()
            .map_err(|_| bad(format!("count must be an integer: {s}")))
    };
    let (mut driver, mut n, mut ids, mut caps, mut opts) =
        (String::new(), None, Value::Null, vec![], Map::new());
    let mut seen = Vec::new();
    for field in csv_fields(v) {
        let (key, val) = match field.split_once('=') {
            Some((k, val)) => (k.to_string(), Some(val.to_string())),
            None => (field.clone(), None),
        };
        if seen.contains(&key) {
            return Err(bad(format!(
                "gpu request key '{key}' can be specified only once"
            )));
        }
        // A bare value is the count, so a later `count=` repeats it.
        seen.push(if val.is_none() {
            "count".into()
        } else {
            key.clone()
        });
        match (key.as_str(), val) {
            (k, None) => n = Some(count(k)?),
            ("driver", Some(d)) => driver = d,
            ("count", Some(c)) => n = Some(count(&c)?),
            ("device", Some(d)) => ids = json!(d.split(',').collect::<Vec<_>>()),
            ("capabilities", Some(c)) => caps = c.split(',').map(str::to_string).collect(),
            ("options", Some(o)) => opts = kv_map(&csv_fields(&o)),
            (_, Some(_)) => return Err(bad(format!("unexpected key '{key}' in '{field}'"))),
        }
    }
    caps.push("gpu".to_string());
    let n = n.unwrap_or(if ids.is_null() { 1 } else { 0 });
    Ok(
        json!({"Driver": driver, "Count": n, "DeviceIDs": ids, "Capabilities": [caps], "Options": opts}),
    )
}

/// Splits one CSV record: commas outside double quotes separate fields; quotes are removed.
fn csv_fields(s: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    for c in s.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// `--link name[:alias]`.
fn check_link(v: &str) -> Result<(), String> {
    match v.split(':').collect::<Vec<_>>().as_slice() {
        [n] | [n, _] if !n.is_empty() => Ok(()),
        _ => Err(bad_flag(
            "link",
            v,
            format_args!("bad format for links: {v}"),
        )),
    }
}

/// Modes naming a network of docker's own (aliases and links there are per network only).
fn is_user_defined_network(mode: &str) -> bool {
    !matches!(mode, "default" | "bridge" | "host" | "none") && !mode.starts_with("container:")
}

/// The flags docker accepts only against a Windows daemon; it refuses them (exit 1) on Linux.
pub(crate) fn windows_only_flags(a: &CreateArgs) -> Option<String> {
    let given = [
        ("cpu-count", a.cpu_count.is_some()),
        ("cpu-percent", a.cpu_percent.is_some()),
        ("io-maxbandwidth", a.io_maxbandwidth.is_some()),
        ("io-maxiops", a.io_maxiops.is_some()),
    ];
    let lines: Vec<String> = given
        .iter()
        .filter(|(_, set)| *set)
        .map(|(f, _)| format!("\"--{f}\" is only supported on a Docker daemon running on windows, but the Docker daemon is running on linux"))
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// Where docker 28 puts the forwarded registry credentials inside the container.
pub(crate) const API_SOCKET_CONFIG_DIR: &str = "/run/secrets/docker";

/// `--use-api-socket`: bind the daemon's own socket at docker's fixed path, as docker 28 does,
/// and point `DOCKER_CONFIG` at the credentials copied in after create when there are any.
pub(crate) fn add_api_socket(
    body: &mut Value,
    host: &Host,
    with_creds: bool,
) -> anyhow::Result<()> {
    if with_creds {
        match body.get_mut("Env").and_then(Value::as_array_mut) {
            Some(env) => env.push(json!(format!("DOCKER_CONFIG={API_SOCKET_CONFIG_DIR}"))),
            None => anyhow::bail!("internal: create body has no Env"),
        }
    }
    let Host::Unix(path) = host else {
        anyhow::bail!("flag --use-api-socket can only be used with unix sockets: docker endpoint {host} incompatible");
    };
    let m = json!({"Type": "bind", "Source": path, "Target": "/var/run/docker.sock", "BindOptions": {}});
    match body
        .pointer_mut("/HostConfig/Mounts")
        .and_then(Value::as_array_mut)
    {
        Some(mounts) => mounts.push(m),
        None => anyhow::bail!("internal: create body has no HostConfig.Mounts"),
    }
    Ok(())
}

/// `NetworkingConfig` for the flags that configure the container's endpoint; `None` if unused.
fn networking_config(a: &CreateArgs, mode: &str) -> Result<Option<Value>, String> {
    let user_net = is_user_defined_network(mode);
    if !a.network_alias.is_empty() && !user_net {
        return Err("network-scoped aliases are only supported for user-defined networks".into());
    }
    let mut ipam = Map::new();
    if let Some(ip) = &a.ip {
        ipam.insert("IPv4Address".into(), json!(ip));
    }
    if let Some(ip) = &a.ip6 {
        ipam.insert("IPv6Address".into(), json!(ip));
    }
    if !a.link_local_ip.is_empty() {
        ipam.insert("LinkLocalIPs".into(), json!(a.link_local_ip));
    }
    let links = user_net && !a.link.is_empty();
    if ipam.is_empty() && a.network_alias.is_empty() && a.mac_address.is_none() && !links {
        return Ok(None);
    }
    let mut ep = Map::new();
    if !ipam.is_empty() {
        ep.insert("IPAMConfig".into(), Value::Object(ipam));
    }
    if links {
        ep.insert("Links".into(), json!(a.link));
    }
    if !a.network_alias.is_empty() {
        ep.insert("Aliases".into(), json!(a.network_alias));
    }
    // API 1.44+ carries the MAC address per endpoint, not in Config.
    if let Some(mac) = &a.mac_address {
        ep.insert("MacAddress".into(), json!(mac));
    }
    Ok(Some(json!({"EndpointsConfig": {mode: ep}})))
}

/// Builds the create request for `run` (`detach` from -d) or `create` (never detached).
/// `extra_env` (config.json proxies) goes before `-e` values.
pub(crate) fn build(
    a: &CreateArgs,
    detach: bool,
    extra_env: &[String],
) -> anyhow::Result<CreateRequest> {
    let err = |e: String| anyhow::anyhow!(e);
    let mut env: Vec<String> = extra_env.to_vec();
    env.extend(read_env_files(&a.env_file)?);
    env.extend(a.env.iter().filter_map(|e| expand_env(e)));

    let mut exposed = Map::new();
    let mut bindings: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for p in &a.publish {
        for (key, b) in parse_publish(p).map_err(err)? {
            exposed.insert(key.clone(), json!({}));
            bindings.entry(key).or_default().push(b);
        }
    }
    for e in &a.expose {
        let (port, proto) = e.split_once('/').unwrap_or((e, "tcp"));
        exposed.insert(format!("{port}/{proto}"), json!({}));
    }
    // Anonymous volumes (`-v /data`) go to Config.Volumes; the rest are binds.
    let mut volumes = Map::new();
    let mut binds = Vec::new();
    for v in &a.volume {
        if v.contains(':') {
            binds.push(json!(v));
        } else {
            volumes.insert(v.clone(), json!({}));
        }
    }
    let tmpfs: Map<String, Value> = a
        .tmpfs
        .iter()
        .map(|t| match t.split_once(':') {
            Some((p, o)) => (p.to_string(), json!(o)),
            None => (t.clone(), json!("")),
        })
        .collect();
    let mounts: Vec<Value> = a
        .mount
        .iter()
        .map(|m| parse_mount(m))
        .collect::<Result<_, _>>()
        .map_err(err)?;
    let ulimits: Vec<Value> = a
        .ulimit
        .iter()
        .map(|u| parse_ulimit(u))
        .collect::<Result<_, _>>()
        .map_err(err)?;
    let list = |items: &[String], f: &dyn Fn(&str) -> Result<Value, String>| {
        items
            .iter()
            .map(|v| f(v))
            .collect::<Result<Vec<Value>, String>>()
            .map_err(err)
    };
    let weight_devices = list(&a.blkio_weight_device, &parse_weight_device)?;
    let read_bps = list(&a.device_read_bps, &|v| {
        parse_throttle_bps("device-read-bps", v)
    })?;
    let write_bps = list(&a.device_write_bps, &|v| {
        parse_throttle_bps("device-write-bps", v)
    })?;
    let read_iops = list(&a.device_read_iops, &|v| {
        parse_throttle_iops("device-read-iops", v)
    })?;
    let write_iops = list(&a.device_write_iops, &|v| {
        parse_throttle_iops("device-write-iops", v)
    })?;
    let device_requests = list(&a.gpus, &parse_gpus)?;
    for r in &a.device_cgroup_rule {
        check_cgroup_rule(r).map_err(err)?;
    }
    for l in &a.link {
        check_link(l).map_err(err)?;
    }
    if a.memory_swappiness != -1 && !(0..=100).contains(&a.memory_swappiness) {
        anyhow::bail!(
            "invalid value: {}. Valid memory swappiness range is 0-100",
            a.memory_swappiness
        );
    }
    if let Some(k) = &a.kernel_memory {
        // Parsed like docker's bytes flag; the API has had no field for it since 1.42.
        ram_in_bytes(k).map_err(|e| err(bad_flag("kernel-memory", k, e)))?;
    }
    if a.storage_opt.iter().any(|o| !o.contains('=')) {
        anyhow::bail!("invalid storage option");
    }
    let mut labels: Vec<String> = read_kv_files(&a.label_file, |_| None)?;
    labels.extend(a.label.iter().cloned());
    let network_mode = a.network.clone().unwrap_or_else(|| "default".into());
    let networking = networking_config(a, &network_mode).map_err(err)?;
    let devices: Vec<Value> = a
        .device
        .iter()
        .map(|d| parse_device(d))
        .collect::<Result<_, _>>()
        .map_err(err)?;

    // Docker attaches stdout/stderr by default, stdin only with -i; -a narrows it.
    let attach = |s: &str| a.attach.iter().any(|x| x.eq_ignore_ascii_case(s));
    let (attach_in, attach_out, attach_err) = if detach {
        (false, false, false)
    } else if a.attach.is_empty() {
        (a.interactive, true, true)
    } else {
        (attach("stdin"), attach("stdout"), attach("stderr"))
    };

    let mut config = json!({
        "Hostname": a.hostname.clone().unwrap_or_default(),
        "Domainname": a.domainname.clone().unwrap_or_default(),
        "User": a.user.clone().unwrap_or_default(),
        "AttachStdin": attach_in,
        "AttachStdout": attach_out,
        "AttachStderr": attach_err,
        "Tty": a.tty,
        "OpenStdin": a.interactive,
        "StdinOnce": a.interactive && !detach,
        "Env": env,
        "Cmd": if a.command.is_empty() { Value::Null } else { json!(a.command) },
        "Image": a.image,
        "Volumes": if volumes.is_empty() { Value::Null } else { Value::Object(volumes) },
        "WorkingDir": a.workdir.clone().unwrap_or_default(),
        "Labels": kv_map(&labels),
    });
    let c = config
        .as_object_mut()
        .ok_or_else(|| anyhow::anyhow!("internal: config is not an object"))?;
    if let Some(ep) = &a.entrypoint {
        // An explicit empty entrypoint resets the image's.
        c.insert(
            "Entrypoint".into(),
            if ep.is_empty() {
                json!([])
            } else {
                json!([ep])
            },
        );
    }
    if !exposed.is_empty() {
        c.insert("ExposedPorts".into(), Value::Object(exposed));
    }
    if let Some(s) = &a.stop_signal {
        c.insert("StopSignal".into(), json!(s));
    }
    if let Some(t) = a.stop_timeout {
        c.insert("StopTimeout".into(), json!(t));
    }
    if a.no_healthcheck {
        c.insert("Healthcheck".into(), json!({"Test": ["NONE"]}));
    } else if a.health_cmd.is_some()
        || a.health_interval.is_some()
        || a.health_timeout.is_some()
        || a.health_start_period.is_some()
        || a.health_start_interval.is_some()
        || a.health_retries.is_some()
    {
        let mut h = Map::new();
        if let Some(cmd) = &a.health_cmd {
            h.insert("Test".into(), json!(["CMD-SHELL", cmd]));
        }
        for (key, val) in [
            ("Interval", &a.health_interval),
            ("Timeout", &a.health_timeout),
            ("StartPeriod", &a.health_start_period),
            ("StartInterval", &a.health_start_interval),
        ] {
            if let Some(v) = val {
                h.insert(key.into(), json!(go_duration_ns(v).map_err(err)?));
            }
        }
        if let Some(r) = a.health_retries {
            h.insert("Retries".into(), json!(r));
        }
        c.insert("Healthcheck".into(), Value::Object(h));
    }

    let mut host = json!({
        "Binds": if binds.is_empty() { Value::Null } else { json!(binds) },
        "NetworkMode": network_mode,
        "PortBindings": bindings,
        "RestartPolicy": parse_restart(&a.restart).map_err(err)?,
        "AutoRemove": a.rm,
        "CapAdd": a.cap_add,
        "CapDrop": a.cap_drop,
        "Dns": a.dns,
        "DnsOptions": a.dns_option,
        "DnsSearch": a.dns_search,
        "ExtraHosts": a.add_host,
        "GroupAdd": a.group_add,
        "Privileged": a.privileged,
        "PublishAllPorts": a.publish_all,
        "ReadonlyRootfs": a.read_only,
        "SecurityOpt": a.security_opt,
        "Tmpfs": tmpfs,
        "Mounts": mounts,
        "Ulimits": ulimits,
        "Devices": devices,
        "DeviceCgroupRules": a.device_cgroup_rule,
        "MemorySwappiness": a.memory_swappiness,
        "VolumesFrom": a.volumes_from,
        "Sysctls": kv_map(&a.sysctl),
        "Annotations": kv_map(&a.annotation),
        "LogConfig": {"Type": a.log_driver.clone().unwrap_or_default(), "Config": kv_map(&a.log_opt)},
    });
    let h = host
        .as_object_mut()
        .ok_or_else(|| anyhow::anyhow!("internal: host config is not an object"))?;
    h.extend(resources_body(&a.resources).map_err(err)?);
    let mut set = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            h.insert(k.into(), v);
        }
    };
    set("Init", a.init.then_some(json!(true)));
    set("OomKillDisable", a.oom_kill_disable.then_some(json!(true)));
    set("OomScoreAdj", a.oom_score_adj.map(Value::from));
    set(
        "ShmSize",
        a.shm_size
            .as_deref()
            .map(ram_in_bytes)
            .transpose()
            .map_err(err)?
            .map(Value::from),
    );
    set("CgroupParent", a.cgroup_parent.clone().map(Value::from));
    set("CgroupnsMode", a.cgroupns.clone().map(Value::from));
    set("IpcMode", a.ipc.clone().map(Value::from));
    set("PidMode", a.pid.clone().map(Value::from));
    set("UTSMode", a.uts.clone().map(Value::from));
    set("UsernsMode", a.userns.clone().map(Value::from));
    set("Runtime", a.runtime.clone().map(Value::from));
    let nonempty = |v: Vec<Value>| (!v.is_empty()).then(|| json!(v));
    set("BlkioWeightDevice", nonempty(weight_devices));
    set("BlkioDeviceReadBps", nonempty(read_bps));
    set("BlkioDeviceWriteBps", nonempty(write_bps));
    set("BlkioDeviceReadIOps", nonempty(read_iops));
    set("BlkioDeviceWriteIOps", nonempty(write_iops));
    set("DeviceRequests", nonempty(device_requests));
    set("Links", (!a.link.is_empty()).then(|| json!(a.link)));
    set(
        "StorageOpt",
        (!a.storage_opt.is_empty()).then(|| Value::Object(kv_map(&a.storage_opt))),
    );
    set("VolumeDriver", a.volume_driver.clone().map(Value::from));
    set("Isolation", a.isolation.clone().map(Value::from));
    c.insert("HostConfig".into(), host);
    if let Some(n) = networking {
        c.insert("NetworkingConfig".into(), n);
    }
    Ok(CreateRequest {
        body: config,
        name: a.name.clone(),
        platform: a.platform.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn run_args(args: &[&str]) -> crate::cli::RunArgs {
        let mut v = vec!["wharf", "run"];
        v.extend_from_slice(args);
        match Cli::try_parse_from(v).unwrap().command {
            Some(Command::Run(r)) => r,
            _ => panic!("not run"),
        }
    }

    #[test]
    fn builds_config_and_host_config() {
        let a = run_args(&[
            "-d",
            "--name",
            "web",
            "-e",
            "A=1",
            "-p",
            "8080:80",
            "-p",
            "127.0.0.1:53:53/udp",
            "-v",
            "/data",
            "-v",
            "/src:/dst:ro",
            "-m",
            "512m",
            "--cpus",
            "1.5",
            "--restart",
            "on-failure:3",
            "-l",
            "k=v",
            "--entrypoint",
            "",
            "--tmpfs",
            "/run:size=1m",
            "busybox",
            "sleep",
            "10",
        ]);
        let req = build(&a.opts, a.detach, &["HTTP_PROXY=x".into()]).unwrap();
        let b = &req.body;
        assert_eq!(req.name.as_deref(), Some("web"));
        assert_eq!(b["Env"], json!(["HTTP_PROXY=x", "A=1"]));
        assert_eq!(b["Cmd"], json!(["sleep", "10"]));
        assert_eq!(b["Entrypoint"], json!([]));
        assert_eq!(b["AttachStdout"], false);
        assert_eq!(b["Volumes"], json!({"/data": {}}));
        assert_eq!(b["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(b["Labels"], json!({"k": "v"}));
        let h = &b["HostConfig"];
        assert_eq!(
            h["PortBindings"]["80/tcp"],
            json!([{"HostIp": "", "HostPort": "8080"}])
        );
        assert_eq!(
            h["PortBindings"]["53/udp"],
            json!([{"HostIp": "127.0.0.1", "HostPort": "53"}])
        );
        assert_eq!(h["Binds"], json!(["/src:/dst:ro"]));
        assert_eq!(h["Memory"], 512 * 1024 * 1024);
        assert_eq!(h["NanoCpus"], 1_500_000_000i64);
        assert_eq!(
            h["RestartPolicy"],
            json!({"Name": "on-failure", "MaximumRetryCount": 3})
        );
        assert_eq!(h["Tmpfs"], json!({"/run": "size=1m"}));
    }

    #[test]
    fn interactive_attach_defaults() {
        let b = {
            let a = run_args(&["-it", "--rm", "busybox"]);
            build(&a.opts, a.detach, &[])
        }
        .unwrap()
        .body;
        assert_eq!(b["AttachStdin"], true);
        assert_eq!(b["OpenStdin"], true);
        assert_eq!(b["StdinOnce"], true);
        assert_eq!(b["Tty"], true);
        assert_eq!(b["Cmd"], Value::Null);
        assert_eq!(b["HostConfig"]["AutoRemove"], true);
    }

    #[test]
    fn bad_flags_are_errors() {
        assert!({
            let a = run_args(&["-p", "abc", "busybox"]);
            build(&a.opts, a.detach, &[])
        }
        .is_err());
        assert!({
            let a = run_args(&["-m", "lots", "busybox"]);
            build(&a.opts, a.detach, &[])
        }
        .is_err());
        assert!({
            let a = run_args(&["--restart", "sometimes", "busybox"]);
            build(&a.opts, a.detach, &[])
        }
        .is_err());
        assert!({
            let a = run_args(&["--mount", "type=bind,source=/a", "busybox"]);
            build(&a.opts, a.detach, &[])
        }
        .is_err());
    }

    #[test]
    fn publish_ranges_and_ipv6() {
        let r = parse_publish("8000-8001:80-81").unwrap();
        assert_eq!(
            r[1],
            (
                "81/tcp".to_string(),
                json!({"HostIp": "", "HostPort": "8001"})
            )
        );
        let r = parse_publish("[::1]:8080:80").unwrap();
        assert_eq!(r[0].1["HostIp"], "::1");
        assert!(parse_publish("1:2:3:4").is_err());
    }

    #[test]
    fn durations_and_mounts() {
        assert_eq!(go_duration_ns("1m30s"), Ok(90_000_000_000));
        assert_eq!(go_duration_ns("500ms"), Ok(500_000_000));
        assert!(go_duration_ns("5").is_err());
        let m = parse_mount("type=bind,src=/a,dst=/b,readonly").unwrap();
        assert_eq!(
            m,
            json!({"Type": "bind", "Source": "/a", "Target": "/b", "ReadOnly": true})
        );
        assert_eq!(
            parse_mount("type=bind,bogus=1,target=/b").unwrap_err(),
            "invalid argument \"type=bind,bogus=1,target=/b\" for \"--mount\" flag: unexpected key 'bogus' in 'bogus=1'"
        );
        let m = parse_mount("src=v,dst=/d,volume-nocopy,volume-opt=type=tmpfs,volume-subpath=s")
            .unwrap();
        assert_eq!(
            m["VolumeOptions"],
            json!({"NoCopy": true, "Subpath": "s", "DriverConfig": {"Options": {"type": "tmpfs"}}})
        );
    }

    /// Bodies compared with what docker 28 sends for the same flags (captured on a fake socket).
    #[test]
    fn resource_and_endpoint_flags_map_like_docker() {
        let dir = std::env::temp_dir().join(format!("wharf-labels-{}", std::process::id()));
        std::fs::write(&dir, "a=1\n# c\nb\n\nc=3 4\n").unwrap();
        let label_file = dir.to_string_lossy().to_string();
        let a = run_args(&[
            "--network",
            "mynet",
            "--blkio-weight-device",
            "/dev/sda:300",
            "--cpu-rt-period",
            "1000",
            "--cpu-rt-runtime",
            "500",
            "--device-cgroup-rule",
            "c 1:3 rwm",
            "--device-read-bps",
            "/dev/sda:1mb",
            "--device-read-iops",
            "/dev/sda:100",
            "--device-write-bps",
            "/dev/sda:2kb",
            "--device-write-iops",
            "/dev/sda:200",
            "--disable-content-trust",
            "--gpus",
            "capabilities=compute,driver=nvidia",
            "--health-start-interval",
            "2s",
            "--ip",
            "10.0.0.5",
            "--ip6",
            "fd00::5",
            "--isolation",
            "default",
            "--kernel-memory",
            "8m",
            "--label-file",
            &label_file,
            "-l",
            "z=9",
            "--link",
            "foo:bar",
            "--link",
            "baz",
            "--link-local-ip",
            "169.254.1.1",
            "--mac-address",
            "92:d0:c6:0a:29:33",
            "--memory-swappiness",
            "10",
            "--network-alias",
            "al1",
            "--storage-opt",
            "size=1G",
            "--volume-driver",
            "local",
            "busybox",
        ]);
        let b = build(&a.opts, a.detach, &[]).unwrap().body;
        let _ = std::fs::remove_file(&dir);
        assert_eq!(b["Labels"], json!({"a": "1", "c": "3 4", "z": "9"}));
        assert_eq!(b["Healthcheck"], json!({"StartInterval": 2_000_000_000i64}));
        assert!(b.get("MacAddress").is_none());
        let h = &b["HostConfig"];
        assert_eq!(
            h["BlkioWeightDevice"],
            json!([{"Path": "/dev/sda", "Weight": 300}])
        );
        assert_eq!(
            h["BlkioDeviceReadBps"],
            json!([{"Path": "/dev/sda", "Rate": 1048576}])
        );
        assert_eq!(
            h["BlkioDeviceWriteBps"],
            json!([{"Path": "/dev/sda", "Rate": 2048}])
        );
        assert_eq!(
            h["BlkioDeviceReadIOps"],
            json!([{"Path": "/dev/sda", "Rate": 100}])
        );
        assert_eq!(
            h["BlkioDeviceWriteIOps"],
            json!([{"Path": "/dev/sda", "Rate": 200}])
        );
        assert_eq!(h["CpuRealtimePeriod"], 1000);
        assert_eq!(h["CpuRealtimeRuntime"], 500);
        assert_eq!(h["DeviceCgroupRules"], json!(["c 1:3 rwm"]));
        assert_eq!(h["MemorySwappiness"], 10);
        assert_eq!(h["Isolation"], "default");
        assert_eq!(h["VolumeDriver"], "local");
        assert_eq!(h["StorageOpt"], json!({"size": "1G"}));
        assert_eq!(h["Links"], json!(["foo:bar", "baz"]));
        assert_eq!(
            h["DeviceRequests"],
            json!([{"Driver": "nvidia", "Count": 1, "DeviceIDs": null, "Capabilities": [["compute", "gpu"]], "Options": {}}])
        );
        assert_eq!(
            b["NetworkingConfig"],
            json!({"EndpointsConfig": {"mynet": {
                "IPAMConfig": {"IPv4Address": "10.0.0.5", "IPv6Address": "fd00::5", "LinkLocalIPs": ["169.254.1.1"]},
                "Links": ["foo:bar", "baz"], "Aliases": ["al1"], "MacAddress": "92:d0:c6:0a:29:33"}}})
        );
    }

    #[test]
    fn defaults_send_docker_swappiness_and_no_endpoint() {
        let a = run_args(&["busybox"]);
        let b = build(&a.opts, a.detach, &[]).unwrap().body;
        assert_eq!(b["HostConfig"]["MemorySwappiness"], -1);
        assert!(b.get("NetworkingConfig").is_none());
        assert!(b["HostConfig"].get("DeviceRequests").is_none());
        assert!(windows_only_flags(&a.opts).is_none());
    }

    #[test]
    fn gpu_requests() {
        let g = |v| parse_gpus(v).unwrap();
        assert_eq!(g("all")["Count"], -1);
        assert_eq!(g("2")["Count"], 2);
        let d = g("\"device=0,1\"");
        assert_eq!(
            (d["Count"].clone(), d["DeviceIDs"].clone()),
            (json!(0), json!(["0", "1"]))
        );
        assert_eq!(
            g("all,capabilities=utility")["Capabilities"],
            json!([["utility", "gpu"]])
        );
        assert!(parse_gpus("bogus=1").is_err());
        assert!(parse_gpus("2,count=3").is_err());
    }

    #[test]
    fn blkio_device_and_rule_syntax() {
        assert!(parse_weight_device("/dev/sda:5").is_err());
        assert!(parse_weight_device("sda:500").is_err());
        assert!(parse_throttle_bps("device-read-bps", "/dev/sda").is_err());
        assert!(parse_throttle_bps("device-read-bps", "/dev/sda:-1").is_err());
        assert!(parse_throttle_iops("device-read-iops", "/dev/sda:1k").is_err());
        for ok in ["c 1:3 rwm", "b *:* r", "a *:5 m"] {
            assert_eq!(check_cgroup_rule(ok), Ok(()), "{ok}");
        }
        for bad in ["x", "c 1:3 rwmx", "d 1:3 r", "c 1 r"] {
            assert!(check_cgroup_rule(bad).is_err(), "{bad}");
        }
        assert!(check_link("a:b:c").is_err());
    }

    #[test]
    fn windows_flags_and_api_socket() {
        let a = run_args(&["--cpu-count", "2", "--io-maxiops", "3", "busybox"]);
        let msg = windows_only_flags(&a.opts).unwrap();
        assert_eq!(msg.lines().count(), 2);
        assert!(msg.starts_with(
            "\"--cpu-count\" is only supported on a Docker daemon running on windows"
        ));
        let mut b = build(&a.opts, a.detach, &[]).unwrap().body;
        add_api_socket(&mut b, &Host::Unix("/run/w.sock".into()), true).unwrap();
        assert_eq!(b["Env"], json!(["DOCKER_CONFIG=/run/secrets/docker"]));
        assert_eq!(
            b["HostConfig"]["Mounts"],
            json!([{"Type": "bind", "Source": "/run/w.sock", "Target": "/var/run/docker.sock", "BindOptions": {}}])
        );
        assert!(build(
            &run_args(&["--network-alias", "x", "busybox"]).opts,
            false,
            &[]
        )
        .is_err());
    }
}
