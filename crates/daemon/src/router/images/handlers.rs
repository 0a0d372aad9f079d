//! Images handlers: the backend is `wharf_image::ImageService`, called on the blocking pool.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::json;
use wharf_api_types::image::{DeleteItem, HistoryItem, ImagePruneResponse, ImageSummary};
use wharf_api_types::{ApiVersion, IdResponse};
use wharf_image::{CommitOptions, Image};

use super::routes::Endpoint;
use crate::router::containers::handlers::ChannelWriter;
use crate::server::error::ApiError;
use crate::server::http::{self as h, parse_json, read_body, ApiResult, Query, MAX_JSON_BODY};
use crate::service::containers::blocking;
use crate::service::containers::lifecycle::WaitCondition;
use crate::state::Store;
use crate::wiring::Daemon;

fn delete_items(items: Vec<wharf_image::DeleteItem>) -> Vec<DeleteItem> {
    items
        .into_iter()
        .map(|i| match i {
            wharf_image::DeleteItem::Untagged(s) => DeleteItem {
                untagged: Some(s),
                deleted: None,
            },
            wharf_image::DeleteItem::Deleted(s) => DeleteItem {
                untagged: None,
                deleted: Some(s),
            },
        })
        .collect()
}

/// Image ids used by containers, with counts.
fn used_images(d: &Daemon) -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    for h in d.containers.store.all() {
        *m.entry(Store::lock(&h).image.clone()).or_insert(0) += 1;
    }
    m
}

fn summary(i: &Image, containers: i64) -> ImageSummary {
    ImageSummary {
        id: i.id.clone(),
        parent_id: i.parent.clone(),
        repo_tags: i.repo_tags.clone(),
        repo_digests: i.repo_digests.clone(),
        created: i.created_unix(),
        size: i.size as i64,
        shared_size: -1,
        virtual_size: i.size as i64,
        labels: i.config.labels.clone().unwrap_or_default(),
        containers,
    }
}

/// Streams a request body into a temp file under the data root (imports and loads can be
/// large; the image service reads them synchronously).
pub(crate) async fn spool(d: &Daemon, body: Incoming) -> Result<std::fs::File, ApiError> {
    let dir = d.config().data_root.join("tmp");
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| ApiError::internal(format!("creating {}: {e}", dir.display())))?;
    let mut f =
        tempfile::tempfile_in(&dir).map_err(|e| ApiError::internal(format!("temp file: {e}")))?;
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::invalid(format!("reading request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            f.write_all(&data)
                .map_err(|e| ApiError::internal(format!("spooling body: {e}")))?;
        }
    }
    use std::io::Seek;
    f.rewind().map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(f)
}

fn stream_line(v: serde_json::Value) -> Bytes {
    let mut b = serde_json::to_vec(&v).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

fn image_event(d: &Daemon, action: &str, id: &str, name: &str) {
    let mut attrs = BTreeMap::new();
    attrs.insert("name".to_string(), name.to_string());
    d.events.publish("image", action, id, attrs);
}

/// Serves an images endpoint.
pub async fn serve(
    d: Arc<Daemon>,
    _v: ApiVersion,
    ep: Endpoint,
    req: Request<Incoming>,
) -> ApiResult {
    let q = Query::parse(req.uri().query());
    let images = d.containers.images().clone();
    match ep {
        Endpoint::List => {
            let f = q.filters()?;
            f.validate(&["dangling", "label", "before", "since", "reference", "until"])
                .map_err(|e| ApiError::from_err(&e))?;
            let used = used_images(&d);
            let list = blocking(move || Ok::<_, wharf_image::ImageError>(images.list())).await?;
            let out: Vec<ImageSummary> = list
                .iter()
                .filter(|i| {
                    f.matches_any("dangling", |v| {
                        (v == "true" || v == "1") == i.repo_tags.is_empty()
                    })
                })
                .filter(|i| f.matches_labels(&i.config.labels.clone().unwrap_or_default()))
                .filter(|i| {
                    f.matches_any("reference", |r| {
                        i.repo_tags
                            .iter()
                            .any(|t| t == r || t.split(':').next() == Some(r))
                    })
                })
                .map(|i| summary(i, used.get(&i.id).copied().unwrap_or(0)))
                .collect();
            h::ok_json(&out)
        }
        Endpoint::Inspect(name) => h::ok_json(&blocking(move || images.resolve(&name)).await?),
        Endpoint::History(name) => {
            let hist = blocking(move || images.history(&name)).await?;
            let out: Vec<HistoryItem> = hist
                .into_iter()
                .map(|e| HistoryItem {
                    id: e.id,
                    created: e.created,
                    created_by: e.created_by,
                    tags: e.tags.unwrap_or_default(),
                    size: e.size as i64,
                    comment: e.comment,
                })
                .collect();
            h::ok_json(&out)
        }
        Endpoint::Tag(name) => {
            let repo = q
                .get("repo")
                .filter(|r| !r.is_empty())
                .ok_or_else(|| {
                    ApiError::invalid("repository name must have at least one component")
                })?
                .to_string();
            let tag = q.get("tag").filter(|t| !t.is_empty()).map(String::from);
            let (r2, t2, n2) = (repo.clone(), tag.clone(), name.clone());
            let i2 = images.clone();
            blocking(move || i2.tag(&n2, &r2, t2.as_deref())).await?;
            let id = blocking(move || images.resolve(&name))
                .await
                .map(|i| i.id)
                .unwrap_or_default();
            image_event(
                &d,
                "tag",
                &id,
                &format!("{repo}:{}", tag.unwrap_or_else(|| "latest".into())),
            );
            h::no_content(StatusCode::CREATED)
        }
        Endpoint::Remove(name) => {
            let used: HashSet<String> = used_images(&d).into_keys().collect();
            let (force, prune) = (q.bool("force"), !q.bool("noprune"));
            let items =
                blocking(move || images.remove(&name, force, prune, &|id: &str| used.contains(id)))
                    .await?;
            for i in &items {
                match i {
                    wharf_image::DeleteItem::Untagged(n) => image_event(&d, "untag", n, n),
                    wharf_image::DeleteItem::Deleted(id) => image_event(&d, "delete", id, id),
                }
            }
            h::ok_json(&delete_items(items))
        }
        Endpoint::Prune => {
            let f = q.filters()?;
            f.validate(&["dangling", "until", "label", "label!"])
                .map_err(|e| ApiError::from_err(&e))?;
            let dangling_only = f
                .get("dangling")
                .first()
                .is_none_or(|v| v == "true" || v == "1");
            let used: HashSet<String> = used_images(&d).into_keys().collect();
            let (items, reclaimed) =
                blocking(move || images.prune(dangling_only, &|id: &str| used.contains(id)))
                    .await?;
            h::ok_json(&ImagePruneResponse {
                images_deleted: Some(delete_items(items)),
                space_reclaimed: reclaimed,
            })
        }
        Endpoint::Create => {
            let Some(src) = q.get("fromSrc") else {
                let auth = req
                    .headers()
                    .get("X-Registry-Auth")
                    .and_then(|v| v.to_str().ok());
                return super::pull::serve(d.clone(), &q, auth).await;
            };
            let src = src.to_string();
            let repo_tag = match (
                q.get("repo").filter(|r| !r.is_empty()),
                q.get("tag").filter(|t| !t.is_empty()),
            ) {
                (Some(r), Some(t)) => Some(format!("{r}:{t}")),
                (Some(r), None) => Some(r.to_string()),
                _ => None,
            };
            let changes: Vec<String> = q.all("changes").to_vec();
            let message = q.get("message").filter(|m| !m.is_empty()).map(String::from);
            let platform = q
                .get("platform")
                .filter(|p| !p.is_empty())
                .map(String::from);
            let img = if src == "-" {
                let mut file = spool(&d, req.into_body()).await?;
                blocking(move || {
                    images.import(
                        &mut file,
                        repo_tag.as_deref(),
                        &changes,
                        message.as_deref(),
                        platform.as_deref(),
                    )
                })
                .await?
            } else {
                // Streams the download; errors (404, unreachable) name the URL.
                blocking(move || {
                    images.import_url(
                        &src,
                        repo_tag.as_deref(),
                        &changes,
                        message.as_deref(),
                        platform.as_deref(),
                    )
                })
                .await?
            };
            image_event(
                &d,
                "import",
                &img.id,
                img.repo_tags.first().map(String::as_str).unwrap_or(&img.id),
            );
            let body = stream_line(json!({"status": img.id}));
            Ok(h::with_type(
                Response::builder().status(StatusCode::OK),
                "application/json",
                h::full(body),
            ))
        }
        Endpoint::Load => {
            let mut file = spool(&d, req.into_body()).await?;
            let mut out = Vec::new();
            // As dockerd: the answer is a 200 JSON stream, and a failed load is a line of it
            // (docker-py raises ImageLoadError from it).
            match blocking(move || images.load(&mut file)).await {
                Ok(lines) => {
                    for l in &lines {
                        image_event(&d, "load", l, l);
                        out.extend_from_slice(&stream_line(json!({"stream": format!("{l}\n")})));
                    }
                }
                Err(e) => out.extend_from_slice(&stream_line(
                    json!({"errorDetail": {"message": e.message}, "error": e.message}),
                )),
            }
            Ok(h::with_type(
                Response::builder().status(StatusCode::OK),
                "application/json",
                h::full(out),
            ))
        }
        Endpoint::Save(name) => save(&d, vec![name]).await,
        Endpoint::SaveMany => save(&d, q.all("names").to_vec()).await,
        Endpoint::Push(name) => {
            let auth = req
                .headers()
                .get("X-Registry-Auth")
                .and_then(|v| v.to_str().ok());
            super::pull::serve_push(d.clone(), &name, &q, auth).await
        }
        Endpoint::Commit => {
            let container = q
                .get("container")
                .ok_or_else(|| ApiError::invalid("container is required"))?;
            let c = d.containers.snapshot(container)?;
            let b = read_body(req.into_body(), MAX_JSON_BODY).await?;
            let config: Option<wharf_image::ContainerConfig> =
                if b.iter().all(u8::is_ascii_whitespace) {
                    None
                } else {
                    let v: serde_json::Value = parse_json(&b, true)?;
                    if v.is_null() {
                        None
                    } else {
                        Some(
                            serde_json::from_value(v)
                                .map_err(|e| ApiError::invalid(format!("invalid JSON: {e}")))?,
                        )
                    }
                };
            let repo_tag = match (
                q.get("repo").filter(|r| !r.is_empty()),
                q.get("tag").filter(|t| !t.is_empty()),
            ) {
                (Some(r), Some(t)) => Some(format!("{r}:{t}")),
                (Some(r), None) => Some(r.to_string()),
                _ => None,
            };
            let mut pause =
                q.bool_or("pause", true) && c.state.status == crate::state::Status::Running;
            if pause {
                if let Err(e) = d.containers.pause(&c.id, true).await {
                    // It is exiting (its shim may be gone already): once the exit is recorded,
                    // commit the stored rw layer as it is, unpaused, as dockerd does.
                    let exited = tokio::time::timeout(
                        Duration::from_secs(10),
                        d.containers.wait(&c.id, WaitCondition::NotRunning),
                    )
                    .await;
                    if !matches!(exited, Ok(Ok(_))) {
                        return Err(e);
                    }
                    pause = false;
                }
            }
            let opts = CommitOptions {
                repo_tag,
                author: q.get("author").filter(|s| !s.is_empty()).map(String::from),
                comment: q.get("comment").filter(|s| !s.is_empty()).map(String::from),
                config,
                changes: q.all("changes").to_vec(),
                pause,
                created_by: None,
            };
            let cid = c.id.clone();
            let res = blocking(move || images.commit(&cid, opts)).await;
            if pause {
                let _ = d.containers.pause(&c.id, false).await;
            }
            let img = res?;
            d.containers.emit(&c, "commit", &[]);
            h::json(StatusCode::CREATED, &IdResponse { id: img.id })
        }
        Endpoint::DiskUsage => {
            let used = used_images(&d);
            let du = blocking(move || images.disk_usage()).await?;
            let images = d.containers.images().clone();
            let list = blocking(move || Ok::<_, wharf_image::ImageError>(images.list())).await?;
            let imgs: Vec<ImageSummary> = list
                .iter()
                .map(|i| {
                    let mut s = summary(i, used.get(&i.id).copied().unwrap_or(0));
                    s.shared_size = du
                        .images
                        .iter()
                        .find(|u| u.id == i.id)
                        .map(|u| u.shared_size as i64)
                        .unwrap_or(0);
                    s
                })
                .collect();
            let containers = d
                .containers
                .list(&crate::service::containers::inspect::ListOptions {
                    all: true,
                    size: true,
                    ..Default::default()
                })
                .await?;
            let volumes = crate::router::volumes::handlers::disk_usage(&d).await?;
            h::ok_json(
                &json!({"LayersSize": du.layers_size, "Images": imgs, "Containers": containers, "Volumes": volumes, "BuildCache": d.builds.df_rows()}),
            )
        }
    }
}

async fn save(d: &Daemon, names: Vec<String>) -> ApiResult {
    if names.is_empty() {
        return Err(ApiError::invalid("no images given"));
    }
    // Resolve first so a missing image is a 404 rather than a truncated tar.
    for n in &names {
        let images = d.containers.images().clone();
        let n = n.clone();
        blocking(move || images.resolve(&n)).await?;
    }
    let images = d.containers.images().clone();
    let (tx, body) = h::channel_body(8);
    tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter(tx);
        if let Err(e) = images.save(&names, &mut w) {
            tracing::warn!("save failed: {e}");
        }
    });
    Ok(h::with_type(
        Response::builder().status(StatusCode::OK),
        "application/x-tar",
        body,
    ))
}
