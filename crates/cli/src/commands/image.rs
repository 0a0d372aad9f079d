//! Image commands: list, pull, remove, tag, save/load/import, history, prune.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use wharf_client::{Query, RequestBody};

use super::{enc, filters_json, for_each, out, Ctx, StatusError};
use crate::cli::*;
use crate::format::{self, image as fi, render_list, resolve_format, truncate_id, ListContext};

/// `images` / `image ls`
pub(crate) fn images(ctx: &Ctx, a: &ImagesArgs) -> anyhow::Result<i32> {
    let default = if a.digests {
        fi::DIGESTS_FORMAT
    } else {
        fi::DEFAULT_FORMAT
    };
    let format = if a.quiet {
        "{{.ID}}".to_string()
    } else {
        resolve_format(
            a.format.as_deref().or(ctx.config.images_format.as_deref()),
            default,
        )
    };
    let mut filters = a.filter.clone();
    if let Some(r) = &a.reference {
        filters.push(format!("reference={r}"));
    }
    let q = Query::new()
        .flag("all", a.all)
        .opt("filters", filters_json(&filters)?);
    let list: Vec<Value> = ctx.client.get_json("/images/json", &q)?;
    let now = SystemTime::now();
    let (rows, methods): (Vec<_>, Vec<_>) = list
        .iter()
        .flat_map(|i| fi::contexts(i, !a.no_trunc, now))
        .unzip();
    let lc = ListContext {
        rows,
        methods,
        header: fi::HEADER,
        root_type: fi::ROOT_TYPE,
    };
    out(&render_list(&format, &lc)?);
    Ok(0)
}

/// Pulls an image, printing docker-style progress lines unless quiet.
pub(crate) fn pull_image(
    ctx: &Ctx,
    reference: &str,
    platform: Option<&str>,
    quiet: bool,
) -> anyhow::Result<()> {
    let (name, tag) = if reference.contains('@') {
        (reference.to_string(), None)
    } else {
        let (r, t) = fi::split_tag(reference);
        (r.to_string(), Some(t.to_string()))
    };
    request_pull(ctx, name, tag, platform, quiet)
}

/// `POST /images/create` for `name` and `tag` (every tag when `None` and `name` has no
/// digest), with the stored credentials, printing the progress.
fn request_pull(
    ctx: &Ctx,
    name: String,
    tag: Option<String>,
    platform: Option<&str>,
    quiet: bool,
) -> anyhow::Result<()> {
    let q = Query::new()
        .set("fromImage", name.clone())
        .opt("tag", tag)
        .opt("platform", platform.map(str::to_string));
    let auth = registry_auth(ctx, &name)?;
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("X-Registry-Auth", a)])
        .unwrap_or_default();
    let resp =
        ctx.client
            .request_with("POST", "/images/create", &q, &headers, RequestBody::Empty)?;
    show_progress(resp, quiet)
}

/// Prints a pull or push progress stream on stdout as docker does without a terminal: each
/// message as `id: status progress`; `aux` messages are not shown; an `error` message ends it
/// with exit status 1.
fn show_progress(resp: wharf_client::Response, quiet: bool) -> anyhow::Result<()> {
    let mut text = String::new();
    for msg in resp.json_stream() {
        let msg = msg?;
        if let Some(e) = msg.get("error").and_then(Value::as_str) {
            return Err(StatusError::exit(1, e.to_string()));
        }
        if quiet || msg.get("aux").is_some_and(|a| !a.is_null()) {
            continue;
        }
        let field = |k: &str| msg.get(k).and_then(Value::as_str).unwrap_or_default();
        if !field("id").is_empty() {
            text.push_str(&format!("{}: ", field("id")));
        }
        text.push_str(field("status"));
        if !field("progress").is_empty() {
            text.push_str(&format!(" {}", field("progress")));
        }
        text.push('\n');
        // Flushed per message so a long pull shows as it goes.
        out(&text);
        text.clear();
    }
    Ok(())
}

/// The `X-Registry-Auth` value for the registry of `image`, from the credential store the
/// docker CLI would use (config file or helper); none when nothing is stored.
pub(crate) fn registry_auth(ctx: &Ctx, image: &str) -> anyhow::Result<Option<String>> {
    let server = crate::credentials::registry_of(image);
    Ok(crate::credentials::get(&ctx.config, &server)?.map(|e| e.header()))
}

/// Whether `image` names a tag or digest, not just a repository.
fn names_tag(image: &str) -> bool {
    image.contains('@') || fi::split_tag(image).0 != image
}

/// docker's refusal of `-a` with a tag.
const TAG_WITH_ALL: &str = "tag can't be used with --all-tags/-a";

/// `push`
pub(crate) fn push(ctx: &Ctx, a: &PushArgs) -> anyhow::Result<i32> {
    if a.all_tags && names_tag(&a.image) {
        return Err(StatusError::exit(1, TAG_WITH_ALL));
    }
    let (name, tag) = fi::split_tag(&a.image);
    if !a.all_tags && !names_tag(&a.image) && !a.quiet {
        out("Using default tag: latest\n");
    }
    let q = Query::new().opt("tag", (!a.all_tags).then(|| tag.to_string()));
    let auth = registry_auth(ctx, name)?;
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("X-Registry-Auth", a)])
        .unwrap_or_default();
    let resp = ctx.client.request_with(
        "POST",
        &format!("/images/{}/push", enc(name)),
        &q,
        &headers,
        RequestBody::Empty,
    )?;
    show_progress(resp, a.quiet)?;
    if a.quiet {
        out(&format!("{}\n", a.image));
    }
    Ok(0)
}

/// `pull`
pub(crate) fn pull(ctx: &Ctx, a: &PullArgs) -> anyhow::Result<i32> {
    if a.all_tags {
        if names_tag(&a.image) {
            return Err(StatusError::exit(1, TAG_WITH_ALL));
        }
        request_pull(ctx, a.image.clone(), None, a.platform.as_deref(), a.quiet)?;
        out(&format!("{}\n", a.image));
        return Ok(0);
    }
    if !names_tag(&a.image) && !a.quiet {
        out("Using default tag: latest\n");
    }
    pull_image(ctx, &a.image, a.platform.as_deref(), a.quiet)?;
    let r = if names_tag(&a.image) {
        a.image.clone()
    } else {
        format!("{}:latest", a.image)
    };
    out(&format!("{r}\n"));
    Ok(0)
}

/// `rmi` / `image rm`
pub(crate) fn rmi(ctx: &Ctx, a: &RmiArgs) -> anyhow::Result<i32> {
    let q = Query::new()
        .flag("force", a.force)
        .flag("noprune", a.no_prune);
    Ok(for_each(&a.images, |n| {
        let v: Vec<Value> = ctx
            .client
            .delete(&format!("/images/{}", enc(n)), &q)?
            .json()?;
        let lines: Vec<String> = v
            .iter()
            .flat_map(|item| {
                let mut l = Vec::new();
                if let Some(u) = item.get("Untagged").and_then(Value::as_str) {
                    l.push(format!("Untagged: {u}"));
                }
                if let Some(d) = item.get("Deleted").and_then(Value::as_str) {
                    l.push(format!("Deleted: {d}"));
                }
                l
            })
            .collect();
        Ok((!lines.is_empty()).then(|| lines.join("\n")))
    }))
}

/// `tag`
pub(crate) fn tag(ctx: &Ctx, a: &TagArgs) -> anyhow::Result<i32> {
    let (repo, tag) = fi::split_tag(&a.target);
    ctx.client.post(
        &format!("/images/{}/tag", enc(&a.source)),
        &Query::new().set("repo", repo).set("tag", tag),
        None,
    )?;
    Ok(0)
}

/// `save`
pub(crate) fn save(ctx: &Ctx, a: &SaveArgs) -> anyhow::Result<i32> {
    let mut q = Query::new();
    for n in &a.images {
        q = q.set("names", n.clone());
    }
    let resp = ctx
        .client
        .request("GET", "/images/get", &q, RequestBody::Empty)?;
    super::container::body_to_output(resp.body, a.output.as_deref(), "save")?;
    Ok(0)
}

fn print_progress_stream(resp: wharf_client::Response, quiet: bool) -> anyhow::Result<()> {
    for msg in resp.json_stream() {
        let msg = msg?;
        if let Some(e) = msg.get("error").and_then(Value::as_str) {
            return Err(StatusError::exit(1, e.to_string()));
        }
        if let Some(s) = msg.get("stream").and_then(Value::as_str) {
            if !quiet {
                out(s);
            }
        } else if let Some(s) = msg.get("status").and_then(Value::as_str) {
            if !quiet {
                out(&format!("{s}\n"));
            }
        }
    }
    Ok(())
}

/// `load`
pub(crate) fn load(ctx: &Ctx, a: &LoadArgs) -> anyhow::Result<i32> {
    let q = Query::new().flag("quiet", a.quiet);
    let resp = match &a.input {
        Some(path) => {
            let mut f = std::fs::File::open(path)
                .map_err(|e| StatusError::exit(1, format!("open {path}: {e}")))?;
            ctx.client.request(
                "POST",
                "/images/load",
                &q,
                RequestBody::Stream {
                    content_type: "application/x-tar",
                    reader: &mut f,
                },
            )?
        }
        None => {
            if crate::tty::is_tty(0) {
                return Err(StatusError::exit(
                    1,
                    "requested load from stdin, but stdin is empty",
                ));
            }
            let mut stdin = std::io::stdin().lock();
            ctx.client.request(
                "POST",
                "/images/load",
                &q,
                RequestBody::Stream {
                    content_type: "application/x-tar",
                    reader: &mut stdin,
                },
            )?
        }
    };
    print_progress_stream(resp, false)?;
    Ok(0)
}

/// `import`
pub(crate) fn import(ctx: &Ctx, a: &ImportArgs) -> anyhow::Result<i32> {
    let (repo, tag) = match a.reference.as_deref().map(fi::split_tag) {
        Some((r, t)) => (Some(r.to_string()), Some(t.to_string())),
        None => (None, None),
    };
    // Like docker's CLI: the daemon downloads http(s) sources itself.
    let is_url = a.source.starts_with("http://") || a.source.starts_with("https://");
    let mut q = Query::new()
        .set("fromSrc", if is_url { a.source.as_str() } else { "-" })
        .opt("repo", repo)
        .opt("tag", tag)
        .opt("message", a.message.clone())
        .opt("platform", a.platform.clone());
    for c in &a.change {
        q = q.set("changes", c.clone());
    }
    let resp = if is_url {
        ctx.client
            .request("POST", "/images/create", &q, RequestBody::Empty)?
    } else if a.source == "-" {
        let mut stdin = std::io::stdin().lock();
        ctx.client.request(
            "POST",
            "/images/create",
            &q,
            RequestBody::Stream {
                content_type: "application/x-tar",
                reader: &mut stdin,
            },
        )?
    } else {
        let mut f = std::fs::File::open(&a.source)
            .map_err(|e| StatusError::exit(1, format!("open {}: {e}", a.source)))?;
        ctx.client.request(
            "POST",
            "/images/create",
            &q,
            RequestBody::Stream {
                content_type: "application/x-tar",
                reader: &mut f,
            },
        )?
    };
    print_progress_stream(resp, false)?;
    Ok(0)
}

/// `history`
pub(crate) fn history(ctx: &Ctx, a: &HistoryArgs) -> anyhow::Result<i32> {
    const DEFAULT: &str =
        "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";
    const HEADER: &[(&str, &str)] = &[
        ("ID", "IMAGE"),
        ("CreatedSince", "CREATED"),
        ("CreatedAt", "CREATED AT"),
        ("CreatedBy", "CREATED BY"),
        ("Size", "SIZE"),
        ("Comment", "COMMENT"),
    ];
    let list: Vec<Value> = ctx
        .client
        .get_json(&format!("/images/{}/history", enc(&a.image)), &Query::new())?;
    let now = SystemTime::now();
    let rows: Vec<Value> = list
        .iter()
        .map(|h| {
            let id = h.get("Id").and_then(Value::as_str).unwrap_or("<missing>");
            let created = h.get("Created").and_then(Value::as_i64).unwrap_or(0);
            let t = UNIX_EPOCH + Duration::from_secs(u64::try_from(created).unwrap_or(0));
            let by = h.get("CreatedBy").and_then(Value::as_str).unwrap_or_default().replace('\t', " ");
            let size = h.get("Size").and_then(Value::as_f64).unwrap_or(0.0);
            json!({
                "ID": if id == "<missing>" || a.no_trunc { id.to_string() } else { truncate_id(id) },
                "CreatedSince": if a.human { format!("{} ago", format::units::human_duration(now.duration_since(t).unwrap_or_default())) } else { format::container::go_time(created) },
                "CreatedAt": format::container::go_time(created),
                "CreatedBy": if a.no_trunc { by } else { format::ellipsis(&by, 45) },
                "Size": if a.human { format::units::human_size_prec(size, 3) } else { (size as i64).to_string() },
                "Comment": h.get("Comment").and_then(Value::as_str).unwrap_or_default(),
            })
        })
        .collect();
    let format = if a.quiet {
        "{{.ID}}".to_string()
    } else {
        resolve_format(a.format.as_deref(), DEFAULT)
    };
    let methods = rows.iter().map(|_| serde_json::Map::new()).collect();
    let lc = ListContext {
        rows,
        methods,
        header: HEADER,
        root_type: "*formatter.historyContext",
    };
    out(&render_list(&format, &lc)?);
    Ok(0)
}

/// `image prune`
pub(crate) fn prune(ctx: &Ctx, a: &ImagePruneArgs) -> anyhow::Result<i32> {
    let warning = if a.all {
        "WARNING! This will remove all images without at least one container associated to them.\nAre you sure you want to continue?"
    } else {
        "WARNING! This will remove all dangling images.\nAre you sure you want to continue?"
    };
    if !a.prune.force && !super::system::confirm(warning)? {
        return Ok(0);
    }
    let mut filters = a.prune.filter.clone();
    if !a.all {
        filters.push("dangling=true".into());
    }
    let v: Value = ctx
        .client
        .post(
            "/images/prune",
            &Query::new().opt("filters", filters_json(&filters)?),
            None,
        )?
        .json()?;
    out(&format::prune::prune_report(&[&v]));
    Ok(0)
}
