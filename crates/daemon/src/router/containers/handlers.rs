//! Containers and exec handlers: parse the request, call the backend, write the answer.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::io::AsyncWriteExt;
use wharf_api_types::container::{
    ChangeItem, CreateRequest, CreateResponse, PruneResponse, UpdateRequest, UpdateResponse,
};
use wharf_api_types::exec::{ExecConfig, ExecStartConfig};
use wharf_api_types::{ApiVersion, IdResponse};

use super::routes::Endpoint;
use crate::router::hijack::{hijack, stream_type};
use crate::server::error::ApiError;
use crate::server::http::{self as h, parse_json, read_body, ApiResult, Query, MAX_JSON_BODY};
use crate::service::containers::archive::{required_path, stat_header, PutOptions};
use crate::service::containers::attach::{parse_detach_keys, AttachOptions, Duplex, Framing};
use crate::service::containers::inspect::ListOptions;
use crate::service::containers::lifecycle::WaitCondition;
use crate::service::containers::logs::LogOptions;
use crate::service::containers::stats::stats_json;
use crate::service::containers::{blocking, ContainerService};
use crate::wiring::Daemon;

/// Parses the list query.
pub fn parse_list(q: &Query) -> Result<ListOptions, ApiError> {
    let limit = q.int("limit")?.filter(|l| *l > 0).map(|l| l as usize);
    Ok(ListOptions {
        all: q.bool("all"),
        limit,
        size: q.bool("size"),
        filters: q.filters()?,
    })
}

/// Parses `t`/`timeout` (seconds; -1 = wait forever) and `signal`.
pub fn parse_stop(q: &Query) -> Result<(Option<String>, Option<i64>), ApiError> {
    let t = match q.int("t")? {
        Some(t) => Some(t),
        None => q.int("timeout")?,
    };
    Ok((q.get("signal").map(String::from), t))
}

/// Parses `h`/`w` of resize.
pub fn parse_resize(q: &Query) -> Result<(u16, u16), ApiError> {
    let dim = |k: &str| -> Result<u16, ApiError> {
        let v = q.int(k)?.unwrap_or(0);
        u16::try_from(v).map_err(|_| ApiError::invalid(format!("invalid value for {k}: {v}")))
    };
    Ok((dim("h")?, dim("w")?))
}

async fn json_body<T: serde::de::DeserializeOwned + Default>(
    req: Request<Incoming>,
    allow_empty: bool,
) -> Result<T, ApiError> {
    let b = read_body(req.into_body(), MAX_JSON_BODY).await?;
    parse_json(&b, allow_empty)
}

fn no_content() -> ApiResult {
    h::no_content(StatusCode::NO_CONTENT)
}

/// A blocking writer feeding a response body (for export/save running on the blocking pool).
pub struct ChannelWriter(pub tokio::sync::mpsc::Sender<Bytes>);

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Bytes::copy_from_slice(buf))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A blocking reader over a request body (for `cp` uploads extracted on the blocking pool).
pub struct BodyReader {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    cur: Bytes,
}

impl BodyReader {
    /// Starts pumping `body`; the pump stops when the reader is dropped.
    pub fn new(mut body: Incoming) -> Self {
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tokio::spawn(async move {
            while let Some(frame) = body.frame().await {
                let item = match frame.map(|f| f.into_data()) {
                    Ok(Ok(data)) => Ok(data),
                    Ok(Err(_trailers)) => continue,
                    Err(e) => Err(std::io::Error::other(e)),
                };
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    return;
                }
            }
        });
        BodyReader {
            rx,
            cur: Bytes::new(),
        }
    }
}

impl std::io::Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.cur = chunk?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur.split_to(n));
        Ok(n)
    }
}

/// Adds Docker's path stat header to a `cp` response.
fn with_stat(mut r: h::Resp, st: &wharf_archive::PathStat) -> ApiResult {
    let v = http::HeaderValue::from_str(&stat_header(st))
        .map_err(|e| ApiError::internal(format!("stat header: {e}")))?;
    r.headers_mut()
        .insert(wharf_api_types::base64::PATH_STAT_HEADER, v);
    Ok(r)
}

/// Writes the logs so far of the streams `opts` asks for to an attached client (`logs=1`).
async fn replay_logs(
    cs: &Arc<ContainerService>,
    id: &str,
    opts: &AttachOptions,
    client: &mut Box<dyn Duplex>,
) {
    let lo = LogOptions {
        stdout: opts.stdout,
        stderr: opts.stderr,
        ..LogOptions::default()
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    if cs.logs(id, lo, tx).is_err() {
        return; // a driver that cannot be read back: live output only, as dockerd
    }
    // docker-py reads the 101 answer through a buffered reader and then the raw socket, so
    // bytes arriving together with the answer's headers are lost to it; dockerd's first
    // bytes come later, after it set the attach up. Give the client that moment.
    tokio::time::sleep(Duration::from_millis(100)).await;
    while let Some(chunk) = rx.recv().await {
        if client.write_all(&chunk).await.is_err() {
            return;
        }
    }
}

/// Serves a containers/exec endpoint.
pub async fn serve(
    d: Arc<Daemon>,
    v: ApiVersion,
    ep: Endpoint,
    req: Request<Incoming>,
) -> ApiResult {
    let q = Query::parse(req.uri().query());
    let cs: &Arc<ContainerService> = &d.containers;
    match ep {
        Endpoint::Create => {
            let body: CreateRequest = json_body(req, false).await?;
            let (id, warnings) = cs.create(q.get("name"), body).await?;
            h::json(StatusCode::CREATED, &CreateResponse { id, warnings })
        }
        Endpoint::List => h::ok_json(&cs.list(&parse_list(&q)?).await?),
        Endpoint::Inspect(id) => h::ok_json(&cs.inspect(&id, q.bool("size")).await?),
        Endpoint::Start(id) => {
            cs.start(&id).await?;
            no_content()
        }
        Endpoint::Stop(id) => {
            let (sig, t) = parse_stop(&q)?;
            cs.stop(&id, sig.as_deref(), t).await?;
            no_content()
        }
        Endpoint::Restart(id) => {
            let (sig, t) = parse_stop(&q)?;
            cs.restart(&id, sig.as_deref(), t).await?;
            no_content()
        }
        Endpoint::Kill(id) => {
            cs.kill(&id, q.get("signal")).await?;
            no_content()
        }
        Endpoint::Pause(id) => {
            cs.pause(&id, true).await?;
            no_content()
        }
        Endpoint::Unpause(id) => {
            cs.pause(&id, false).await?;
            no_content()
        }
        Endpoint::Rename(id) => {
            let name = q
                .get("name")
                .filter(|n| !n.is_empty())
                .ok_or_else(|| ApiError::invalid("Neither old nor new names may be empty"))?;
            cs.rename(&id, name)?;
            no_content()
        }
        Endpoint::Update(id) => {
            let body: UpdateRequest = json_body(req, false).await?;
            h::ok_json(&UpdateResponse {
                warnings: cs.update_resources(&id, body).await?,
            })
        }
        Endpoint::Remove(id) => {
            if q.bool("link") {
                cs.remove_link(&id)?;
                return no_content();
            }
            cs.remove_with_volumes(&id, q.bool("force"), q.bool("v"))
                .await?;
            no_content()
        }
        Endpoint::Wait(id) => {
            let cond = WaitCondition::parse(q.get("condition"))?;
            // Resolve now so an unknown id is a 404, not a 200 with an error body.
            let id = cs.snapshot(&id)?.id;
            let (tx, body) = h::channel_body(1);
            let cs = cs.clone();
            tokio::spawn(async move {
                let resp = match cs.wait(&id, cond).await {
                    Ok(r) => r,
                    Err(e) => wharf_api_types::container::WaitResponse {
                        status_code: -1,
                        error: Some(wharf_api_types::container::WaitError { message: e.message }),
                    },
                };
                let _ = tx
                    .send(Bytes::from(serde_json::to_vec(&resp).unwrap_or_default()))
                    .await;
            });
            Ok(h::with_type(
                Response::builder().status(StatusCode::OK),
                "application/json",
                body,
            ))
        }
        Endpoint::Logs(id) => {
            let opts = LogOptions::parse(&q)?;
            let tty = cs.snapshot(&id)?.config.tty;
            let (tx, body) = h::channel_body(64);
            cs.logs(&id, opts, tx)?;
            Ok(h::with_type(
                Response::builder().status(StatusCode::OK),
                stream_type(tty, v),
                body,
            ))
        }
        Endpoint::Attach(id) => {
            let c = cs.snapshot(&id)?;
            let opts = AttachOptions {
                stdin: q.bool("stdin"),
                stdout: q.bool("stdout"),
                stderr: q.bool("stderr"),
                detach_keys: parse_detach_keys(q.get("detachKeys").unwrap_or(""))?,
                output: Framing::AsIs,
            };
            let (logs, stream) = (q.bool("logs"), q.bool("stream"));
            if !stream && !logs {
                return Err(ApiError::invalid(
                    "Bad parameters: you must choose at least one stream",
                ));
            }
            let (mut parts, _) = req.into_parts();
            let (resp, client) = hijack(&mut parts, stream_type(c.config.tty, v));
            let cs = cs.clone();
            tokio::spawn(async move {
                let Some(mut client) = client.await else {
                    return;
                };
                if logs {
                    replay_logs(&cs, &c.id, &opts, &mut client).await;
                }
                if !stream {
                    // Logs only: the answer ends with them, running or not.
                    let _ = client.shutdown().await;
                    return;
                }
                if let Err(e) = cs.attach(&c.id, client, opts).await {
                    tracing::debug!("attach: {e}");
                }
            });
            Ok(resp)
        }
        Endpoint::Resize(id) => {
            let (hh, w) = parse_resize(&q)?;
            cs.resize(Some(&id), None, hh, w).await?;
            h::no_content(StatusCode::OK)
        }
        Endpoint::ExecCreate(id) => {
            let body: ExecConfig = json_body(req, false).await?;
            h::json(
                StatusCode::CREATED,
                &IdResponse {
                    id: cs.exec_create(&id, body)?,
                },
            )
        }
        Endpoint::ExecStart(eid) => {
            // An unknown exec is a 404 before the connection is taken over.
            cs.exec_inspect(&eid).await?;
            let (mut parts, body) = req.into_parts();
            let b = read_body(body, MAX_JSON_BODY).await?;
            let start: ExecStartConfig = parse_json(&b, true)?;
            if start.detach {
                cs.exec_start(&eid, true, None, start.tty).await?;
                return h::no_content(StatusCode::OK);
            }
            let (resp, client) = hijack(&mut parts, stream_type(start.tty, v));
            let cs = cs.clone();
            tokio::spawn(async move {
                if let Some(client) = client.await {
                    if let Err(e) = cs.exec_start(&eid, false, Some(client), start.tty).await {
                        tracing::debug!("exec start: {e}");
                    }
                }
            });
            Ok(resp)
        }
        Endpoint::ExecResize(eid) => {
            let (hh, w) = parse_resize(&q)?;
            cs.resize(None, Some(&eid), hh, w).await?;
            h::no_content(StatusCode::OK)
        }
        Endpoint::ExecInspect(eid) => h::ok_json(&cs.exec_inspect(&eid).await?),
        Endpoint::Top(id) => h::ok_json(&cs.top(&id, q.get("ps_args").unwrap_or("")).await?),
        Endpoint::Stats(id) => {
            let c = cs.snapshot(&id)?;
            let stream = q.bool_or("stream", true);
            let one_shot = q.bool("one-shot");
            let (tx, body) = h::channel_body(4);
            let cs = cs.clone();
            let mem_total = u64::try_from(d.host.mem_total).unwrap_or(0);
            tokio::spawn(async move {
                let mut pre: Option<(wharf_cgroups::Stats, u64, String)> = None;
                loop {
                    if pre.is_none() && !stream && !one_shot {
                        // Docker samples twice so CPU percentages have a delta.
                        pre = cs.sample(&c.id).await.ok();
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    let Ok(now) = cs.sample(&c.id).await else {
                        return;
                    };
                    let mut v = stats_json(
                        &c.id,
                        &c.name,
                        (&now.0, now.1, &now.2),
                        pre.as_ref().map(|p| (&p.0, p.1, p.2.as_str())),
                        mem_total,
                    );
                    if let Some(n) = cs.network_stats(&c.id).await {
                        v["networks"] = n;
                    }
                    let mut line = serde_json::to_vec(&v).unwrap_or_default();
                    line.push(b'\n');
                    if tx.send(Bytes::from(line)).await.is_err() || !stream {
                        return;
                    }
                    pre = Some(now);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
            Ok(h::with_type(
                Response::builder().status(StatusCode::OK),
                "application/json",
                body,
            ))
        }
        Endpoint::Changes(id) => {
            let c = cs.snapshot(&id)?;
            let images = cs.images().clone();
            let changes = blocking(move || images.changes(&c.id)).await?;
            let items: Vec<ChangeItem> = changes
                .into_iter()
                .map(|ch| ChangeItem {
                    path: ch.path,
                    kind: ch.kind as u8,
                })
                .collect();
            h::ok_json(&items)
        }
        Endpoint::Export(id) => {
            let c = cs.snapshot(&id)?;
            let images = cs.images().clone();
            let (tx, body) = h::channel_body(8);
            tokio::task::spawn_blocking(move || {
                let mut w = ChannelWriter(tx);
                if let Err(e) = images.export(&c.id, &mut w) {
                    tracing::warn!(id = c.id, "export failed: {e}");
                }
            });
            Ok(h::with_type(
                Response::builder().status(StatusCode::OK),
                "application/x-tar",
                body,
            ))
        }
        Endpoint::Prune => {
            let f = q.filters()?;
            f.validate(&["until", "label", "label!"])
                .map_err(|e| ApiError::from_err(&e))?;
            let mut deleted = Vec::new();
            let mut reclaimed = 0u64;
            for c in cs
                .list(&ListOptions {
                    all: true,
                    size: true,
                    filters: wharf_api_types::Filters::default(),
                    limit: None,
                })
                .await?
            {
                if c.state != "exited" && c.state != "created" && c.state != "dead" {
                    continue;
                }
                if !f.matches_labels(&c.labels) {
                    continue;
                }
                if cs.remove(&c.id, false).await.is_ok() {
                    reclaimed += c.size_rw.unwrap_or(0).max(0) as u64;
                    deleted.push(c.id);
                }
            }
            h::ok_json(&PruneResponse {
                containers_deleted: Some(deleted),
                space_reclaimed: reclaimed,
            })
        }
        Endpoint::ArchiveStat(id) => {
            let st = cs.archive_stat(&id, required_path(q.get("path"))?).await?;
            with_stat(Response::new(h::empty()), &st)
        }
        Endpoint::ArchiveGet(id) => {
            let (tx, body) = h::channel_body(8);
            let out = std::io::BufWriter::with_capacity(64 << 10, ChannelWriter(tx));
            let st = cs
                .archive_get(&id, required_path(q.get("path"))?, out)
                .await?;
            with_stat(
                h::with_type(
                    Response::builder().status(StatusCode::OK),
                    "application/x-tar",
                    body,
                ),
                &st,
            )
        }
        Endpoint::ArchivePut(id) => {
            let opts = PutOptions {
                path: required_path(q.get("path"))?.to_string(),
                no_overwrite_dir_non_dir: q.bool("noOverwriteDirNonDir"),
                copy_uid_gid: q.bool("copyUIDGID"),
            };
            cs.archive_put(&id, opts, BodyReader::new(req.into_body()))
                .await?;
            h::no_content(StatusCode::OK)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsers() {
        let l = parse_list(&Query::parse(Some(
            "all=1&limit=2&size=true&filters=%7B%22status%22%3A%5B%22exited%22%5D%7D",
        )))
        .expect("list");
        assert!(l.all && l.size);
        assert_eq!(l.limit, Some(2));
        assert_eq!(l.filters.get("status"), ["exited"]);
        assert!(parse_list(&Query::parse(Some("limit=x"))).is_err());
        assert_eq!(
            parse_stop(&Query::parse(Some("t=5&signal=SIGINT"))).expect("stop"),
            (Some("SIGINT".into()), Some(5))
        );
        assert_eq!(
            parse_stop(&Query::parse(Some("timeout=3")))
                .expect("stop")
                .1,
            Some(3)
        );
        assert_eq!(
            parse_resize(&Query::parse(Some("h=24&w=80"))).expect("resize"),
            (24, 80)
        );
        assert!(parse_resize(&Query::parse(Some("h=-1&w=80"))).is_err());
        assert!(parse_resize(&Query::parse(Some("h=99999&w=80"))).is_err());
    }
}
