//! The builder's error type.

use wharf_errdefs::{Classify, ErrorKind};

use crate::dockerfile::ParseError;

/// Everything a build can fail with. Messages are Docker's where it has one.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// Bad options or a bad instruction argument at dispatch.
    #[error("{0}")]
    InvalidArgument(String),
    /// A named thing (file in the context, stage, image) does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Something Wharf's builder refuses rather than ignores.
    #[error("{0}")]
    NotSupported(String),
    /// A RUN step exited non-zero.
    #[error("The command '{command}' returned a non-zero code: {code}")]
    RunFailed { command: String, code: i64 },
    /// The worker (daemon: containers, images) failed; `kind` is its classification.
    #[error("{message}")]
    Worker { kind: ErrorKind, message: String },
    #[error(transparent)]
    Archive(#[from] wharf_archive::ArchiveError),
    /// A remote context or ADD <url> could not be downloaded.
    #[error(transparent)]
    Fetch(#[from] wharf_fetch::FetchError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The build was cancelled (client went away or `/build/cancel`).
    #[error("build cancelled")]
    Cancelled,
}

impl BuildError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BuildError {
        let context = context.into();
        move |source| BuildError::Io { context, source }
    }
}

impl Classify for BuildError {
    fn kind(&self) -> ErrorKind {
        match self {
            BuildError::Parse(_)
            | BuildError::InvalidArgument(_)
            | BuildError::RunFailed { .. } => ErrorKind::InvalidArgument,
            BuildError::NotFound(_) => ErrorKind::NotFound,
            BuildError::NotSupported(_) => ErrorKind::NotImplemented,
            BuildError::Worker { kind, .. } => *kind,
            BuildError::Archive(e) => e.kind(),
            BuildError::Fetch(e) => e.kind(),
            BuildError::Io { .. } => ErrorKind::Internal,
            BuildError::Cancelled => ErrorKind::Conflict,
        }
    }
}
