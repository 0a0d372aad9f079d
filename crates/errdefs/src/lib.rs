//! The error taxonomy every Wharf crate classifies its errors into.
//!
//! Libraries keep their own `thiserror` enums and implement [`Classify`]; the API edge maps an
//! [`ErrorKind`] to an HTTP status in exactly one place, and the client maps it back. Callers
//! branch on the kind, never on the message.
#![forbid(unsafe_code)]

/// What kind of failure an error is, independent of which crate raised it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request was malformed or a parameter is invalid (HTTP 400).
    InvalidArgument,
    /// The caller's credentials were refused, as by a registry login (HTTP 401).
    Unauthorized,
    /// The caller is not allowed to do this (HTTP 403).
    Forbidden,
    /// The named object does not exist (HTTP 404).
    NotFound,
    /// The object exists but is in a state that forbids the operation, or the name is taken (HTTP 409).
    Conflict,
    /// The object already exists (HTTP 409).
    AlreadyExists,
    /// The operation is not implemented or not supported on this host (HTTP 501).
    NotImplemented,
    /// A dependency (runtime, shim, kernel facility) is not available right now (HTTP 503).
    Unavailable,
    /// Nothing changed because nothing needed to (HTTP 304).
    NotModified,
    /// The request is larger than the daemon accepts (HTTP 413).
    TooLarge,
    /// A real fault inside Wharf or the system (HTTP 500).
    Internal,
}

impl ErrorKind {
    /// The HTTP status Docker uses for this kind of error.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::InvalidArgument => 400,
            ErrorKind::Unauthorized => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict | ErrorKind::AlreadyExists => 409,
            ErrorKind::NotImplemented => 501,
            ErrorKind::Unavailable => 503,
            ErrorKind::NotModified => 304,
            ErrorKind::TooLarge => 413,
            ErrorKind::Internal => 500,
        }
    }

    /// The kind a client should assume for an HTTP status it received.
    pub fn from_http_status(status: u16) -> ErrorKind {
        match status {
            400 => ErrorKind::InvalidArgument,
            401 => ErrorKind::Unauthorized,
            403 => ErrorKind::Forbidden,
            404 => ErrorKind::NotFound,
            409 => ErrorKind::Conflict,
            501 => ErrorKind::NotImplemented,
            503 => ErrorKind::Unavailable,
            304 => ErrorKind::NotModified,
            413 => ErrorKind::TooLarge,
            _ => ErrorKind::Internal,
        }
    }
}

/// Implemented by every crate's error type so the API edge can pick a status without string matching.
pub trait Classify {
    /// The kind of this error.
    fn kind(&self) -> ErrorKind;
}

impl Classify for std::io::Error {
    fn kind(&self) -> ErrorKind {
        match std::io::Error::kind(self) {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            std::io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
            std::io::ErrorKind::PermissionDenied => ErrorKind::Forbidden,
            std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData => {
                ErrorKind::InvalidArgument
            }
            _ => ErrorKind::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_for_distinct_kinds() {
        for kind in [
            ErrorKind::InvalidArgument,
            ErrorKind::Unauthorized,
            ErrorKind::Forbidden,
            ErrorKind::NotFound,
            ErrorKind::Conflict,
            ErrorKind::NotImplemented,
            ErrorKind::Unavailable,
            ErrorKind::Internal,
        ] {
            assert_eq!(ErrorKind::from_http_status(kind.http_status()), kind);
        }
        assert_eq!(ErrorKind::AlreadyExists.http_status(), 409);
    }

    #[test]
    fn io_errors_classify() {
        let e = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert_eq!(Classify::kind(&e), ErrorKind::NotFound);
    }
}
