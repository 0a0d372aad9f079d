//! Typed volume errors, with Docker's messages.

use wharf_errdefs::{Classify, ErrorKind};

/// What went wrong with a volume.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A name the local driver refuses.
    #[error("create {0}: \"{0}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path")]
    InvalidName(String),
    /// No such volume.
    #[error("get {0}: no such volume")]
    NotFound(String),
    /// Referenced by containers.
    #[error("remove {name}: volume is in use - [{}]", ids.join(", "))]
    InUse {
        /// The volume.
        name: String,
        /// The containers using it.
        ids: Vec<String>,
    },
    /// A driver other than `local` (plugins are not supported yet).
    #[error(
        "create {name}: error looking up volume plugin {driver}: plugin \"{driver}\" not found"
    )]
    UnknownDriver {
        /// The volume.
        name: String,
        /// The driver asked for.
        driver: String,
    },
    /// The name exists with another driver.
    #[error("create {name}: volume name {name} already exists with a different driver")]
    DriverConflict {
        /// The volume.
        name: String,
    },
    /// Bad driver options or mount syntax.
    #[error("{0}")]
    Invalid(String),
    /// Something we do not do (yet).
    #[error("{0}")]
    NotSupported(String),
    /// mount(2) or umount(2) failed.
    #[error("{what} {path}: {source}")]
    Mount {
        /// What was attempted.
        what: &'static str,
        /// The mount point.
        path: String,
        /// The kernel's answer.
        source: std::io::Error,
    },
    /// Filesystem work on the volume root.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was attempted.
        what: &'static str,
        /// Where.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Copying image content into a new volume.
    #[error("copying image content into volume: {0}")]
    CopyUp(#[from] wharf_archive::ArchiveError),
}

impl VolumeError {
    pub(crate) fn io(
        what: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> VolumeError {
        let path = path.display().to_string();
        move |source| VolumeError::Io { what, path, source }
    }
}

impl Classify for VolumeError {
    fn kind(&self) -> ErrorKind {
        match self {
            VolumeError::InvalidName(_) | VolumeError::Invalid(_) => ErrorKind::InvalidArgument,
            VolumeError::NotFound(_) | VolumeError::UnknownDriver { .. } => ErrorKind::NotFound,
            VolumeError::InUse { .. } | VolumeError::DriverConflict { .. } => ErrorKind::Conflict,
            VolumeError::NotSupported(_) => ErrorKind::NotImplemented,
            VolumeError::Mount { .. } | VolumeError::Io { .. } | VolumeError::CopyUp(_) => {
                ErrorKind::Internal
            }
        }
    }
}

/// Result alias.
pub type Result<T, E = VolumeError> = std::result::Result<T, E>;
