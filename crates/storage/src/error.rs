//! The storage crate's error type.

use std::io;

use wharf_archive::ArchiveError;
use wharf_errdefs::{Classify, ErrorKind};

/// Failures of the storage drivers.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A layer id that is empty, too long, or not `[A-Za-z0-9][A-Za-z0-9_.-]*`.
    #[error("invalid layer id {0:?}")]
    InvalidId(String),
    /// A driver name other than `overlay2` or `vfs`.
    #[error("unknown storage driver {0:?} (supported: overlay2, vfs)")]
    UnknownDriver(String),
    /// A `--storage-opt` this driver does not understand.
    #[error("unsupported storage option {0:?}")]
    InvalidOption(String),
    /// The layer does not exist.
    #[error("layer {0} not found")]
    NotFound(String),
    /// The layer id is taken.
    #[error("layer {0} already exists")]
    AlreadyExists(String),
    /// The driver cannot work on this host or filesystem.
    #[error("storage driver {driver} is not supported here: {reason}")]
    Unsupported {
        driver: &'static str,
        reason: String,
    },
    /// The lower-layer list does not fit the mount options page.
    #[error("mount options for layer {id} are {len} bytes, over one page: too many layers")]
    TooManyLayers { id: String, len: usize },
    /// Applying or writing a tar failed; hostile archives land here.
    #[error("layer {id}: {source}")]
    Archive {
        id: String,
        #[source]
        source: ArchiveError,
    },
    /// A filesystem or mount operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },
}

impl StorageError {
    pub(crate) fn io(
        op: &'static str,
        path: impl std::fmt::Display,
        source: impl Into<io::Error>,
    ) -> Self {
        StorageError::Io {
            op,
            path: path.to_string(),
            source: source.into(),
        }
    }

    pub(crate) fn archive(id: &str) -> impl FnOnce(ArchiveError) -> StorageError + '_ {
        move |source| StorageError::Archive {
            id: id.to_string(),
            source,
        }
    }
}

/// Adapter for `map_err` on filesystem calls about `p`.
pub(crate) fn io_err<'a>(
    op: &'static str,
    p: &'a std::path::Path,
) -> impl FnOnce(io::Error) -> StorageError + 'a {
    move |e| StorageError::io(op, p.display(), e)
}

impl Classify for StorageError {
    fn kind(&self) -> ErrorKind {
        match self {
            StorageError::InvalidId(_)
            | StorageError::UnknownDriver(_)
            | StorageError::InvalidOption(_)
            | StorageError::TooManyLayers { .. } => ErrorKind::InvalidArgument,
            StorageError::NotFound(_) => ErrorKind::NotFound,
            StorageError::AlreadyExists(_) => ErrorKind::AlreadyExists,
            StorageError::Unsupported { .. } => ErrorKind::Unavailable,
            StorageError::Archive { source, .. } => source.kind(),
            StorageError::Io { .. } => ErrorKind::Internal,
        }
    }
}
