//! Network commands: create, ls, inspect, connect, disconnect, rm, prune (docker's output).

use serde_json::{json, Map, Value};
use wharf_client::{Query, RequestBody};
use wharf_errdefs::{Classify, ErrorKind};

use super::{enc, filters_json, for_each, out, Ctx, StatusError};
use crate::cli::*;
use crate::format::{self, render_list, resolve_format, truncate_id, ListContext};

const DEFAULT_FORMAT: &str = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}";
const HEADER: &[(&str, &str)] = &[
    ("ID", "NETWORK ID"),
    ("Name", "NAME"),
    ("Driver", "DRIVER"),
    ("Scope", "SCOPE"),
    ("IPv4", "IPV4"),
    ("IPv6", "IPV6"),
    ("Internal", "INTERNAL"),
    ("Labels", "LABELS"),
    ("CreatedAt", "CREATED AT"),
];

/// Dispatches `wharf network ...`.
pub(crate) fn run(ctx: &Ctx, cmd: NetworkCommand) -> anyhow::Result<i32> {
    match cmd {
        NetworkCommand::Create(a) => create(ctx, &a),
        NetworkCommand::Ls(a) => ls(ctx, &a),
        NetworkCommand::Inspect(a) => inspect(ctx, &a),
        NetworkCommand::Connect(a) => connect(ctx, &a),
        NetworkCommand::Disconnect(a) => disconnect(ctx, &a),
        NetworkCommand::Rm(a) => rm(ctx, &a),
        NetworkCommand::Prune(a) => prune(ctx, &a),
    }
}

fn key_values(flags: &[String]) -> Map<String, Value> {
    flags
        .iter()
        .map(|f| {
            let (k, v) = f.split_once('=').unwrap_or((f.as_str(), ""));
            (k.to_string(), Value::String(v.to_string()))
        })
        .collect()
}

fn create(ctx: &Ctx, a: &NetworkCreateArgs) -> anyhow::Result<i32> {
    let mut config = Vec::new();
    for (i, s) in a.subnet.iter().enumerate() {
        let mut c = json!({"Subnet": s});
        if let Some(g) = a.gateway.get(i) {
            c["Gateway"] = json!(g);
        }
        if let Some(r) = a.ip_range.get(i) {
            c["IPRange"] = json!(r);
        }
        // One subnet is all the daemon takes: the aux addresses are its.
        if i == 0 && !a.aux_address.is_empty() {
            c["AuxiliaryAddresses"] = Value::Object(key_values(&a.aux_address));
        }
        config.push(c);
    }
    if a.subnet.is_empty() && !(a.gateway.is_empty() && a.ip_range.is_empty()) {
        return Err(StatusError::exit(
            1,
            "every ip-range or gateway must have a corresponding subnet",
        ));
    }
    if a.subnet.is_empty() && !a.aux_address.is_empty() {
        return Err(StatusError::exit(1, "no matching subnet for aux-address"));
    }
    let body = json!({
        "Name": a.name,
        "Driver": a.driver,
        "IPAM": {"Driver": "default", "Config": config, "Options": {}},
        "Options": key_values(&a.opt),
        "Labels": key_values(&a.label),
        "Internal": a.internal,
        "Attachable": a.attachable,
        "EnableIPv6": a.ipv6,
    });
    let v: Value = ctx
        .client
        .post("/networks/create", &Query::new(), Some(&body))?
        .json()?;
    out(&format!(
        "{}\n",
        v.get("Id").and_then(Value::as_str).unwrap_or_default()
    ));
    Ok(0)
}

fn ls(ctx: &Ctx, a: &NetworkLsArgs) -> anyhow::Result<i32> {
    let format = if a.quiet {
        "{{.ID}}".to_string()
    } else {
        resolve_format(a.format.as_deref(), DEFAULT_FORMAT)
    };
    let q = Query::new().opt("filters", filters_json(&a.filter)?);
    let mut list: Vec<Value> = ctx.client.get_json("/networks", &q)?;
    list.sort_by(|x, y| {
        let n = |v: &Value| {
            v.get("Name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        n(x).cmp(&n(y))
    });
    let (rows, methods): (Vec<Value>, Vec<Map<String, Value>>) =
        list.iter().map(|n| row(n, !a.no_trunc)).unzip();
    let lc = ListContext {
        rows,
        methods,
        header: HEADER,
        root_type: "*formatter.networkContext",
    };
    out(&render_list(&format, &lc)?);
    Ok(0)
}

/// The docker CLI's `networkContext` for one network.
fn row(n: &Value, trunc: bool) -> (Value, Map<String, Value>) {
    let s = |k: &str| {
        n.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let b = |k: &str| n.get(k).and_then(Value::as_bool).unwrap_or(false);
    let id = s("Id");
    let labels: Map<String, Value> = n
        .get("Labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut pairs: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    pairs.sort();
    let created = s("Created");
    let created_at = chrono::DateTime::parse_from_rfc3339(&created)
        .map(|t| format::container::go_time(t.timestamp()))
        .unwrap_or_default();
    let row = json!({
        "ID": if trunc { truncate_id(&id) } else { id },
        "Name": s("Name"),
        "Driver": s("Driver"),
        "Scope": s("Scope"),
        "IPv4": b("EnableIPv4").to_string(),
        "IPv6": b("EnableIPv6").to_string(),
        "Internal": b("Internal").to_string(),
        "Labels": pairs.join(","),
        "CreatedAt": created_at,
    });
    let mut methods = Map::new();
    methods.insert("Label".into(), Value::Object(labels));
    (row, methods)
}

fn inspect(ctx: &Ctx, a: &NetworkInspectArgs) -> anyhow::Result<i32> {
    let mut raws = Vec::new();
    let mut errors = Vec::new();
    for n in &a.names {
        let r = ctx
            .client
            .request(
                "GET",
                &format!("/networks/{}", enc(n)),
                &Query::new().flag("verbose", a.verbose),
                RequestBody::Empty,
            )
            .and_then(|r| r.bytes());
        match r {
            Ok(b) => raws.push(b),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                errors.push(format!("Error: No such network: {n}"))
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    super::print_inspected(&raws, a.format.as_deref(), errors)
}

fn connect(ctx: &Ctx, a: &NetworkConnectArgs) -> anyhow::Result<i32> {
    if !a.alias.is_empty() || a.ip.is_some() {
        return Err(StatusError::exit(
            1,
            "Error response from daemon: --alias and --ip are not supported yet",
        ));
    }
    let body = json!({"Container": a.container, "EndpointConfig": {}});
    ctx.client.post(
        &format!("/networks/{}/connect", enc(&a.network)),
        &Query::new(),
        Some(&body),
    )?;
    Ok(0)
}

fn disconnect(ctx: &Ctx, a: &NetworkDisconnectArgs) -> anyhow::Result<i32> {
    let body = json!({"Container": a.container, "Force": a.force});
    ctx.client.post(
        &format!("/networks/{}/disconnect", enc(&a.network)),
        &Query::new(),
        Some(&body),
    )?;
    Ok(0)
}

fn rm(ctx: &Ctx, a: &NetworkRmArgs) -> anyhow::Result<i32> {
    let code = for_each(&a.names, |n| {
        match ctx
            .client
            .delete(&format!("/networks/{}", enc(n)), &Query::new())
        {
            Ok(_) => Ok(Some(n.to_string())),
            Err(e) if a.force && e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    });
    Ok(code)
}

fn prune(ctx: &Ctx, a: &PruneArgs) -> anyhow::Result<i32> {
    let warning = "WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue?";
    if !a.force && !super::system::confirm(warning)? {
        return Ok(0);
    }
    let v: Value = ctx
        .client
        .post(
            "/networks/prune",
            &Query::new().opt("filters", filters_json(&a.filter)?),
            None,
        )?
        .json()?;
    let names: Vec<&str> = v
        .get("NetworksDeleted")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !names.is_empty() {
        let mut s = "Deleted Networks:\n".to_string();
        for n in names {
            s.push_str(n);
            s.push('\n');
        }
        out(&s);
    }
    Ok(0)
}
