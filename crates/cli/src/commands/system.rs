//! System commands: version, info, df, prune, events.

use std::io::BufRead;

use serde_json::{json, Value};
use wharf_client::Query;

use super::{filters_json, out, Ctx, StatusError};
use crate::cli::*;
use crate::format::{self, render_list, units::human_size, ListContext};

/// Asks a yes/no question on stderr; anything but y/yes is no.
pub(crate) fn confirm(question: &str) -> anyhow::Result<bool> {
    eprint!("{question} [y/N] ");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim().to_lowercase().as_str(), "y" | "yes"))
}

const VERSION_TEMPLATE: &str = "Client:
 Version:           {{.Client.Version}}
 API version:       {{.Client.APIVersion}}
 OS/Arch:           {{.Client.Os}}/{{.Client.Arch}}
 Context:           {{.Client.Context}}
{{- if .Server}}

Server:{{if .Server.Platform.Name}} {{.Server.Platform.Name}}{{end}}
 Engine:
  Version:          {{.Server.Version}}
  API version:      {{.Server.ApiVersion}} (minimum version {{.Server.MinAPIVersion}})
  Go version:       {{.Server.GoVersion}}
  Git commit:       {{.Server.GitCommit}}
  Built:            {{.Server.BuildTime}}
  OS/Arch:          {{.Server.Os}}/{{.Server.Arch}}
  Experimental:     {{.Server.Experimental}}
{{- end}}
";

/// `version`: client details always; server details when the daemon answers.
pub(crate) fn version(
    ctx: &Ctx,
    a: &FormatOnly,
    server_err: Option<&wharf_client::ClientError>,
) -> anyhow::Result<i32> {
    let client = json!({
        "Version": env!("CARGO_PKG_VERSION"),
        "APIVersion": ctx.client.version().map_or_else(|| wharf_client::MAX_API_VERSION.to_string(), str::to_string),
        "Os": std::env::consts::OS,
        "Arch": go_arch(),
        "Context": "default",
    });
    let server: Option<Value> = match server_err {
        Some(_) => None,
        None => Some(ctx.client.get_json("/version", &Query::new())?),
    };
    let data = json!({"Client": client, "Server": server});
    let text = match a.format.as_deref() {
        Some("json") => format!("{}\n", data),
        Some(f) => format!("{}\n", format::render_one(f, &data)?),
        None => format::render_one(VERSION_TEMPLATE, &data)?,
    };
    out(&text);
    match server_err {
        Some(e) => Err(StatusError::exit(1, e.to_string())),
        None => Ok(0),
    }
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// `info`
pub(crate) fn info(ctx: &Ctx, a: &FormatOnly) -> anyhow::Result<i32> {
    let mut v: Value = ctx.client.get_json("/info", &Query::new())?;
    if let Some(f) = a.format.as_deref() {
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "ClientInfo".into(),
                json!({"Debug": false, "Context": "default"}),
            );
        }
        let f = if f == "json" { "{{json .}}" } else { f };
        out(&format!("{}\n", format::render_one(f, &v)?));
        return Ok(0);
    }
    let g = |k: &str| {
        v.get(k)
            .map(|x| format::render_one("{{.}}", x).unwrap_or_default())
            .unwrap_or_default()
    };
    let mut s = String::new();
    s.push_str("Client:\n Version:    ");
    s.push_str(env!("CARGO_PKG_VERSION"));
    s.push_str("\n Context:    default\n Debug Mode: false\n\nServer:\n");
    s.push_str(&format!(
        " Containers: {}\n  Running: {}\n  Paused: {}\n  Stopped: {}\n",
        g("Containers"),
        g("ContainersRunning"),
        g("ContainersPaused"),
        g("ContainersStopped")
    ));
    s.push_str(&format!(" Images: {}\n", g("Images")));
    for (label, key) in [
        ("Server Version", "ServerVersion"),
        ("Storage Driver", "Driver"),
        ("Logging Driver", "LoggingDriver"),
        ("Cgroup Driver", "CgroupDriver"),
        ("Cgroup Version", "CgroupVersion"),
        ("Default Runtime", "DefaultRuntime"),
        ("Kernel Version", "KernelVersion"),
        ("Operating System", "OperatingSystem"),
        ("OSType", "OSType"),
        ("Architecture", "Architecture"),
        ("CPUs", "NCPU"),
        ("Name", "Name"),
        ("ID", "ID"),
        ("Docker Root Dir", "DockerRootDir"),
    ] {
        if v.get(key).is_some() {
            s.push_str(&format!(" {label}: {}\n", g(key)));
        }
    }
    if let Some(m) = v.get("MemTotal").and_then(Value::as_f64) {
        s.push_str(&format!(
            " Total Memory: {}\n",
            format::units::bytes_size(m)
        ));
    }
    out(&s);
    for w in v
        .get("Warnings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        eprintln!("{}", w.as_str().unwrap_or_default());
    }
    Ok(0)
}

/// `system df`
pub(crate) fn df(ctx: &Ctx, a: &DfArgs) -> anyhow::Result<i32> {
    const DEFAULT: &str =
        "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}";
    const HEADER: &[(&str, &str)] = &[
        ("Type", "TYPE"),
        ("TotalCount", "TOTAL"),
        ("Active", "ACTIVE"),
        ("Size", "SIZE"),
        ("Reclaimable", "RECLAIMABLE"),
    ];
    let v: Value = ctx.client.get_json("/system/df", &Query::new())?;
    let arr = |k: &str| {
        v.get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let images = arr("Images");
    let containers = arr("Containers");
    let volumes = arr("Volumes");
    let num = |x: &Value, k: &str| x.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    let pct = |r: f64, total: f64| {
        if total > 0.0 {
            format!(" ({}%)", (r / total * 100.0) as i64)
        } else {
            String::new()
        }
    };
    let img_size: f64 = images.iter().map(|i| num(i, "Size")).sum();
    let img_active = images.iter().filter(|i| num(i, "Containers") > 0.0).count();
    let img_reclaim: f64 = images
        .iter()
        .filter(|i| num(i, "Containers") <= 0.0)
        .map(|i| num(i, "Size"))
        .sum();
    let c_size: f64 = containers.iter().map(|c| num(c, "SizeRw")).sum();
    let c_active = containers
        .iter()
        .filter(|c| c.get("State").and_then(Value::as_str) == Some("running"))
        .count();
    let c_reclaim: f64 = containers
        .iter()
        .filter(|c| c.get("State").and_then(Value::as_str) != Some("running"))
        .map(|c| num(c, "SizeRw"))
        .sum();
    let usage = |x: &Value, k: &str| {
        x.pointer(&format!("/UsageData/{k}"))
            .and_then(Value::as_f64)
            .unwrap_or(0.0)
            .max(0.0)
    };
    let v_size: f64 = volumes.iter().map(|x| usage(x, "Size")).sum();
    let v_active = volumes
        .iter()
        .filter(|x| usage(x, "RefCount") > 0.0)
        .count();
    let v_reclaim: f64 = volumes
        .iter()
        .filter(|x| usage(x, "RefCount") <= 0.0)
        .map(|x| usage(x, "Size"))
        .sum();
    let rows = vec![
        json!({"Type": "Images", "TotalCount": images.len().to_string(), "Active": img_active.to_string(), "Size": human_size(img_size), "Reclaimable": format!("{}{}", human_size(img_reclaim), pct(img_reclaim, img_size))}),
        json!({"Type": "Containers", "TotalCount": containers.len().to_string(), "Active": c_active.to_string(), "Size": human_size(c_size), "Reclaimable": format!("{}{}", human_size(c_reclaim), pct(c_reclaim, c_size))}),
        json!({"Type": "Local Volumes", "TotalCount": volumes.len().to_string(), "Active": v_active.to_string(), "Size": human_size(v_size), "Reclaimable": format!("{}{}", human_size(v_reclaim), pct(v_reclaim, v_size))}),
        json!({"Type": "Build Cache", "TotalCount": "0", "Active": "0", "Size": "0B", "Reclaimable": "0B"}),
    ];
    if a.verbose {
        return Err(StatusError::exit(
            1,
            "system df --verbose is not supported yet",
        ));
    }
    let methods = rows.iter().map(|_| serde_json::Map::new()).collect();
    let lc = ListContext {
        rows,
        methods,
        header: HEADER,
        root_type: "*formatter.diskUsageContext",
    };
    out(&render_list(
        &format::resolve_format(a.format.as_deref(), DEFAULT),
        &lc,
    )?);
    Ok(0)
}

/// `system prune`: stopped containers, then dangling (or all unused) images.
pub(crate) fn prune(ctx: &Ctx, a: &SystemPruneArgs) -> anyhow::Result<i32> {
    let images = if a.all {
        "all images without at least one container associated to them"
    } else {
        "all dangling images"
    };
    let volumes = if a.volumes {
        "  - all anonymous volumes not used by at least one container\n"
    } else {
        ""
    };
    let q = format!("WARNING! This will remove:\n  - all stopped containers\n{volumes}  - {images}\n\nAre you sure you want to continue?");
    if !a.force && !confirm(&q)? {
        return Ok(0);
    }
    let filters = filters_json(&a.filter)?;
    let c: Value = ctx
        .client
        .post(
            "/containers/prune",
            &Query::new().opt("filters", filters),
            None,
        )?
        .json()?;
    let vols: Value = if a.volumes {
        ctx.client
            .post(
                "/volumes/prune",
                &Query::new().opt("filters", filters_json(&a.filter)?),
                None,
            )?
            .json()?
    } else {
        json!({})
    };
    let mut img_filters = a.filter.clone();
    if !a.all {
        img_filters.push("dangling=true".into());
    }
    let i: Value = ctx
        .client
        .post(
            "/images/prune",
            &Query::new().opt("filters", filters_json(&img_filters)?),
            None,
        )?
        .json()?;
    out(&crate::format::prune::prune_report(&[&c, &vols, &i]));
    Ok(0)
}

/// One event line as docker prints it by default.
pub(crate) fn event_line(e: &Value) -> String {
    let nanos = e
        .get("timeNano")
        .and_then(Value::as_i64)
        .unwrap_or_else(|| e.get("time").and_then(Value::as_i64).unwrap_or(0) * 1_000_000_000);
    let t = chrono::DateTime::from_timestamp(
        nanos.div_euclid(1_000_000_000),
        nanos.rem_euclid(1_000_000_000) as u32,
    )
    .map(|t| {
        t.with_timezone(&chrono::Local)
            .format("%Y-%m-%dT%H:%M:%S%.9f%:z")
            .to_string()
            .replace("+00:00", "Z")
    })
    .unwrap_or_default();
    let s = |p: &str| e.pointer(p).and_then(Value::as_str).unwrap_or_default();
    let mut attrs: Vec<String> = e
        .pointer("/Actor/Attributes")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    attrs.sort();
    let mut line = format!("{t} {} {} {}", s("/Type"), s("/Action"), s("/Actor/ID"));
    if !attrs.is_empty() {
        line.push_str(&format!(" ({})", attrs.join(", ")));
    }
    line
}

/// `events`
pub(crate) fn events(ctx: &Ctx, a: &EventsArgs) -> anyhow::Result<i32> {
    let q = Query::new()
        .opt("since", a.since.clone())
        .opt("until", a.until.clone())
        .opt("filters", filters_json(&a.filter)?);
    let resp = ctx
        .client
        .request("GET", "/events", &q, wharf_client::RequestBody::Empty)?;
    let tmpl = a
        .format
        .as_deref()
        .map(|f| if f == "json" { "{{json .}}" } else { f });
    for e in resp.json_stream() {
        let e = e?;
        let line = match tmpl {
            Some(f) => format::render_one(f, &e)?,
            None => event_line(&e),
        };
        out(&format!("{line}\n"));
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lines_like_docker() {
        let e = json!({"Type": "container", "Action": "start", "Actor": {"ID": "abc", "Attributes": {"name": "web", "image": "busybox"}},
                       "time": 1, "timeNano": 1_000_000_005i64});
        let line = event_line(&e);
        assert!(
            line.ends_with(" container start abc (image=busybox, name=web)"),
            "{line}"
        );
    }

    #[test]
    fn version_template_parses_and_renders() {
        let data = json!({"Client": {"Version": "0.1.0", "APIVersion": "1.45", "Os": "linux", "Arch": "amd64", "Context": "default"}, "Server": null});
        let s = format::render_one(VERSION_TEMPLATE, &data).unwrap();
        assert_eq!(s, "Client:\n Version:           0.1.0\n API version:       1.45\n OS/Arch:           linux/amd64\n Context:           default\n");
        let lc = ListContext {
            rows: vec![],
            methods: vec![],
            header: &[("Type", "TYPE")],
            root_type: "x",
        };
        assert_eq!(render_list("table {{.Type}}", &lc).unwrap(), "TYPE\n");
    }
}
