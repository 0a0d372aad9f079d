//! The crate's error type, classified for the API edge.

use wharf_errdefs::{Classify, ErrorKind};

/// Everything that can go wrong creating or operating a container.
#[derive(Debug, thiserror::Error)]
pub enum LibcontainerError {
    /// The container id is empty or has characters that are unsafe in a path.
    #[error(
        "invalid container id {0:?}: use letters, digits, '_', '-', '.' (not starting with '.')"
    )]
    InvalidId(String),
    /// The bundle's config.json is missing, unreadable or does not describe a runnable container.
    #[error("invalid bundle: {0}")]
    InvalidSpec(String),
    /// A container with this id already exists under the state root.
    #[error("container {0} already exists")]
    AlreadyExists(String),
    /// No container with this id exists under the state root.
    #[error("container {0} does not exist")]
    NotFound(String),
    /// The operation is not allowed in the container's current state.
    #[error("container {id} is {status}: cannot {op}")]
    InvalidState {
        /// Container id.
        id: String,
        /// Current status.
        status: String,
        /// The refused operation.
        op: &'static str,
    },
    /// The spec asks for something this host or runtime cannot do.
    #[error("not supported: {0}")]
    NotSupported(String),
    /// The container's init process failed while setting up the container.
    #[error("container init failed: {0}")]
    Init(String),
    /// A lifecycle hook failed.
    #[error("{kind} hook {path} failed: {reason}")]
    Hook {
        /// Which hook list.
        kind: &'static str,
        /// The hook's path.
        path: String,
        /// Why it failed.
        reason: String,
    },
    /// The container's cgroup could not be managed.
    #[error("cgroup: {0}")]
    Cgroup(#[from] wharf_cgroups::CgroupError),
    /// The seccomp profile could not be compiled or loaded.
    #[error("seccomp: {0}")]
    Seccomp(#[from] wharf_seccomp::SeccompError),
    /// A system call failed.
    #[error("{op}: {source}")]
    Sys {
        /// What the runtime was doing.
        op: String,
        /// The errno.
        source: nix::Error,
    },
    /// A file operation failed.
    #[error("{op}: {source}")]
    Io {
        /// What the runtime was doing.
        op: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl LibcontainerError {
    pub(crate) fn sys(op: impl Into<String>) -> impl FnOnce(nix::Error) -> Self {
        let op = op.into();
        move |source| LibcontainerError::Sys { op, source }
    }

    pub(crate) fn io(op: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let op = op.into();
        move |source| LibcontainerError::Io { op, source }
    }
}

impl From<rustix::io::Errno> for LibcontainerError {
    fn from(e: rustix::io::Errno) -> Self {
        LibcontainerError::Sys {
            op: "syscall".into(),
            source: nix::Error::from_raw(e.raw_os_error()),
        }
    }
}

impl Classify for LibcontainerError {
    fn kind(&self) -> ErrorKind {
        match self {
            LibcontainerError::InvalidId(_) | LibcontainerError::InvalidSpec(_) => {
                ErrorKind::InvalidArgument
            }
            LibcontainerError::AlreadyExists(_) => ErrorKind::AlreadyExists,
            LibcontainerError::NotFound(_) => ErrorKind::NotFound,
            LibcontainerError::InvalidState { .. } => ErrorKind::Conflict,
            LibcontainerError::NotSupported(_) => ErrorKind::NotImplemented,
            LibcontainerError::Cgroup(e) => e.kind(),
            LibcontainerError::Seccomp(e) => e.kind(),
            LibcontainerError::Init(_)
            | LibcontainerError::Hook { .. }
            | LibcontainerError::Sys { .. }
            | LibcontainerError::Io { .. } => ErrorKind::Internal,
        }
    }
}

/// Shorthand result type.
pub type Result<T> = std::result::Result<T, LibcontainerError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        let e = LibcontainerError::InvalidState {
            id: "a".into(),
            status: "running".into(),
            op: "delete",
        };
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert_eq!(e.to_string(), "container a is running: cannot delete");
        assert_eq!(
            LibcontainerError::NotFound("x".into()).kind(),
            ErrorKind::NotFound
        );
    }
}
