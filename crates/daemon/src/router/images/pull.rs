//! `POST /images/create?fromImage=…`: a registry pull, streamed as Docker's JSON progress.
//!
//! The reference is resolved (manifest and config fetched) before the response starts, so
//! "manifest unknown", "pull access denied" and bad input get their HTTP status; after that,
//! errors arrive in the stream as `{"errorDetail":…,"error":…}` as dockerd sends them.

use std::sync::Arc;

use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::json;
use wharf_distribution::{Credentials, Platform, Progress, Reporter};
use wharf_image::{Digest, Reference};

use crate::server::error::ApiError;
use crate::server::http::{self as h, ApiResult, Query};
use crate::wiring::Daemon;

/// Progress messages buffered between the pull and a slow client.
const PROGRESS_QUEUE: usize = 256;

/// What a pull request asks for, parsed and checked.
#[derive(Debug, PartialEq)]
pub struct PullRequest {
    /// Without tag or digest when `all_tags`.
    pub reference: Reference,
    pub platform: Option<Platform>,
    /// No tag asked for: every tag of the repository (`pull --all-tags`).
    pub all_tags: bool,
}

/// Parses `fromImage`, `tag` (a tag or a digest) and `platform`.
pub fn parse_pull(q: &Query) -> Result<PullRequest, ApiError> {
    let image = q.get("fromImage").unwrap_or_default();
    let tag = q.get("tag").unwrap_or_default();
    let invalid = |e: &dyn std::fmt::Display| ApiError::invalid(e.to_string());
    let base = Reference::parse(image).map_err(|e| invalid(&e))?;
    let all_tags = tag.is_empty() && base.tag().is_none() && base.digest().is_none();
    let reference = if tag.is_empty() {
        base
    } else if Digest::parse(tag).is_ok() {
        Reference::parse(&format!("{}@{tag}", base.name())).map_err(|e| invalid(&e))?
    } else {
        Reference::with_repo_tag(&base.name(), Some(tag)).map_err(|e| invalid(&e))?
    };
    let platform = match q.get("platform").filter(|p| !p.is_empty()) {
        Some(p) => Some(Platform::parse(p).map_err(|e| invalid(&e))?),
        None => None,
    };
    Ok(PullRequest {
        reference,
        platform,
        all_tags,
    })
}

/// Serves a pull: resolve (or list the tags), then stream the progress of downloading and
/// applying layers.
pub async fn serve(d: Arc<Daemon>, q: &Query, auth_header: Option<&str>) -> ApiResult {
    let req = parse_pull(q)?;
    let creds = auth_header.and_then(Credentials::from_header);
    let images = d.containers.images().clone();
    let registry = d.registry.clone();
    let name = req.reference.familiar();
    let (ptx, prx) = tokio::sync::mpsc::channel::<Progress>(PROGRESS_QUEUE);
    let pull = if req.all_tags {
        let tags = registry
            .tags(&req.reference, creds.as_ref())
            .await
            .map_err(|e| ApiError::from_err(&e))?;
        tokio::spawn(async move {
            let report = Reporter::new(ptx);
            registry
                .pull_all_tags(
                    images,
                    &req.reference,
                    &tags,
                    req.platform.as_ref(),
                    creds.as_ref(),
                    &report,
                )
                .await
                .map(|_| ())
        })
    } else {
        let resolved = registry
            .resolve(&req.reference, req.platform.as_ref(), creds.as_ref())
            .await
            .map_err(|e| ApiError::from_err(&e))?;
        tokio::spawn(async move {
            registry
                .pull(images, resolved, &Reporter::new(ptx))
                .await
                .map(|_| ())
        })
    };
    stream(d, prx, pull, "pull", name)
}

/// Streams progress as dockerd's JSON messages until `task` ends; its error becomes the last
/// message, its success an image event named `action`.
fn stream(
    d: Arc<Daemon>,
    mut prx: tokio::sync::mpsc::Receiver<Progress>,
    task: tokio::task::JoinHandle<Result<(), wharf_distribution::DistributionError>>,
    action: &'static str,
    name: String,
) -> ApiResult {
    let (tx, body) = h::channel_body(16);
    tokio::spawn(async move {
        while let Some(p) = prx.recv().await {
            // A client gone mid-transfer does not stop it (dockerd finishes it too).
            let _ = tx.send(line(&render(&p))).await;
        }
        let msg = match task.await {
            Ok(Ok(())) => {
                let mut attrs = std::collections::BTreeMap::new();
                attrs.insert("name".to_string(), name.clone());
                d.events.publish("image", action, &name, attrs);
                tracing::info!(image = %name, action, "done");
                return;
            }
            Ok(Err(e)) => e.to_string(),
            Err(e) => format!("{action} task failed: {e}"),
        };
        let _ = tx
            .send(line(
                &json!({"errorDetail": {"message": msg}, "error": msg}),
            ))
            .await;
    });
    Ok(h::with_type(
        Response::builder().status(StatusCode::OK),
        "application/json",
        body,
    ))
}

/// Serves `POST /images/{name}/push?tag=…`: the image must exist locally; progress streams.
/// Neither a tag in the name nor `tag` pushes every local tag of the repository.
pub async fn serve_push(
    d: Arc<Daemon>,
    name: &str,
    q: &Query,
    auth_header: Option<&str>,
) -> ApiResult {
    let invalid = |e: &dyn std::fmt::Display| ApiError::invalid(e.to_string());
    let base = Reference::parse(name).map_err(|e| invalid(&e))?;
    let images = d.containers.images().clone();
    let references = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) => vec![Reference::with_repo_tag(&base.name(), Some(t)).map_err(|e| invalid(&e))?],
        None if base.tag().is_some() => vec![base.clone()],
        None => local_tags(&images, &base),
    };
    if references.is_empty()
        || references
            .iter()
            .any(|r| images.resolve(&r.full()).is_err())
    {
        return Err(ApiError::not_found(format!(
            "An image does not exist locally with the tag: {}",
            base.familiar_name()
        )));
    }
    let creds = auth_header.and_then(Credentials::from_header);
    let (ptx, prx) = tokio::sync::mpsc::channel::<Progress>(PROGRESS_QUEUE);
    let registry = d.registry.clone();
    let shown = references
        .first()
        .map(Reference::familiar)
        .unwrap_or_default();
    let push = tokio::spawn(async move {
        registry
            .push(images, &references, creds.as_ref(), &Reporter::new(ptx))
            .await
            .map(|_| ())
    });
    stream(d, prx, push, "push", shown)
}

/// The local tags of `repo`'s repository, sorted.
fn local_tags(images: &wharf_image::ImageService, repo: &Reference) -> Vec<Reference> {
    let name = repo.name();
    let mut out: Vec<Reference> = images
        .list()
        .iter()
        .flat_map(|i| i.repo_tags.iter())
        .filter_map(|t| Reference::parse(t).ok())
        .filter(|r| r.name() == name && r.tag().is_some())
        .collect();
    out.sort_by_key(Reference::full);
    out.dedup_by_key(|r| r.full());
    out
}

fn line(v: &serde_json::Value) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

/// One progress event as dockerd's `jsonmessage`.
pub fn render(p: &Progress) -> serde_json::Value {
    if let Some(aux) = &p.aux {
        return json!({"progressDetail": {}, "aux": aux});
    }
    let mut v = json!({"status": p.status});
    if let Some(id) = &p.id {
        v["id"] = json!(id);
        v["progressDetail"] = json!({});
    }
    if let Some((current, total)) = p.detail {
        v["progressDetail"] = json!({"current": current, "total": total});
        v["progress"] = json!(bar(current, total));
    }
    v
}

/// The text bar old clients print: `[=====>    ]  1.5MB/3MB`.
fn bar(current: u64, total: u64) -> String {
    const WIDTH: u64 = 50;
    let filled = (current.min(total) * WIDTH).checked_div(total).unwrap_or(0);
    let mut s = String::from("[");
    for i in 0..WIDTH {
        s.push(match i.cmp(&filled) {
            std::cmp::Ordering::Less => '=',
            std::cmp::Ordering::Equal => '>',
            std::cmp::Ordering::Greater => ' ',
        });
    }
    format!("{s}] {:>8}/{}", human(current), human(total))
}

/// Decimal sizes with four significant digits, as Docker's `units.HumanSize`.
fn human(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    let digits = if v >= 100.0 {
        1
    } else if v >= 10.0 {
        2
    } else {
        3
    };
    let s = format!("{v:.digits$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s}{}", units[i])
}

#[cfg(test)]
mod tests {
    use super::*;
    use wharf_errdefs::ErrorKind;

    fn q(s: &str) -> Query {
        Query::parse(Some(s))
    }

    #[test]
    fn references_and_platforms_parse() {
        let r = parse_pull(&q("fromImage=alpine&tag=3.19")).unwrap();
        assert_eq!(r.reference.full(), "docker.io/library/alpine:3.19");
        let r = parse_pull(&q("fromImage=127.0.0.1:5000/x/y:1")).unwrap();
        assert_eq!(r.reference.full(), "127.0.0.1:5000/x/y:1");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = parse_pull(&q(&format!("fromImage=alpine&tag={d}"))).unwrap();
        assert_eq!(r.reference.digest().map(|x| x.to_string()), Some(d));
        let r = parse_pull(&q("fromImage=alpine&tag=latest&platform=linux/arm64")).unwrap();
        assert_eq!(r.platform.unwrap().to_string(), "linux/arm64/v8");
        let all = parse_pull(&q("fromImage=alpine")).unwrap();
        assert!(all.all_tags);
        assert_eq!(all.reference.full(), "docker.io/library/alpine");
        assert!(!parse_pull(&q("fromImage=alpine&tag=1")).unwrap().all_tags);
        for bad in [
            "fromImage=UPPER&tag=x",
            "fromImage=a&tag=bad!tag",
            "fromImage=a&tag=1&platform=linux//",
        ] {
            assert_eq!(
                parse_pull(&q(bad)).unwrap_err().kind,
                ErrorKind::InvalidArgument,
                "{bad}"
            );
        }
    }

    #[test]
    fn progress_renders_like_dockerd() {
        let p = Progress {
            id: Some("abc".into()),
            status: "Downloading".into(),
            detail: Some((1_500_000, 3_000_000)),
            aux: None,
        };
        let v = render(&p);
        assert_eq!(
            v["progressDetail"],
            json!({"current": 1_500_000, "total": 3_000_000})
        );
        assert!(v["progress"].as_str().unwrap().ends_with("1.5MB/3MB"));
        let v = render(&Progress {
            id: None,
            status: "Digest: x".into(),
            detail: None,
            aux: None,
        });
        assert_eq!(v, json!({"status": "Digest: x"}));
        assert_eq!(human(512), "512B");
        assert_eq!(human(3_624_000), "3.624MB");
    }
}
