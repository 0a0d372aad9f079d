//! Downloading one blob into `<downloads>/<hex>`, hashed while it streams.
//!
//! The file keeps what arrived across failures and daemon crashes: the next attempt (or the
//! next pull) hashes what is there and asks for the rest with `Range`, starting over when the
//! registry ignores the range. A blob is only handed on once its size and digest match; a
//! mismatch deletes the file and fails without retrying.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{header, Method, StatusCode};
use http_body_util::BodyExt;
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wharf_image::{Descriptor, Digest};

use crate::client::{registry_error, Repo};
use crate::error::DistributionError;
use crate::progress::Reporter;

/// Bytes between two "Downloading" reports.
const REPORT_EVERY: u64 = 512 << 10;

/// Where blob `d` is downloaded to.
pub(crate) fn download_path(dir: &Path, d: &Digest) -> PathBuf {
    dir.join(d.hex())
}

/// Downloads `desc` to its file in `dir` (resuming what is there), making up to `attempts`
/// tries; returns the path of the complete, verified blob.
pub(crate) async fn download(
    repo: &Repo,
    desc: &Descriptor,
    dir: &Path,
    attempts: usize,
    report: &Reporter,
    id: &str,
) -> Result<PathBuf, DistributionError> {
    let path = download_path(dir, &desc.digest);
    let mut last: Option<DistributionError> = None;
    for attempt in 0..attempts.max(1) {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 * attempt as u64)).await;
            report
                .status(Some(id), format!("Retrying in {} second", 1))
                .await;
        }
        match try_download(repo, desc, &path, report, id).await {
            Ok(()) => return Ok(path),
            Err(
                e @ (DistributionError::DigestMismatch { .. }
                | DistributionError::Registry { .. }
                | DistributionError::Io { .. }),
            ) => {
                if matches!(e, DistributionError::DigestMismatch { .. }) {
                    let _ = tokio::fs::remove_file(&path).await;
                }
                // A 5xx may pass; a 4xx, a bad digest or a local error will not.
                let transient =
                    matches!(&e, DistributionError::Registry { status, .. } if *status >= 500);
                if !transient {
                    return Err(e);
                }
                last = Some(e);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| DistributionError::InvalidManifest("download failed".into())))
}

/// Hashes what the file already holds; returns the hasher and the length.
async fn resume_state(file: &mut tokio::fs::File) -> Result<(Sha256, u64), std::io::Error> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            return Ok((hasher, len));
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
}

async fn try_download(
    repo: &Repo,
    desc: &Descriptor,
    path: &Path,
    report: &Reporter,
    id: &str,
) -> Result<(), DistributionError> {
    let io = |what: &str| DistributionError::io(format!("{what} {}", path.display()));
    let mut file = tokio::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .await
        .map_err(io("open"))?;
    let (mut hasher, mut len) = resume_state(&mut file).await.map_err(io("read"))?;
    if len > desc.size {
        file.set_len(0).await.map_err(io("truncate"))?;
        (hasher, len) = (Sha256::new(), 0);
    }
    if len < desc.size || desc.size == 0 {
        let url = repo.url(&format!("blobs/{}", desc.digest));
        let range = [(header::RANGE, format!("bytes={len}-"))];
        let headers: &[_] = if len > 0 { &range } else { &[] };
        let resp = repo.send(Method::GET, &url, headers).await?;
        match resp.status() {
            StatusCode::PARTIAL_CONTENT if len > 0 => {}
            s if s.is_success() => {
                if len > 0 {
                    // The registry ignored the range: start over.
                    file.set_len(0).await.map_err(io("truncate"))?;
                    (hasher, len) = (Sha256::new(), 0);
                }
            }
            _ => return Err(registry_error(resp, &url).await),
        }
        let mut body = resp.into_body();
        let mut reported = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                DistributionError::Transport(wharf_fetch::FetchError::Request {
                    url: url.clone(),
                    reason: e.to_string(),
                })
            })?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if len + data.len() as u64 > desc.size {
                // More than the manifest promised: a lying registry; do not fill the disk.
                break;
            }
            file.write_all(&data).await.map_err(io("write"))?;
            hasher.update(&data);
            len += data.len() as u64;
            if len - reported >= REPORT_EVERY {
                reported = len;
                report.bytes(id, "Downloading", len, desc.size);
            }
        }
        file.flush().await.map_err(io("write"))?;
    }
    let actual = Digest::from_hex(&hex::encode(hasher.finalize()))
        .expect("sha256 output is 64 lowercase hex characters");
    if actual != desc.digest {
        if len < desc.size {
            return Err(DistributionError::Transport(
                wharf_fetch::FetchError::Request {
                    url: repo.url(&format!("blobs/{}", desc.digest)),
                    reason: format!("connection closed after {len} of {} bytes", desc.size),
                },
            ));
        }
        return Err(DistributionError::DigestMismatch {
            expected: desc.digest.to_string(),
            actual: actual.to_string(),
        });
    }
    file.sync_data().await.map_err(io("fsync"))?;
    Ok(())
}
