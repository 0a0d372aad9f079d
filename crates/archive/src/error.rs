//! The archive crate's error type.

use std::io;

use wharf_errdefs::{Classify, ErrorKind};

/// Everything that can go wrong reading, writing or applying a tar.
///
/// Hostile or malformed input is always [`ErrorKind::InvalidArgument`] and names the offending
/// path, so the API can tell the user which entry was refused.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// An entry name or link target is absolute-escaping, contains `..` past the root, or is empty.
    #[error("invalid path {path:?} in archive: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    /// The tar-bomb guard tripped.
    #[error("archive has more than {limit} entries (tar bomb guard)")]
    TooManyEntries { limit: u64 },
    /// A file whose apparent size (holes included) is above the extraction's bound.
    #[error("entry {path:?} declares {size} bytes, above the {limit}-byte limit on one file")]
    TooLarge { path: String, size: u64, limit: u64 },
    /// A device node in an archive applied without `allow_devices`.
    #[error("device node {path:?} refused: device nodes are not allowed here")]
    DeviceRefused { path: String },
    /// A tar entry type Wharf does not handle.
    #[error("entry {path:?} has unsupported tar type {kind}")]
    UnsupportedEntry { path: String, kind: String },
    /// The tar stream itself is corrupt or truncated.
    #[error("malformed archive: {0}")]
    Malformed(#[source] io::Error),
    /// A path asked for inside a root does not exist.
    #[error("path {0:?} not found")]
    NotFound(String),
    /// The kernel lacks `openat2`, which confined extraction relies on.
    #[error("confined extraction needs openat2(2) (Linux 5.6 or later)")]
    Openat2Unavailable,
    /// A filesystem operation failed.
    #[error("{op} {path:?}: {source}")]
    Io {
        op: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },
}

impl ArchiveError {
    pub(crate) fn io(
        op: &'static str,
        path: impl std::fmt::Display,
        source: impl Into<io::Error>,
    ) -> Self {
        let source = source.into();
        if source.raw_os_error() == Some(rustix::io::Errno::NOSYS.raw_os_error()) {
            return ArchiveError::Openat2Unavailable;
        }
        ArchiveError::Io {
            op,
            path: path.to_string(),
            source,
        }
    }
}

impl Classify for ArchiveError {
    fn kind(&self) -> ErrorKind {
        match self {
            ArchiveError::InvalidPath { .. }
            | ArchiveError::TooManyEntries { .. }
            | ArchiveError::TooLarge { .. }
            | ArchiveError::DeviceRefused { .. }
            | ArchiveError::UnsupportedEntry { .. }
            | ArchiveError::Malformed(_) => ErrorKind::InvalidArgument,
            ArchiveError::NotFound(_) => ErrorKind::NotFound,
            ArchiveError::Openat2Unavailable => ErrorKind::NotImplemented,
            ArchiveError::Io { source, .. } => {
                // An entry colliding with the tree the archive itself built (a file where a
                // directory is needed, a dangling symlink in the way, a loop) is bad input.
                use rustix::io::Errno;
                let input = [
                    Errno::EXIST,
                    Errno::NOTDIR,
                    Errno::LOOP,
                    Errno::NAMETOOLONG,
                    Errno::ISDIR,
                ]
                .iter()
                .any(|e| source.raw_os_error() == Some(e.raw_os_error()));
                if input {
                    ErrorKind::InvalidArgument
                } else {
                    Classify::kind(source)
                }
            }
        }
    }
}
