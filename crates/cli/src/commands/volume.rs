//! `volume create|ls|inspect|rm|prune`.

use serde_json::{json, Map, Value};
use wharf_client::Query;

use super::{enc, filters_json, for_each, out, Ctx, StatusError};
use crate::cli::{
    VolumeCreateArgs, VolumeInspectArgs, VolumeLsArgs, VolumePruneArgs, VolumeRmArgs,
};
use crate::format::{self, render_list, resolve_format, volume as fv, ListContext};

fn key_values(flags: &[String]) -> Map<String, Value> {
    flags
        .iter()
        .map(|f| {
            let (k, v) = f.split_once('=').unwrap_or((f, ""));
            (k.to_string(), json!(v))
        })
        .collect()
}

/// `volume create`
pub(crate) fn create(ctx: &Ctx, a: &VolumeCreateArgs) -> anyhow::Result<i32> {
    let name = match (&a.name, &a.volume) {
        (Some(n), Some(v)) if n != v => {
            return Err(StatusError::exit(
                1,
                "conflicting options: cannot specify a volume-name through both --name and as a positional arg",
            ))
        }
        (n, v) => n.clone().or_else(|| v.clone()).unwrap_or_default(),
    };
    let body = json!({
        "Name": name,
        "Driver": a.driver,
        "DriverOpts": key_values(&a.opt),
        "Labels": key_values(&a.label),
    });
    let v: Value = ctx
        .client
        .post("/volumes/create", &Query::new(), Some(&body))?
        .json()?;
    out(&format!(
        "{}\n",
        v.get("Name").and_then(Value::as_str).unwrap_or_default()
    ));
    Ok(0)
}

/// `volume ls`
pub(crate) fn ls(ctx: &Ctx, a: &VolumeLsArgs) -> anyhow::Result<i32> {
    let format = if a.quiet {
        "{{.Name}}".to_string()
    } else {
        resolve_format(
            a.format.as_deref().or(ctx.config.volumes_format.as_deref()),
            fv::DEFAULT_FORMAT,
        )
    };
    let q = Query::new().opt("filters", filters_json(&a.filter)?);
    let v: Value = ctx.client.get_json("/volumes", &q)?;
    let mut list: Vec<&Value> = v
        .get("Volumes")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    list.sort_by_key(|v| {
        v.get("Name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    });
    let (rows, methods): (Vec<_>, Vec<_>) = list.into_iter().map(fv::context).unzip();
    let lc = ListContext {
        rows,
        methods,
        header: fv::HEADER,
        root_type: fv::ROOT_TYPE,
    };
    out(&render_list(&format, &lc)?);
    Ok(0)
}

/// `volume inspect`
pub(crate) fn inspect(ctx: &Ctx, a: &VolumeInspectArgs) -> anyhow::Result<i32> {
    let mut raws = Vec::new();
    let mut errors = Vec::new();
    for n in &a.volumes {
        match ctx
            .client
            .request(
                "GET",
                &format!("/volumes/{}", enc(n)),
                &Query::new(),
                wharf_client::RequestBody::Empty,
            )
            .and_then(|r| r.bytes())
        {
            Ok(r) => raws.push(r),
            Err(e) => errors.push(e.to_string()),
        }
    }
    super::print_inspected(&raws, a.format.as_deref(), errors)
}

/// `volume rm`
pub(crate) fn rm(ctx: &Ctx, a: &VolumeRmArgs) -> anyhow::Result<i32> {
    let q = Query::new().flag("force", a.force);
    Ok(for_each(&a.volumes, |n| {
        ctx.client.delete(&format!("/volumes/{}", enc(n)), &q)?;
        Ok(Some(n.to_string()))
    }))
}

/// `volume prune`
pub(crate) fn prune(ctx: &Ctx, a: &VolumePruneArgs) -> anyhow::Result<i32> {
    let warning = if a.all {
        "WARNING! This will remove all local volumes not used by at least one container.\nAre you sure you want to continue?"
    } else {
        "WARNING! This will remove anonymous local volumes not used by at least one container.\nAre you sure you want to continue?"
    };
    if !a.force && !super::system::confirm(warning)? {
        return Ok(0);
    }
    let mut filters = a.filter.clone();
    if a.all {
        filters.push("all=true".into());
    }
    let v: Value = ctx
        .client
        .post(
            "/volumes/prune",
            &Query::new().opt("filters", filters_json(&filters)?),
            None,
        )?
        .json()?;
    out(&format::prune::prune_report(&[&v]));
    Ok(0)
}
