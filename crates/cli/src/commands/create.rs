//! Turns `run`/`create` flags into the Engine API's create body (pure; unit-tested).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::cli::CreateArgs;
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
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|e| anyhow::anyhow!("open {f}: {e}"))?;
        for line in text.lines() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            out.extend(expand_env(line));
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

/// Parses `--mount type=bind,source=/a,target=/b,readonly`.
pub(crate) fn parse_mount(m: &str) -> Result<Value, String> {
    let mut obj = Map::new();
    let mut ty = "volume".to_string();
    let mut bind_opts = Map::new();
    let mut tmpfs_opts = Map::new();
    for field in m.split(',') {
        let (k, v) = field.split_once('=').unwrap_or((field, "true"));
        match k.to_lowercase().as_str() {
            "type" => ty = v.to_string(),
            "source" | "src" => {
                obj.insert("Source".into(), json!(v));
            }
            "target" | "destination" | "dst" => {
                obj.insert("Target".into(), json!(v));
            }
            "readonly" | "ro" => {
                obj.insert("ReadOnly".into(), json!(matches!(v, "true" | "1")));
            }
            "bind-propagation" => {
                bind_opts.insert("Propagation".into(), json!(v));
            }
            "tmpfs-size" => {
                tmpfs_opts.insert("SizeBytes".into(), json!(ram_in_bytes(v)?));
            }
            "tmpfs-mode" => {
                let mode =
                    u32::from_str_radix(v, 8).map_err(|_| format!("invalid tmpfs-mode: {v}"))?;
                tmpfs_opts.insert("Mode".into(), json!(mode));
            }
            "consistency" => {
                obj.insert("Consistency".into(), json!(v));
            }
            other => return Err(format!("invalid field '{other}' must be a key=value pair")),
        }
    }
    if !obj.contains_key("Target") {
        return Err("target is required".into());
    }
    if !bind_opts.is_empty() {
        obj.insert("BindOptions".into(), Value::Object(bind_opts));
    }
    if !tmpfs_opts.is_empty() {
        obj.insert("TmpfsOptions".into(), Value::Object(tmpfs_opts));
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
    let devices: Vec<Value> = a
        .device
        .iter()
        .map(|d| parse_device(d))
        .collect::<Result<_, _>>()
        .map_err(err)?;
    let mem = |s: &Option<String>| -> anyhow::Result<Option<i64>> {
        match s.as_deref() {
            None => Ok(None),
            Some("-1") => Ok(Some(-1)),
            Some(v) => ram_in_bytes(v).map(Some).map_err(err),
        }
    };

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
        "Labels": kv_map(&a.label),
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
    } else if a.health_cmd.is_some() || a.health_interval.is_some() || a.health_retries.is_some() {
        let mut h = Map::new();
        if let Some(cmd) = &a.health_cmd {
            h.insert("Test".into(), json!(["CMD-SHELL", cmd]));
        }
        for (key, val) in [
            ("Interval", &a.health_interval),
            ("Timeout", &a.health_timeout),
            ("StartPeriod", &a.health_start_period),
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
        "NetworkMode": a.network.clone().unwrap_or_else(|| "default".into()),
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
        "VolumesFrom": a.volumes_from,
        "Sysctls": kv_map(&a.sysctl),
        "Annotations": kv_map(&a.annotation),
        "LogConfig": {"Type": a.log_driver.clone().unwrap_or_default(), "Config": kv_map(&a.log_opt)},
    });
    let h = host
        .as_object_mut()
        .ok_or_else(|| anyhow::anyhow!("internal: host config is not an object"))?;
    let mut set = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            h.insert(k.into(), v);
        }
    };
    set("Init", a.init.then_some(json!(true)));
    set("Memory", mem(&a.memory)?.map(Value::from));
    set(
        "MemoryReservation",
        mem(&a.memory_reservation)?.map(Value::from),
    );
    set("MemorySwap", mem(&a.memory_swap)?.map(Value::from));
    set("NanoCpus", a.cpus.map(|c| json!((c * 1e9) as i64)));
    set("CpuShares", a.cpu_shares.map(Value::from));
    set("CpuPeriod", a.cpu_period.map(Value::from));
    set("CpuQuota", a.cpu_quota.map(Value::from));
    set("CpusetCpus", a.cpuset_cpus.clone().map(Value::from));
    set("CpusetMems", a.cpuset_mems.clone().map(Value::from));
    set("BlkioWeight", a.blkio_weight.map(Value::from));
    set("PidsLimit", a.pids_limit.map(Value::from));
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
    c.insert("HostConfig".into(), host);
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
        assert!(parse_mount("type=bind,bogus=1,target=/b").is_err());
    }
}
