//! The one place that turns an error into Docker's status code and `{"message": ...}` body.

use std::fmt;

use http::StatusCode;
use wharf_errdefs::{Classify, ErrorKind};

/// An error on its way to the client: a classification and a one-line message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// Picks the status.
    pub kind: ErrorKind,
    /// Goes into the body.
    pub message: String,
}

impl ApiError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
        }
    }

    /// A 400.
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::new(ErrorKind::InvalidArgument, message)
    }

    /// A 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(ErrorKind::NotFound, message)
    }

    /// A 409.
    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError::new(ErrorKind::Conflict, message)
    }

    /// A 500.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(ErrorKind::Internal, message)
    }

    /// Any classified error.
    pub fn from_err<E: Classify + fmt::Display + ?Sized>(e: &E) -> Self {
        ApiError::new(e.kind(), e.to_string())
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

impl Classify for ApiError {
    fn kind(&self) -> ErrorKind {
        self.kind
    }
}

/// The status code for a kind of error. Branch on kinds only: do not add type checks here.
pub fn status_for(kind: ErrorKind) -> StatusCode {
    StatusCode::from_u16(kind.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_docker_statuses() {
        assert_eq!(
            status_for(ErrorKind::InvalidArgument),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(status_for(ErrorKind::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(status_for(ErrorKind::Conflict), StatusCode::CONFLICT);
        assert_eq!(status_for(ErrorKind::AlreadyExists), StatusCode::CONFLICT);
        assert_eq!(status_for(ErrorKind::NotModified), StatusCode::NOT_MODIFIED);
        assert_eq!(
            status_for(ErrorKind::Internal),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn io_errors_keep_their_class() {
        let e = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert_eq!(ApiError::from_err(&e).kind, ErrorKind::NotFound);
    }
}
