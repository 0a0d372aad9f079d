//! [`DistributionError`]: what a registry operation can fail with, classified once.

use wharf_errdefs::{Classify, ErrorKind};

/// Why a pull (or a registry request) failed. Messages follow Docker's wording, since the
/// CLI prints them as they are.
#[derive(Debug, thiserror::Error)]
pub enum DistributionError {
    /// The caller's input (reference, platform, option) is malformed.
    #[error("{0}")]
    InvalidArgument(String),
    /// The daemon's `block-registries` setting forbids contacting this registry.
    #[error("registry {0} is blocked by the daemon's block-registries setting")]
    Blocked(String),
    /// Connecting to or talking with the registry failed.
    #[error(transparent)]
    Transport(#[from] wharf_fetch::FetchError),
    /// The registry answered with an error; `message` is already in Docker's words and
    /// `kind` says what the API edge answers.
    #[error("{message}")]
    Registry {
        /// The HTTP status the registry sent.
        status: u16,
        /// The first error code of the registry's envelope (`MANIFEST_UNKNOWN`, …), or empty.
        code: String,
        /// The message as Docker shows it.
        message: String,
        /// How the API edge classifies it.
        kind: ErrorKind,
    },
    /// Downloaded content does not hash to the digest that names it; nothing was stored.
    #[error("filesystem layer verification failed for digest {expected}: got {actual}")]
    DigestMismatch {
        /// The digest the manifest promised.
        expected: String,
        /// The digest of what arrived.
        actual: String,
    },
    /// A manifest, index or config the registry sent is not usable.
    #[error("{0}")]
    InvalidManifest(String),
    /// The index has no image for the requested platform.
    #[error("{0}")]
    NoMatchingPlatform(String),
    /// The local image store refused (its error kind passes through).
    #[error(transparent)]
    Store(#[from] wharf_image::ImageError),
    /// Local file I/O around downloads failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl DistributionError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| DistributionError::Io { context, source }
    }
}

impl Classify for DistributionError {
    fn kind(&self) -> ErrorKind {
        match self {
            DistributionError::InvalidArgument(_) => ErrorKind::InvalidArgument,
            DistributionError::Blocked(_) => ErrorKind::Forbidden,
            DistributionError::Registry { kind, .. } => *kind,
            DistributionError::NoMatchingPlatform(_) => ErrorKind::NotFound,
            DistributionError::Store(e) => e.kind(),
            DistributionError::Transport(_)
            | DistributionError::DigestMismatch { .. }
            | DistributionError::InvalidManifest(_)
            | DistributionError::Io { .. } => ErrorKind::Internal,
        }
    }
}
