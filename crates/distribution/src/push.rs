//! A push: each layer's tar is gzip-compressed (deterministically, so a repeated push finds
//! the same digests already there), checked with HEAD, mounted from another repository of
//! the registry that holds it when one is known, else uploaded (in one PUT, or in 8 MiB
//! PATCHes when larger), then the config and a Docker schema 2 manifest; the manifest's
//! digest becomes a `RepoDigest`.

use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Method, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncReadExt;
use tokio::sync::Semaphore;
use wharf_image::{Digest, Reference};

use crate::client::{full, read_small, registry_error, Body, Repo};
use crate::error::DistributionError;
use crate::progress::Reporter;
use crate::sources::BlobSources;
use crate::{LayerStore, Registry};

/// Media types of what a push writes (Docker's, which every registry accepts).
const MT_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const MT_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const MT_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Layers larger than this go up in chunks of this size.
const CHUNK: u64 = 8 << 20;
/// Prefix of compressed layers being pushed in the downloads dir (removed at start).
pub(crate) const PUSH_TEMP_PREFIX: &str = "push-";

static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// What a finished push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The manifest's digest.
    pub digest: Digest,
    /// The manifest's size in bytes.
    pub size: usize,
}

/// A compressed blob ready to upload.
struct Blob {
    digest: Digest,
    size: u64,
    path: PathBuf,
}

impl Drop for Blob {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Registry {
    /// Pushes the local images `references` (tags of one repository; `:latest` when one has
    /// none) to their registry, one after the other as dockerd pushes `--all-tags`.
    pub async fn push(
        &self,
        store: Arc<dyn LayerStore>,
        references: &[Reference],
        creds: Option<&crate::Credentials>,
        report: &Reporter,
    ) -> Result<Vec<Pushed>, DistributionError> {
        let Some(first) = references.first() else {
            return Err(DistributionError::InvalidArgument("no tag to push".into()));
        };
        report
            .status(
                None,
                format!("The push refers to repository [{}]", first.name()),
            )
            .await;
        let mut last = None;
        for endpoint in self
            .config
            .endpoints(first.domain())
            .into_iter()
            .filter(|e| !e.mirror)
        {
            let repo = Repo {
                endpoint,
                path: first.path().to_string(),
                actions: "pull,push",
                mount_from: None,
                creds: creds.cloned(),
                cache: self.cache.clone(),
            };
            // Learn the challenge (and whether the endpoint answers at all) before any upload.
            let base = format!("{}/v2/", repo.endpoint.base);
            match repo.send(Method::GET, &base, &[]).await {
                Err(e @ DistributionError::Transport(_)) => {
                    tracing::debug!(url = %base, error = %e, "push endpoint unreachable");
                    last = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED => {
                    return Err(registry_error(resp, &base).await);
                }
                Ok(_) => {}
            }
            let mut out = Vec::new();
            for reference in references {
                let reference = reference.clone().with_default_tag();
                let tag = reference
                    .tag()
                    .unwrap_or(wharf_imageref::DEFAULT_TAG)
                    .to_string();
                let full = reference.full();
                let s = store.clone();
                let (config, diff_ids) =
                    tokio::task::spawn_blocking(move || s.image_for_push(&full))
                        .await
                        .map_err(|e| DistributionError::InvalidManifest(format!("push: {e}")))??;
                out.push(
                    self.push_to(
                        &repo,
                        store.clone(),
                        &reference,
                        &tag,
                        config,
                        diff_ids,
                        report,
                    )
                    .await?,
                );
            }
            return Ok(out);
        }
        Err(last.unwrap_or_else(|| self.config.no_endpoint(first.domain())))
    }

    #[allow(clippy::too_many_arguments)]
    async fn push_to(
        &self,
        repo: &Repo,
        store: Arc<dyn LayerStore>,
        reference: &Reference,
        tag: &str,
        config: Vec<u8>,
        diff_ids: Vec<Digest>,
        report: &Reporter,
    ) -> Result<Pushed, DistributionError> {
        tokio::fs::create_dir_all(&self.downloads)
            .await
            .map_err(DistributionError::io(format!(
                "create {}",
                self.downloads.display()
            )))?;
        for d in diff_ids.iter().rev() {
            report.status(Some(&short(d)), "Preparing").await;
        }
        let sem = Arc::new(Semaphore::new(self.config.max_concurrent_uploads.max(1)));
        let mut tasks = Vec::new();
        for d in &diff_ids {
            let (repo, store, sem, report, dir, sources) = (
                repo.clone(),
                store.clone(),
                sem.clone(),
                report.clone(),
                self.downloads.clone(),
                self.sources.clone(),
            );
            let d = d.clone();
            tasks.push(tokio::spawn(async move {
                let _permit = sem.acquire_owned().await;
                push_layer(&repo, store, &d, &dir, &sources, &report).await
            }));
        }
        let mut layers = Vec::new();
        let mut failed = None;
        for t in tasks {
            match t.await {
                Ok(Ok(desc)) => layers.push(desc),
                Ok(Err(e)) => {
                    failed.get_or_insert(e);
                }
                Err(e) => {
                    failed.get_or_insert(DistributionError::InvalidManifest(format!(
                        "upload task: {e}"
                    )));
                }
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        let config_digest = wharf_image::digest_of(&config);
        let config_size = config.len();
        if !blob_exists(repo, &config_digest).await? {
            if let Mount::Upload(url) = mount(repo, &config_digest, &self.sources).await? {
                put_blob(
                    repo,
                    url,
                    &config_digest,
                    full(Bytes::from(config.clone())),
                    config_size as u64,
                )
                .await?;
            }
        }
        let (sources, key, d) = (self.sources.clone(), repo.key(), config_digest.clone());
        let _ = tokio::task::spawn_blocking(move || sources.add(&key, &[d])).await;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": {"mediaType": MT_CONFIG, "size": config_size, "digest": config_digest.to_string()},
            "layers": layers,
        });
        let bytes = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| DistributionError::InvalidManifest(e.to_string()))?;
        let digest = wharf_image::digest_of(&bytes);
        let size = bytes.len();
        let url = repo.url(&format!("manifests/{tag}"));
        let resp = repo
            .send_body(
                Method::PUT,
                &url,
                &[(header::CONTENT_TYPE, MT_MANIFEST.to_string())],
                full(Bytes::from(bytes)),
            )
            .await?;
        if !resp.status().is_success() {
            return Err(registry_error(resp, &url).await);
        }
        let _ = read_small(resp.into_body()).await;
        // Record where the image now is, as dockerd does after a push.
        if let Ok(r) = Reference::parse(&format!("{}@{digest}", reference.name())) {
            let s = store.clone();
            let cfg = config.clone();
            let _ = tokio::task::spawn_blocking(move || s.register(&cfg, &[r])).await;
        }
        report
            .status(None, format!("{tag}: digest: {digest} size: {size}"))
            .await;
        report
            .aux(json!({"Tag": tag, "Digest": digest.to_string(), "Size": size}))
            .await;
        Ok(Pushed { digest, size })
    }
}

/// Compresses, checks and uploads (or mounts) one layer; returns its manifest descriptor.
/// A layer pulled as gzip is first offered by the digest it came with, so a push back to
/// where it came from needs no compression at all.
async fn push_layer(
    repo: &Repo,
    store: Arc<dyn LayerStore>,
    diff_id: &Digest,
    dir: &Path,
    sources: &Arc<BlobSources>,
    report: &Reporter,
) -> Result<serde_json::Value, DistributionError> {
    let id = short(diff_id);
    if let Some((known, size)) = sources.compressed(diff_id) {
        let done = if blob_exists(repo, &known).await? {
            report.status(Some(&id), "Layer already exists").await;
            true
        } else {
            match try_mount(repo, &known, sources).await? {
                Ok(from) => {
                    report
                        .status(Some(&id), format!("Mounted from {from}"))
                        .await;
                    true
                }
                Err(session) => {
                    if let Some(url) = session {
                        cancel_upload(repo, &url).await;
                    }
                    false
                }
            }
        };
        if done {
            remember(sources, repo, &known).await;
            return Ok(json!({"mediaType": MT_LAYER, "size": size, "digest": known.to_string()}));
        }
    }
    let (d, dir2) = (diff_id.clone(), dir.to_path_buf());
    let blob = tokio::task::spawn_blocking(move || compress(store.as_ref(), &d, &dir2))
        .await
        .map_err(|e| DistributionError::InvalidManifest(format!("compressing: {e}")))??;
    if blob_exists(repo, &blob.digest).await? {
        report.status(Some(&id), "Layer already exists").await;
    } else {
        match mount(repo, &blob.digest, sources).await? {
            Mount::Mounted(from) => {
                report
                    .status(Some(&id), format!("Mounted from {from}"))
                    .await;
            }
            Mount::Upload(url) => {
                upload_file(repo, url, &blob, report, &id).await?;
                report.status(Some(&id), "Pushed").await;
            }
        }
    }
    remember(sources, repo, &blob.digest).await;
    Ok(json!({"mediaType": MT_LAYER, "size": blob.size, "digest": blob.digest.to_string()}))
}

/// Records that `d` is now in `repo`; an fsync'd file write, so off the async workers.
async fn remember(sources: &Arc<BlobSources>, repo: &Repo, d: &Digest) {
    let (sources, key, d) = (sources.clone(), repo.key(), d.clone());
    let _ = tokio::task::spawn_blocking(move || sources.add(&key, &[d])).await;
}

/// What a mount attempt left to do.
enum Mount {
    /// The registry linked the blob from this repository (path) into the target.
    Mounted(String),
    /// Not mounted: upload to this session.
    Upload(String),
}

/// Mounts `d` if it can, else opens an upload session for it.
async fn mount(repo: &Repo, d: &Digest, sources: &BlobSources) -> Result<Mount, DistributionError> {
    Ok(match try_mount(repo, d, sources).await? {
        Ok(from) => Mount::Mounted(from),
        Err(Some(url)) => Mount::Upload(url),
        Err(None) => Mount::Upload(start_upload(repo).await?),
    })
}

/// Asks the registry to mount `d` from another repository on the same host that it was
/// pulled from or pushed to. `Ok(from)` when mounted; else the upload session a registry
/// that could not mount opened instead, if any.
async fn try_mount(
    repo: &Repo,
    d: &Digest,
    sources: &BlobSources,
) -> Result<Result<String, Option<String>>, DistributionError> {
    let host = format!("{}/", repo.endpoint.host);
    let from = sources
        .repos(d)
        .into_iter()
        .filter_map(|r| r.strip_prefix(&host).map(str::to_string))
        .find(|path| *path != repo.path);
    let Some(from) = from else {
        return Ok(Err(None));
    };
    let url = repo.url(&format!("blobs/uploads/?mount={d}&from={from}"));
    let with_source = Repo {
        mount_from: Some(from.clone()),
        ..repo.clone()
    };
    let resp = with_source.send(Method::POST, &url, &[]).await?;
    match resp.status() {
        StatusCode::CREATED => {
            let _ = read_small(resp.into_body()).await;
            Ok(Ok(from))
        }
        StatusCode::ACCEPTED => Ok(Err(Some(location(repo, resp, &url).await?))),
        _ => {
            let _ = read_small(resp.into_body()).await;
            Ok(Err(None))
        }
    }
}

/// Drops an upload session nothing will be sent to (best effort: the registry expires it
/// anyway).
async fn cancel_upload(repo: &Repo, url: &str) {
    if let Ok(resp) = repo.send(Method::DELETE, url, &[]).await {
        let _ = read_small(resp.into_body()).await;
    }
}

/// gzip of the layer tar into a temp file, hashed on the way.
fn compress(
    store: &dyn LayerStore,
    diff_id: &Digest,
    dir: &Path,
) -> Result<Blob, DistributionError> {
    let path = dir.join(format!(
        "{PUSH_TEMP_PREFIX}{}-{}-{}",
        diff_id.hex(),
        std::process::id(),
        TEMP_SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let io = |what: &str| DistributionError::io(format!("{what} {}", path.display()));
    let tar = store.layer_tar(diff_id)?;
    let out = std::fs::File::create(&path).map_err(io("create"))?;
    let mut blob = Blob {
        digest: diff_id.clone(),
        size: 0,
        path: path.clone(),
    };
    let mut hashing = HashingWriter {
        inner: std::io::BufWriter::with_capacity(1 << 20, out),
        hasher: Sha256::new(),
        size: 0,
    };
    {
        let mut gz = flate2::write::GzEncoder::new(&mut hashing, flate2::Compression::fast());
        std::io::copy(&mut BufReader::with_capacity(1 << 20, tar), &mut gz)
            .map_err(io("compress into"))?;
        gz.finish().map_err(io("compress into"))?;
    }
    hashing.inner.flush().map_err(io("write"))?;
    blob.size = hashing.size;
    blob.digest = Digest::from_hex(&hex::encode(hashing.hasher.finalize()))
        .expect("sha256 output is 64 lowercase hex characters");
    Ok(blob)
}

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A file as a streamed request body, reporting "Pushing" progress.
async fn file_body(
    path: &Path,
    size: u64,
    report: Reporter,
    id: String,
) -> Result<Body, DistributionError> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(DistributionError::io(format!("open {}", path.display())))?;
    let stream = futures_util::stream::unfold((file, 0u64), move |(mut f, sent)| {
        let (report, id) = (report.clone(), id.clone());
        async move {
            let mut buf = vec![0u8; 1 << 20];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    let sent = sent + n as u64;
                    report.bytes(&id, "Pushing", sent, size);
                    Some((Ok(Frame::data(Bytes::from(buf))), (f, sent)))
                }
                Err(e) => Some((Err(e), (f, sent))),
            }
        }
    });
    Ok(StreamBody::new(stream).boxed())
}

async fn blob_exists(repo: &Repo, d: &Digest) -> Result<bool, DistributionError> {
    let url = repo.url(&format!("blobs/{d}"));
    let resp = repo.send(Method::HEAD, &url, &[]).await?;
    match resp.status() {
        s if s.is_success() => Ok(true),
        StatusCode::NOT_FOUND => Ok(false),
        _ => Err(registry_error(resp, &url).await),
    }
}

/// Opens an upload session; returns its URL.
async fn start_upload(repo: &Repo) -> Result<String, DistributionError> {
    let start = repo.url("blobs/uploads/");
    let resp = repo.send(Method::POST, &start, &[]).await?;
    if resp.status() != StatusCode::ACCEPTED {
        return Err(registry_error(resp, &start).await);
    }
    location(repo, resp, &start).await
}

/// The absolute URL in an upload answer's `Location`.
async fn location(
    repo: &Repo,
    resp: http::Response<hyper::body::Incoming>,
    url: &str,
) -> Result<String, DistributionError> {
    let loc = resp
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| DistributionError::InvalidManifest(format!("{url}: no upload Location")))?
        .to_string();
    let _ = read_small(resp.into_body()).await;
    Ok(if loc.starts_with('/') {
        format!("{}{loc}", repo.endpoint.base)
    } else {
        loc
    })
}

/// Uploads a compressed layer to the session at `url`: in one PUT when it fits a chunk, else
/// in [`CHUNK`]-sized PATCHes and a closing PUT, so a large layer never rides on one request.
async fn upload_file(
    repo: &Repo,
    mut url: String,
    blob: &Blob,
    report: &Reporter,
    id: &str,
) -> Result<(), DistributionError> {
    if blob.size <= CHUNK {
        let body = file_body(&blob.path, blob.size, report.clone(), id.to_string()).await?;
        return put_blob(repo, url, &blob.digest, body, blob.size).await;
    }
    let io = |what: &str| DistributionError::io(format!("{what} {}", blob.path.display()));
    let mut file = tokio::fs::File::open(&blob.path)
        .await
        .map_err(io("open"))?;
    let mut sent = 0u64;
    while sent < blob.size {
        let len = CHUNK.min(blob.size - sent);
        let mut buf = vec![0u8; len as usize];
        file.read_exact(&mut buf).await.map_err(io("read"))?;
        let end = sent + len - 1;
        let resp = repo
            .send_body(
                Method::PATCH,
                &url,
                &[
                    (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                    (header::CONTENT_RANGE, format!("{sent}-{end}")),
                    (header::CONTENT_LENGTH, len.to_string()),
                ],
                full(Bytes::from(buf)),
            )
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(registry_error(resp, &url).await);
        }
        url = location(repo, resp, &url).await?;
        sent += len;
        report.bytes(id, "Pushing", sent, blob.size);
    }
    put_blob(repo, url, &blob.digest, full(Bytes::new()), 0).await
}

/// Closes the upload session at `url` with the last `body` (`size` bytes), naming `d`.
async fn put_blob(
    repo: &Repo,
    mut url: String,
    d: &Digest,
    body: Body,
    size: u64,
) -> Result<(), DistributionError> {
    url.push(if url.contains('?') { '&' } else { '?' });
    url.push_str(&format!("digest={d}"));
    let resp = repo
        .send_body(
            Method::PUT,
            &url,
            &[
                (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                (header::CONTENT_LENGTH, size.to_string()),
            ],
            body,
        )
        .await?;
    if !resp.status().is_success() {
        return Err(registry_error(resp, &url).await);
    }
    let _ = read_small(resp.into_body()).await;
    Ok(())
}

fn short(d: &Digest) -> String {
    d.hex()[..12].to_string()
}
