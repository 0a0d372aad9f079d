//! Container commands that do not attach: listing, inspection, lifecycle, files.

use std::io::{Read, Write};
use std::time::SystemTime;

use serde_json::{json, Value};
use wharf_client::{ClientError, Query, RequestBody};
use wharf_errdefs::{Classify, ErrorKind};

use super::{enc, filters_json, for_each, inspect_container, out, Ctx, StatusError};
use crate::cli::*;
use crate::format::{self, container as fc, render_list, resolve_format, ListContext};

/// `ps`
pub(crate) fn ps(ctx: &Ctx, a: &PsArgs) -> anyhow::Result<i32> {
    let format = match (&a.format, a.quiet) {
        (_, true) => "{{.ID}}".to_string(),
        (Some(f), _) => resolve_format(Some(f), fc::DEFAULT_FORMAT),
        (None, _) => match &ctx.config.ps_format {
            Some(f) => resolve_format(Some(f), fc::DEFAULT_FORMAT),
            None if a.size => format!("{}\t{{{{.Size}}}}", fc::DEFAULT_FORMAT),
            None => fc::DEFAULT_FORMAT.to_string(),
        },
    };
    // The size is costly; docker asks for it only when the user's template uses it (a whole
    // `{{json .}}` does, the `json` shorthand does not).
    let user = a.format.as_deref().unwrap_or_default();
    let size = a.size || (!a.quiet && (user.contains(".Size") || user.contains("json .")));
    let limit = if a.latest { 1 } else { a.last };
    let q = Query::new()
        .flag("all", a.all || limit > 0)
        .flag("size", size)
        .opt("limit", (limit > 0).then(|| limit.to_string()))
        .opt("filters", filters_json(&a.filter)?);
    let list: Vec<Value> = ctx.client.get_json("/containers/json", &q)?;
    let now = SystemTime::now();
    let (rows, methods) = list
        .iter()
        .map(|c| fc::context(c, !a.no_trunc, now))
        .unzip();
    let lc = ListContext {
        rows,
        methods,
        header: fc::HEADER,
        root_type: fc::ROOT_TYPE,
    };
    out(&render_list(&format, &lc)?);
    Ok(0)
}

/// What `inspect` may look up.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    Any,
    Container,
    Image,
}

fn fetch_raw(ctx: &Ctx, kind: Kind, name: &str, size: bool) -> Result<Vec<u8>, ClientError> {
    let try_container = || {
        ctx.client
            .request(
                "GET",
                &format!("/containers/{}/json", enc(name)),
                &Query::new().flag("size", size),
                RequestBody::Empty,
            )
            .and_then(|r| r.bytes())
    };
    let try_image = || {
        ctx.client
            .request(
                "GET",
                &format!("/images/{}/json", enc(name)),
                &Query::new(),
                RequestBody::Empty,
            )
            .and_then(|r| r.bytes())
    };
    match kind {
        Kind::Container => try_container(),
        Kind::Image => try_image(),
        Kind::Any => match try_container() {
            Err(e) if e.kind() == ErrorKind::NotFound => try_image(),
            other => other,
        },
    }
}

/// `inspect`, `container inspect`, `image inspect`.
pub(crate) fn inspect(ctx: &Ctx, a: &InspectArgs, kind: Kind) -> anyhow::Result<i32> {
    let kind = match (kind, a.kind.as_deref()) {
        (Kind::Any, Some("container")) => Kind::Container,
        (Kind::Any, Some("image")) => Kind::Image,
        (Kind::Any, Some(other)) if !other.is_empty() => {
            return Err(StatusError::exit(
                1,
                format!("\"{other}\" is not a valid value for --type"),
            ))
        }
        (k, _) => k,
    };
    let mut raws = Vec::new();
    let mut errors = Vec::new();
    for n in &a.names {
        match fetch_raw(ctx, kind, n, a.size) {
            Ok(r) => raws.push(r),
            Err(e) if e.kind() == ErrorKind::NotFound => errors.push(match kind {
                Kind::Any => format!("Error: No such object: {n}"),
                Kind::Container => format!("Error response from daemon: No such container: {n}"),
                Kind::Image => format!("Error: No such image: {n}"),
            }),
            Err(e) => errors.push(e.to_string()),
        }
    }
    super::print_inspected(&raws, a.format.as_deref(), errors)
}

/// `logs`
pub(crate) fn logs(ctx: &Ctx, a: &LogsArgs) -> anyhow::Result<i32> {
    let info = inspect_container(&ctx.client, &a.container)?;
    let tty = info
        .pointer("/Config/Tty")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let q = Query::new()
        .flag("stdout", true)
        .flag("stderr", true)
        .flag("follow", a.follow)
        .flag("timestamps", a.timestamps)
        .flag("details", a.details)
        .set("tail", a.tail.clone())
        .opt("since", a.since.clone())
        .opt("until", a.until.clone());
    let id = info
        .get("Id")
        .and_then(Value::as_str)
        .unwrap_or(&a.container)
        .to_string();
    let mut resp = ctx.client.request(
        "GET",
        &format!("/containers/{id}/logs"),
        &q,
        RequestBody::Empty,
    )?;
    if tty {
        let mut o = std::io::stdout().lock();
        let mut buf = [0u8; 32 * 1024];
        loop {
            let n = resp.body.read(&mut buf)?;
            if n == 0 {
                break;
            }
            o.write_all(&buf[..n])?;
            o.flush()?;
        }
    } else {
        wharf_client::copy_multiplexed(
            &mut resp.body,
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        )?;
    }
    Ok(0)
}

/// `stop` and `restart`
pub(crate) fn stop(ctx: &Ctx, a: &StopArgs, verb: &str) -> anyhow::Result<i32> {
    let q = Query::new()
        .opt("t", a.timeout.map(|t| t.to_string()))
        .opt("signal", a.signal.clone());
    Ok(for_each(&a.containers, |n| {
        ctx.client
            .post(&format!("/containers/{}/{verb}", enc(n)), &q, None)
            .map(|_| Some(n.to_string()))
    }))
}

/// `kill`
pub(crate) fn kill(ctx: &Ctx, a: &KillArgs) -> anyhow::Result<i32> {
    let q = Query::new().opt("signal", a.signal.clone());
    Ok(for_each(&a.containers, |n| {
        ctx.client
            .post(&format!("/containers/{}/kill", enc(n)), &q, None)
            .map(|_| Some(n.to_string()))
    }))
}

/// `rm`
pub(crate) fn rm(ctx: &Ctx, a: &RmArgs) -> anyhow::Result<i32> {
    let q = Query::new()
        .flag("force", a.force)
        .flag("v", a.volumes)
        .flag("link", a.link);
    Ok(for_each(&a.containers, |n| {
        ctx.client
            .delete(&format!("/containers/{}", enc(n)), &q)
            .map(|_| Some(n.to_string()))
    }))
}

/// `pause` and `unpause`
pub(crate) fn simple_post(ctx: &Ctx, names: &[String], verb: &str) -> anyhow::Result<i32> {
    Ok(for_each(names, |n| {
        ctx.client
            .post(
                &format!("/containers/{}/{verb}", enc(n)),
                &Query::new(),
                None,
            )
            .map(|_| Some(n.to_string()))
    }))
}

/// `wait`: prints each container's exit code.
pub(crate) fn wait(ctx: &Ctx, a: &Containers) -> anyhow::Result<i32> {
    Ok(for_each(&a.containers, |n| {
        let v: Value = ctx
            .client
            .post(&format!("/containers/{}/wait", enc(n)), &Query::new(), None)?
            .json()?;
        Ok(Some(
            v.get("StatusCode")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                .to_string(),
        ))
    }))
}

/// `rename`
pub(crate) fn rename(ctx: &Ctx, a: &RenameArgs) -> anyhow::Result<i32> {
    let new = a.new_name.trim();
    if new.is_empty() {
        return Err(StatusError::exit(
            1,
            "Error: Neither old nor new names may be empty",
        ));
    }
    ctx.client.post(
        &format!("/containers/{}/rename", enc(&a.container)),
        &Query::new().set("name", new),
        None,
    )?;
    Ok(0)
}

/// `top`
pub(crate) fn top(ctx: &Ctx, a: &TopArgs) -> anyhow::Result<i32> {
    let q = Query::new().opt(
        "ps_args",
        (!a.ps_args.is_empty()).then(|| a.ps_args.join(" ")),
    );
    let v: Value = ctx
        .client
        .get_json(&format!("/containers/{}/top", enc(&a.container)), &q)?;
    let strs = |x: &Value| -> Vec<String> {
        x.as_array()
            .map(|a| {
                a.iter()
                    .map(|s| s.as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut text = strs(&v["Titles"]).join("\t");
    text.push('\n');
    for p in v["Processes"].as_array().into_iter().flatten() {
        text.push_str(&strs(p).join("\t"));
        text.push('\n');
    }
    out(&format::tabwriter::align_with(&text, 20, 1));
    Ok(0)
}

/// `port`
pub(crate) fn port(ctx: &Ctx, a: &PortArgs) -> anyhow::Result<i32> {
    let info = inspect_container(&ctx.client, &a.container)?;
    let ports = info
        .pointer("/NetworkSettings/Ports")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let fmt_binding = |b: &Value| {
        let ip = b.get("HostIp").and_then(Value::as_str).unwrap_or_default();
        let p = b
            .get("HostPort")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if ip.contains(':') {
            format!("[{ip}]:{p}")
        } else {
            format!("{ip}:{p}")
        }
    };
    if let Some(want) = &a.port {
        let key = if want.contains('/') {
            want.clone()
        } else {
            format!("{want}/tcp")
        };
        let bindings = ports
            .get(&key)
            .and_then(Value::as_array)
            .filter(|b| !b.is_empty())
            .ok_or_else(|| {
                StatusError::exit(
                    1,
                    format!(
                        "Error: No public port '{key}' published for {}",
                        a.container
                    ),
                )
            })?;
        let lines: String = bindings
            .iter()
            .map(|b| format!("{}\n", fmt_binding(b)))
            .collect();
        out(&lines);
        return Ok(0);
    }
    let mut keys: Vec<&String> = ports.keys().collect();
    keys.sort_by_key(|k| {
        let (n, p) = k.split_once('/').unwrap_or((k, ""));
        (n.parse::<u32>().unwrap_or(0), p.to_string())
    });
    let mut s = String::new();
    for k in keys {
        for b in ports[k.as_str()].as_array().into_iter().flatten() {
            s.push_str(&format!("{k} -> {}\n", fmt_binding(b)));
        }
    }
    out(&s);
    Ok(0)
}

/// `diff`
pub(crate) fn diff(ctx: &Ctx, a: &OneContainer) -> anyhow::Result<i32> {
    let v: Value = ctx.client.get_json(
        &format!("/containers/{}/changes", enc(&a.container)),
        &Query::new(),
    )?;
    let mut s = String::new();
    for c in v.as_array().into_iter().flatten() {
        let kind = match c.get("Kind").and_then(Value::as_i64) {
            Some(0) => "C",
            Some(1) => "A",
            Some(2) => "D",
            _ => "?",
        };
        s.push_str(&format!(
            "{kind} {}\n",
            c.get("Path").and_then(Value::as_str).unwrap_or_default()
        ));
    }
    out(&s);
    Ok(0)
}

/// Streams a response body to `-o FILE` or stdout (refusing a terminal, as docker does).
pub(crate) fn body_to_output(
    mut body: impl Read,
    output: Option<&str>,
    what: &str,
) -> anyhow::Result<()> {
    match output {
        Some(path) => {
            let mut f = std::fs::File::create(path)?;
            std::io::copy(&mut body, &mut f)?;
        }
        None => {
            if crate::tty::is_tty(1) {
                return Err(StatusError::exit(1, format!("cowardly refusing to save to a terminal. Use the -o flag or redirect ({what})")));
            }
            std::io::copy(&mut body, &mut std::io::stdout().lock())?;
        }
    }
    Ok(())
}

/// `export`
pub(crate) fn export(ctx: &Ctx, a: &ExportArgs) -> anyhow::Result<i32> {
    let resp = ctx.client.request(
        "GET",
        &format!("/containers/{}/export", enc(&a.container)),
        &Query::new(),
        RequestBody::Empty,
    )?;
    body_to_output(resp.body, a.output.as_deref(), "export")?;
    Ok(0)
}

/// `commit`
pub(crate) fn commit(ctx: &Ctx, a: &CommitArgs) -> anyhow::Result<i32> {
    let (repo, tag) = match a.reference.as_deref().map(crate::format::image::split_tag) {
        Some((r, t)) => (Some(r.to_string()), Some(t.to_string())),
        None => (None, None),
    };
    let mut q = Query::new()
        .set("container", a.container.clone())
        .opt("repo", repo)
        .opt("tag", tag)
        .opt("comment", a.message.clone())
        .opt("author", a.author.clone())
        .set("pause", if a.pause { "1" } else { "0" });
    for c in &a.change {
        q = q.set("changes", c.clone());
    }
    let v: Value = ctx.client.post("/commit", &q, None)?.json()?;
    out(&format!(
        "{}\n",
        v.get("Id").and_then(Value::as_str).unwrap_or_default()
    ));
    Ok(0)
}

/// `update`
pub(crate) fn update(ctx: &Ctx, a: &UpdateArgs) -> anyhow::Result<i32> {
    let mut body = super::create::resources_body(&a.resources).map_err(|e| anyhow::anyhow!(e))?;
    if let Some(r) = &a.restart {
        body.insert(
            "RestartPolicy".into(),
            super::create::parse_restart(r).map_err(|e| anyhow::anyhow!(e))?,
        );
    }
    if body.is_empty() {
        return Err(StatusError::exit(
            1,
            "You must provide one or more flags when using this command.",
        ));
    }
    let body = Value::Object(body);
    Ok(for_each(&a.containers, |n| {
        let v: Value = ctx
            .client
            .post(
                &format!("/containers/{}/update", enc(n)),
                &Query::new(),
                Some(&body),
            )?
            .json()?;
        for w in v
            .get("Warnings")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            eprintln!("WARNING: {}", w.as_str().unwrap_or_default());
        }
        Ok(Some(n.to_string()))
    }))
}

/// `container prune`
pub(crate) fn prune(ctx: &Ctx, a: &PruneArgs) -> anyhow::Result<i32> {
    if !a.force
        && !super::system::confirm(
            "WARNING! This will remove all stopped containers.\nAre you sure you want to continue?",
        )?
    {
        return Ok(0);
    }
    let q = Query::new().opt("filters", filters_json(&a.filter)?);
    let v: Value = ctx.client.post("/containers/prune", &q, None)?.json()?;
    out(&format::prune::prune_report(&[&v]));
    Ok(0)
}

/// `stats --no-stream` (and a streaming refresh loop without it).
pub(crate) fn stats(ctx: &Ctx, a: &StatsArgs) -> anyhow::Result<i32> {
    const DEFAULT: &str = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";
    const HEADER: &[(&str, &str)] = &[
        ("ID", "CONTAINER ID"),
        ("Container", "CONTAINER"),
        ("Name", "NAME"),
        ("CPUPerc", "CPU %"),
        ("MemUsage", "MEM USAGE / LIMIT"),
        ("MemPerc", "MEM %"),
        ("NetIO", "NET I/O"),
        ("BlockIO", "BLOCK I/O"),
        ("PIDs", "PIDS"),
    ];
    let format = resolve_format(
        a.format.as_deref().or(ctx.config.stats_format.as_deref()),
        DEFAULT,
    );
    loop {
        let names: Vec<String> = if a.containers.is_empty() {
            let list: Vec<Value> = ctx
                .client
                .get_json("/containers/json", &Query::new().flag("all", a.all))?;
            list.iter()
                .filter_map(|c| c.get("Id").and_then(Value::as_str).map(str::to_string))
                .collect()
        } else {
            a.containers.clone()
        };
        let mut rows = Vec::new();
        for n in &names {
            let s: Value = ctx.client.get_json(
                &format!("/containers/{}/stats", enc(n)),
                &Query::new().set("stream", "false"),
            )?;
            rows.push(stats_row(n, &s, !a.no_trunc));
        }
        let methods = rows.iter().map(|_| serde_json::Map::new()).collect();
        let lc = ListContext {
            rows,
            methods,
            header: HEADER,
            root_type: "*formatter.statsContext",
        };
        let text = render_list(&format, &lc)?;
        if a.no_stream {
            out(&text);
            return Ok(0);
        }
        // Clear the screen and redraw, as docker does in a terminal.
        out(&format!("\x1b[2J\x1b[H{text}"));
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

fn stats_row(name: &str, s: &Value, trunc: bool) -> Value {
    let f = |p: &str| s.pointer(p).and_then(Value::as_f64).unwrap_or(0.0);
    let cpu_delta =
        f("/cpu_stats/cpu_usage/total_usage") - f("/precpu_stats/cpu_usage/total_usage");
    let sys_delta = f("/cpu_stats/system_cpu_usage") - f("/precpu_stats/system_cpu_usage");
    let cpus = match f("/cpu_stats/online_cpus") {
        0.0 => s
            .pointer("/cpu_stats/cpu_usage/percpu_usage")
            .and_then(Value::as_array)
            .map_or(1.0, |a| a.len().max(1) as f64),
        n => n,
    };
    let cpu = if sys_delta > 0.0 && cpu_delta > 0.0 {
        cpu_delta / sys_delta * cpus * 100.0
    } else {
        0.0
    };
    // cgroup v1 reports cache separately; docker subtracts total_inactive_file.
    let mem = (f("/memory_stats/usage") - f("/memory_stats/stats/total_inactive_file")).max(0.0);
    let limit = f("/memory_stats/limit");
    let mem_pct = if limit > 0.0 {
        mem / limit * 100.0
    } else {
        0.0
    };
    let (mut rx, mut tx) = (0.0, 0.0);
    for n in s
        .get("networks")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|m| m.values())
    {
        rx += n.get("rx_bytes").and_then(Value::as_f64).unwrap_or(0.0);
        tx += n.get("tx_bytes").and_then(Value::as_f64).unwrap_or(0.0);
    }
    let (mut rd, mut wr) = (0.0, 0.0);
    for e in s
        .pointer("/blkio_stats/io_service_bytes_recursive")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let v = e.get("value").and_then(Value::as_f64).unwrap_or(0.0);
        match e
            .get("op")
            .and_then(Value::as_str)
            .map(str::to_lowercase)
            .as_deref()
        {
            Some("read") => rd += v,
            Some("write") => wr += v,
            _ => {}
        }
    }
    let id = s.get("id").and_then(Value::as_str).unwrap_or(name);
    let hs = |x: f64| format::units::human_size_prec(x, 3);
    json!({
        "BlockIO": format!("{} / {}", hs(rd), hs(wr)),
        "CPUPerc": format!("{cpu:.2}%"),
        "Container": name,
        "ID": if trunc { format::truncate_id(id) } else { id.to_string() },
        "MemPerc": format!("{mem_pct:.2}%"),
        "MemUsage": format!("{} / {}", format::units::bytes_size(mem), format::units::bytes_size(limit)),
        "Name": s.get("name").and_then(Value::as_str).unwrap_or_default().trim_start_matches('/'),
        "NetIO": format!("{} / {}", hs(rx), hs(tx)),
        "PIDs": s.pointer("/pids_stats/current").and_then(Value::as_u64).unwrap_or(0).to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_row_computes_percentages() {
        let s = json!({
            "id": "0123456789abcdef", "name": "/web",
            "cpu_stats": {"cpu_usage": {"total_usage": 200}, "system_cpu_usage": 1000, "online_cpus": 2},
            "precpu_stats": {"cpu_usage": {"total_usage": 100}, "system_cpu_usage": 600},
            "memory_stats": {"usage": 1048576, "limit": 4194304, "stats": {"total_inactive_file": 0}},
            "pids_stats": {"current": 3}
        });
        let r = stats_row("web", &s, true);
        assert_eq!(r["CPUPerc"], "50.00%");
        assert_eq!(r["MemUsage"], "1MiB / 4MiB");
        assert_eq!(r["MemPerc"], "25.00%");
        assert_eq!(r["Name"], "web");
        assert_eq!(r["ID"], "0123456789ab");
        assert_eq!(r["PIDs"], "3");
        assert_eq!(r["NetIO"], "0B / 0B");
    }
}
