//! The image service's error type.

use wharf_errdefs::{Classify, ErrorKind};

/// Everything an image operation can fail with; [`Classify`] picks the HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// No image matches the reference (Docker's exact wording).
    #[error("No such image: {0}")]
    NotFound(String),
    /// No read-write layer exists for this container.
    #[error("no read-write layer for container {0}")]
    NoRwLayer(String),
    /// The operation conflicts with the store's state (image in use, ambiguous prefix, ...).
    #[error("{0}")]
    Conflict(String),
    /// The caller's input is invalid (bad reference, bad `--change`, malformed archive).
    #[error("{0}")]
    InvalidArgument(String),
    /// A reference or digest failed to parse.
    #[error(transparent)]
    Reference(#[from] wharf_imageref::RefError),
    /// A blob's content does not match its digest.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// Which object was being verified.
        what: String,
        /// The digest the metadata promised.
        expected: String,
        /// The digest of the bytes we got.
        actual: String,
    },
    /// Something the archive asks for that Wharf does not support.
    #[error("not supported: {0}")]
    NotSupported(String),
    /// The storage driver failed.
    #[error(transparent)]
    Storage(#[from] wharf_storage::StorageError),
    /// Layer tar handling failed (hostile or corrupt tar is InvalidArgument there).
    #[error(transparent)]
    Archive(#[from] wharf_archive::ArchiveError),
    /// Downloading an import from a URL failed.
    #[error(transparent)]
    Fetch(#[from] wharf_fetch::FetchError),
    /// JSON (manifest, config, metadata) could not be parsed.
    #[error("invalid JSON in {what}: {source}")]
    Json {
        /// Which document.
        what: String,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// A filesystem operation on the store failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing, with the path.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl ImageError {
    /// Wraps an I/O error with what we were doing.
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ImageError {
        let context = context.into();
        move |source| ImageError::Io { context, source }
    }

    /// Wraps a JSON error with the document's name.
    pub(crate) fn json(what: impl Into<String>) -> impl FnOnce(serde_json::Error) -> ImageError {
        let what = what.into();
        move |source| ImageError::Json { what, source }
    }
}

impl Classify for ImageError {
    fn kind(&self) -> ErrorKind {
        match self {
            ImageError::NotFound(_) | ImageError::NoRwLayer(_) => ErrorKind::NotFound,
            ImageError::Conflict(_) => ErrorKind::Conflict,
            ImageError::InvalidArgument(_)
            | ImageError::Reference(_)
            | ImageError::DigestMismatch { .. }
            | ImageError::Json { .. } => ErrorKind::InvalidArgument,
            ImageError::NotSupported(_) => ErrorKind::NotImplemented,
            ImageError::Storage(e) => e.kind(),
            ImageError::Archive(e) => e.kind(),
            ImageError::Fetch(e) => e.kind(),
            ImageError::Io { source, .. } => match source.kind() {
                // A short or corrupt input stream is the caller's archive, not our fault.
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData => {
                    ErrorKind::InvalidArgument
                }
                _ => ErrorKind::Internal,
            },
        }
    }
}
