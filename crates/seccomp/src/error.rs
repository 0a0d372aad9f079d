//! The crate's error type.

use wharf_errdefs::{Classify, ErrorKind};

/// Everything that can go wrong compiling, converting or installing a seccomp filter.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The Docker profile is not valid JSON or does not have the expected shape.
    #[error("decoding seccomp profile: {0}")]
    Json(#[from] serde_json::Error),
    /// The profile or OCI spec is well-formed but contains an invalid value.
    #[error("invalid seccomp profile: {0}")]
    InvalidProfile(String),
    /// The profile asks for something this implementation does not do (for example
    /// `SCMP_ACT_NOTIFY` or a non-x86 architecture).
    #[error("unsupported seccomp feature: {0}")]
    Unsupported(String),
    /// The compiled program exceeds the kernel's `BPF_MAXINSNS`.
    #[error("seccomp filter needs {len} BPF instructions, the kernel accepts at most {max}")]
    TooLarge {
        /// Instructions the program would need.
        len: usize,
        /// The kernel's limit.
        max: usize,
    },
    /// seccomp(SECCOMP_SET_MODE_FILTER) failed.
    #[error("installing seccomp filter: {0}")]
    Install(#[source] std::io::Error),
    /// With `SECCOMP_FILTER_FLAG_TSYNC`, another thread could not be synchronised.
    #[error("installing seccomp filter: thread {tid} could not be synchronised (TSYNC)")]
    TsyncFailed {
        /// The thread the kernel reported.
        tid: i64,
    },
    /// The host kernel release could not be parsed (needed for `minKernel` filters).
    #[error("cannot parse host kernel release {0:?}")]
    KernelVersion(String),
    /// A bug in the BPF code generator; the message says which invariant broke.
    #[error("seccomp compiler bug: {0}")]
    Internal(&'static str),
}

impl Classify for SeccompError {
    fn kind(&self) -> ErrorKind {
        match self {
            SeccompError::Json(_)
            | SeccompError::InvalidProfile(_)
            | SeccompError::TooLarge { .. } => ErrorKind::InvalidArgument,
            SeccompError::Unsupported(_) => ErrorKind::NotImplemented,
            SeccompError::Install(e) if e.raw_os_error() == Some(libc::EACCES) => {
                ErrorKind::Forbidden
            }
            SeccompError::Install(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                ErrorKind::InvalidArgument
            }
            SeccompError::Install(_)
            | SeccompError::TsyncFailed { .. }
            | SeccompError::KernelVersion(_)
            | SeccompError::Internal(_) => ErrorKind::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_taxonomy() {
        assert_eq!(
            SeccompError::InvalidProfile("x".into()).kind(),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            SeccompError::Unsupported("x".into()).kind(),
            ErrorKind::NotImplemented
        );
        let eacces = std::io::Error::from_raw_os_error(libc::EACCES);
        assert_eq!(SeccompError::Install(eacces).kind(), ErrorKind::Forbidden);
        let efault = std::io::Error::from_raw_os_error(libc::EFAULT);
        assert_eq!(SeccompError::Install(efault).kind(), ErrorKind::Internal);
    }
}
