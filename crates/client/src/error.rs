//! The client's error type; API errors carry the daemon's kind and message.

use wharf_errdefs::{Classify, ErrorKind};

/// Everything that can go wrong talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The host string (`-H`, `DOCKER_HOST`) could not be parsed.
    #[error("invalid host {0:?}: expected unix://PATH or tcp://HOST:PORT")]
    InvalidHost(String),
    /// Nobody answered on the socket.
    #[error("Cannot connect to the Docker daemon at {host}. Is the docker daemon running?")]
    Connect {
        /// The host as the user wrote it.
        host: String,
        /// Why the connect failed.
        #[source]
        source: std::io::Error,
    },
    /// The connection broke mid-request.
    #[error("error during connect: {0}")]
    Io(#[from] std::io::Error),
    /// The daemon sent something that is not HTTP/1.1 as we understand it.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The daemon answered with an error status.
    #[error("Error response from daemon: {message}")]
    Api {
        /// HTTP status code.
        status: u16,
        /// The daemon's `message` (or the raw body when it was not JSON).
        message: String,
    },
    /// A response body was not the JSON we expected.
    #[error("invalid JSON from daemon: {0}")]
    Json(#[from] serde_json::Error),
    /// TLS material could not be loaded or the handshake failed.
    #[error("TLS: {0}")]
    Tls(String),
}

impl ClientError {
    /// The daemon's message for an API error, otherwise the full display text.
    pub fn message(&self) -> String {
        match self {
            ClientError::Api { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }
}

impl Classify for ClientError {
    fn kind(&self) -> ErrorKind {
        match self {
            ClientError::InvalidHost(_) => ErrorKind::InvalidArgument,
            ClientError::Connect { .. } => ErrorKind::Unavailable,
            ClientError::Api { status, .. } => ErrorKind::from_http_status(*status),
            ClientError::Io(_) | ClientError::Protocol(_) | ClientError::Json(_) => {
                ErrorKind::Internal
            }
            ClientError::Tls(_) => ErrorKind::InvalidArgument,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_classify_by_status() {
        let e = ClientError::Api {
            status: 404,
            message: "No such container: x".into(),
        };
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(
            e.to_string(),
            "Error response from daemon: No such container: x"
        );
        let e = ClientError::Api {
            status: 409,
            message: "busy".into(),
        };
        assert_eq!(e.kind(), ErrorKind::Conflict);
    }
}
