//! `docker logs`: reads the json-file log (rotated files first), filters by time and tail,
//! and frames each entry (multiplexed unless the container has a tty); `follow` keeps reading
//! until the container stops.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use wharf_errdefs::ErrorKind;
use wharf_shim_proto::log::LogEntry;
use wharf_shim_proto::stream::{frame_header, STDERR, STDOUT};

use super::ContainerService;
use crate::events::parse_time;
use crate::server::error::ApiError;

/// Options of `GET /containers/{id}/logs`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep streaming.
    pub follow: bool,
    /// Include stdout.
    pub stdout: bool,
    /// Include stderr.
    pub stderr: bool,
    /// Only entries at or after (ns).
    pub since: Option<i64>,
    /// Only entries before (ns).
    pub until: Option<i64>,
    /// Prefix each line with its time.
    pub timestamps: bool,
    /// Only the last N entries.
    pub tail: Option<usize>,
}

impl LogOptions {
    /// Builds options from query values (`tail` = "all" or N; times as Docker accepts them).
    pub fn parse(q: &crate::server::http::Query) -> Result<LogOptions, ApiError> {
        let time = |k: &str| -> Result<Option<i64>, ApiError> {
            match q.get(k).filter(|s| !s.is_empty() && *s != "0") {
                None => Ok(None),
                Some(s) => parse_time(s)
                    .map(Some)
                    .ok_or_else(|| ApiError::invalid(format!("invalid value for {k}: {s:?}"))),
            }
        };
        let tail = match q.get("tail").filter(|s| !s.is_empty() && *s != "all") {
            None => None,
            Some(s) => Some(
                s.parse::<i64>()
                    .map_err(|_| ApiError::invalid(format!("invalid value for tail: {s:?}")))?
                    .max(0) as usize,
            ),
        };
        let o = LogOptions {
            follow: q.bool("follow"),
            stdout: q.bool("stdout"),
            stderr: q.bool("stderr"),
            since: time("since")?,
            until: time("until")?,
            timestamps: q.bool("timestamps"),
            tail,
        };
        if !o.stdout && !o.stderr {
            return Err(ApiError::invalid(
                "Bad parameters: you must choose at least one stream",
            ));
        }
        Ok(o)
    }

    fn wants(&self, e: &LogEntry) -> bool {
        let stream_ok =
            (e.stream == "stderr" && self.stderr) || (e.stream != "stderr" && self.stdout);
        if !stream_ok {
            return false;
        }
        let t = parse_time(&e.time).unwrap_or(0);
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t < u)
    }
}

/// Encodes one entry for the client.
pub fn encode(e: &LogEntry, tty: bool, timestamps: bool) -> Bytes {
    let mut payload = Vec::with_capacity(e.log.len() + 40);
    if timestamps {
        payload.extend_from_slice(e.time.as_bytes());
        payload.push(b' ');
    }
    payload.extend_from_slice(e.log.as_bytes());
    if tty {
        return Bytes::from(payload);
    }
    let stream = if e.stream == "stderr" { STDERR } else { STDOUT };
    let mut out = frame_header(stream, payload.len() as u32).to_vec();
    out.extend_from_slice(&payload);
    Bytes::from(out)
}

/// The log files oldest first: `<path>.N` … `<path>.1`, `<path>`.
fn log_files(path: &Path) -> Vec<PathBuf> {
    let mut rotated: Vec<(u32, PathBuf)> = Vec::new();
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return vec![path.to_path_buf()];
    };
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let f = e.file_name();
            let Some(f) = f.to_str() else { continue };
            if let Some(n) = f
                .strip_prefix(name)
                .and_then(|r| r.strip_prefix('.'))
                .and_then(|n| n.parse().ok())
            {
                rotated.push((n, e.path()));
            }
        }
    }
    rotated.sort_by(|a, b| b.0.cmp(&a.0));
    rotated
        .into_iter()
        .map(|(_, p)| p)
        .chain(std::iter::once(path.to_path_buf()))
        .collect()
}

fn parse_lines(text: &[u8]) -> impl Iterator<Item = LogEntry> + '_ {
    text.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| LogEntry::from_line(l).ok())
}

impl ContainerService {
    /// Starts streaming the logs into `tx`; ends when done (or the client goes away).
    pub fn logs(
        self: &Arc<Self>,
        key: &str,
        opts: LogOptions,
        tx: mpsc::Sender<Bytes>,
    ) -> Result<(), ApiError> {
        let c = self.snapshot(key)?;
        if matches!(c.host_config.log_config.kind.as_str(), "none") {
            return Err(ApiError::new(
                ErrorKind::NotImplemented,
                "configured logging driver does not support reading",
            ));
        }
        let path = self.log_path(&c.id);
        let tty = c.config.tty;
        let me = self.clone();
        let id = c.id.clone();
        tokio::spawn(async move {
            let files = log_files(&path);
            let mut entries: Vec<LogEntry> = Vec::new();
            let mut offset = 0u64;
            for f in &files {
                if let Ok(b) = tokio::fs::read(f).await {
                    if *f == path {
                        // Only whole lines: a half-written last line is read again when following.
                        let end = b
                            .iter()
                            .rposition(|c| *c == b'\n')
                            .map(|i| i + 1)
                            .unwrap_or(0);
                        offset = end as u64;
                        entries.extend(parse_lines(&b[..end]).filter(|e| opts.wants(e)));
                    } else {
                        entries.extend(parse_lines(&b).filter(|e| opts.wants(e)));
                    }
                }
            }
            let skip = opts
                .tail
                .map(|t| entries.len().saturating_sub(t))
                .unwrap_or(0);
            for e in entries.iter().skip(skip) {
                if tx.send(encode(e, tty, opts.timestamps)).await.is_err() {
                    return;
                }
            }
            if !opts.follow {
                return;
            }
            let mut rx = me.watch(&id);
            loop {
                let running = me
                    .snapshot(&id)
                    .map(|c| {
                        c.state.status.is_alive()
                            || c.state.status == crate::state::Status::Restarting
                    })
                    .unwrap_or(false);
                if let Ok(b) = tokio::fs::read(&path).await {
                    if (b.len() as u64) < offset {
                        offset = 0; // rotated under us
                    }
                    let tail = &b[offset as usize..];
                    let end = tail
                        .iter()
                        .rposition(|c| *c == b'\n')
                        .map(|i| i + 1)
                        .unwrap_or(0);
                    for e in parse_lines(&tail[..end]).filter(|e| opts.wants(e)) {
                        if tx.send(encode(&e, tty, opts.timestamps)).await.is_err() {
                            return;
                        }
                    }
                    offset += end as u64;
                }
                if !running
                    || opts
                        .until
                        .is_some_and(|u| chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0) >= u)
                {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    _ = rx.changed() => {}
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(log: &str, stream: &str, time: &str) -> LogEntry {
        LogEntry {
            log: log.into(),
            stream: stream.into(),
            time: time.into(),
        }
    }

    #[test]
    fn framing() {
        let e = entry("hi\n", "stderr", "2026-01-01T00:00:00.000000001Z");
        assert_eq!(
            &encode(&e, false, false)[..],
            b"\x02\x00\x00\x00\x00\x00\x00\x03hi\n"
        );
        assert_eq!(
            &encode(&e, true, true)[..],
            b"2026-01-01T00:00:00.000000001Z hi\n"
        );
    }

    #[test]
    fn options_and_filtering() {
        let q = crate::server::http::Query::parse(Some("stdout=1&tail=2&since=1767225600"));
        let o = LogOptions::parse(&q).expect("ok");
        assert_eq!(o.tail, Some(2));
        assert!(!o.wants(&entry("x", "stderr", "2026-01-01T00:00:01Z")));
        assert!(o.wants(&entry("x", "stdout", "2026-01-01T00:00:01Z")));
        assert!(!o.wants(&entry("x", "stdout", "2025-12-31T23:59:59Z")));
        assert!(LogOptions::parse(&crate::server::http::Query::parse(Some("follow=1"))).is_err());
        assert!(
            LogOptions::parse(&crate::server::http::Query::parse(Some("stdout=1&tail=x"))).is_err()
        );
    }

    #[test]
    fn rotated_files_come_first() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("c-json.log");
        for f in ["c-json.log", "c-json.log.1", "c-json.log.2"] {
            std::fs::write(d.path().join(f), b"").expect("w");
        }
        let names: Vec<String> = log_files(&p)
            .iter()
            .filter_map(|p| p.file_name()?.to_str().map(String::from))
            .collect();
        assert_eq!(names, ["c-json.log.2", "c-json.log.1", "c-json.log"]);
    }
}
