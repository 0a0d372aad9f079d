use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use oci_spec::runtime::LinuxResources;
use serde_json::{json, Map, Value};
use wharf_libcontainer::Container;

use crate::args::UpdateArgs;

/// The resources to apply: the `-r` file, with individual flags layered on top.
fn resources(a: &UpdateArgs) -> Result<LinuxResources> {
    let mut v: Value = match &a.resources {
        Some(p) => {
            let mut data = String::new();
            if p == Path::new("-") {
                std::io::stdin().read_to_string(&mut data)?;
            } else {
                data =
                    std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?;
            }
            serde_json::from_str(&data).context("parse resources JSON")?
        }
        None => json!({}),
    };
    let obj = v
        .as_object_mut()
        .context("resources must be a JSON object")?;
    let mut set = |section: &str, key: &str, val: Option<Value>| {
        if let Some(val) = val {
            let s = obj
                .entry(section)
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(s) = s.as_object_mut() {
                s.insert(key.to_string(), val);
            }
        }
    };
    set("memory", "limit", a.memory.map(Value::from));
    set(
        "memory",
        "reservation",
        a.memory_reservation.map(Value::from),
    );
    set("memory", "swap", a.memory_swap.map(Value::from));
    set("cpu", "shares", a.cpu_shares.map(Value::from));
    set("cpu", "quota", a.cpu_quota.map(Value::from));
    set("cpu", "period", a.cpu_period.map(Value::from));
    set("cpu", "cpus", a.cpuset_cpus.clone().map(Value::from));
    set("cpu", "mems", a.cpuset_mems.clone().map(Value::from));
    set("pids", "limit", a.pids_limit.map(Value::from));
    serde_json::from_value(v).context("invalid resources")
}

pub fn run(root: &Path, a: &UpdateArgs) -> Result<()> {
    let r = resources(a)?;
    Container::load(root, &a.id)?
        .update(&r)
        .with_context(|| format!("update container {}", a.id))
}
