//! Typed progress events of a pull; the daemon renders them as Docker's JSON messages.

use tokio::sync::mpsc;

/// One progress message: a status line, per layer when `id` is set, with byte counts while
/// data moves ("Downloading").
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// The layer's short digest, or the tag for "Pulling from"; `None` for whole-pull lines.
    pub id: Option<String>,
    /// "Pulling fs layer", "Downloading", "Pull complete", "Digest: …", …
    pub status: String,
    /// (bytes done, bytes in all) while downloading.
    pub detail: Option<(u64, u64)>,
    /// Structured data for the client (`aux`), with no status line.
    pub aux: Option<serde_json::Value>,
}

/// Where a pull reports to; reporting never blocks the pull on a slow reader for byte
/// counts (those are dropped when the channel is full), status lines wait for room.
#[derive(Debug, Clone, Default)]
pub struct Reporter {
    tx: Option<mpsc::Sender<Progress>>,
}

impl Reporter {
    /// Reports into `tx`.
    pub fn new(tx: mpsc::Sender<Progress>) -> Reporter {
        Reporter { tx: Some(tx) }
    }

    /// Reports nowhere (background pulls, `FROM` of a build).
    pub fn silent() -> Reporter {
        Reporter { tx: None }
    }

    /// A status line; a gone reader does not stop the pull.
    pub async fn status(&self, id: Option<&str>, status: impl Into<String>) {
        if let Some(tx) = &self.tx {
            let _ = tx
                .send(Progress {
                    id: id.map(str::to_string),
                    status: status.into(),
                    detail: None,
                    aux: None,
                })
                .await;
        }
    }

    /// An `aux` message (a push's tag, digest and size).
    pub async fn aux(&self, value: serde_json::Value) {
        if let Some(tx) = &self.tx {
            let _ = tx
                .send(Progress {
                    id: None,
                    status: String::new(),
                    detail: None,
                    aux: Some(value),
                })
                .await;
        }
    }

    /// Byte progress of a layer; dropped when the reader lags.
    pub fn bytes(&self, id: &str, status: &str, current: u64, total: u64) {
        if let Some(tx) = &self.tx {
            let _ = tx.try_send(Progress {
                id: Some(id.to_string()),
                status: status.to_string(),
                detail: Some((current, total)),
                aux: None,
            });
        }
    }
}
