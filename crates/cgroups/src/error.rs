//! The crate's error type.

use std::io;
use std::path::PathBuf;

use wharf_errdefs::{Classify, ErrorKind};

/// Everything that can go wrong managing a cgroup.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// The request needs something this crate or host deliberately does not do.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// `linux.cgroupsPath` (or the container id it defaults to) is malformed.
    #[error("invalid cgroups path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// Why it was refused.
        reason: String,
    },
    /// A resource value in the spec is out of range or inconsistent.
    #[error("invalid resource {field}: {reason}")]
    InvalidResource {
        /// The OCI field, e.g. `memory.swappiness`.
        field: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// A limit was requested for a controller this host (or this cgroup) does not have.
    #[error("cgroup controller {controller:?} is not available on this host, cannot set {field}")]
    ControllerMissing {
        /// The controller name, e.g. `hugetlb`.
        controller: String,
        /// The OCI field that needed it.
        field: String,
    },
    /// The host's cgroup layout could not be determined.
    #[error("cannot probe cgroup hierarchies: {0}")]
    Probe(String),
    /// A cgroup file or directory operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`write`, `read`, `mkdir`, ...).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A cgroup file did not have the expected format.
    #[error("cannot parse {path}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The cgroup did not reach the frozen state in time; it was thawed again.
    #[error("timed out freezing cgroup {0}")]
    FreezeTimeout(PathBuf),
    /// Sending a signal to a process of the cgroup failed.
    #[error("signal {signal} to pid {pid}: {source}")]
    Signal {
        /// The target process.
        pid: i32,
        /// The signal number.
        signal: i32,
        /// The errno.
        #[source]
        source: nix::Error,
    },
    /// Loading or attaching the eBPF device filter failed.
    #[error("eBPF device filter: {op}: {source}")]
    Bpf {
        /// The bpf(2) command or step.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl CgroupError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        CgroupError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

impl Classify for CgroupError {
    fn kind(&self) -> ErrorKind {
        match self {
            CgroupError::Unsupported(_) | CgroupError::ControllerMissing { .. } => {
                ErrorKind::NotImplemented
            }
            CgroupError::InvalidPath { .. } | CgroupError::InvalidResource { .. } => {
                ErrorKind::InvalidArgument
            }
            CgroupError::Io { source, .. } => match source.raw_os_error() {
                Some(libc::EBUSY) => ErrorKind::Conflict,
                // The kernel rejects out-of-range values with EINVAL.
                Some(libc::EINVAL) => ErrorKind::InvalidArgument,
                _ => Classify::kind(source),
            },
            CgroupError::FreezeTimeout(_) => ErrorKind::Unavailable,
            CgroupError::Signal { source, .. } if *source == nix::Error::ESRCH => {
                ErrorKind::NotFound
            }
            CgroupError::Probe(_)
            | CgroupError::Parse { .. }
            | CgroupError::Signal { .. }
            | CgroupError::Bpf { .. } => ErrorKind::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_errno_of_io_errors() {
        let busy = CgroupError::io("rmdir", "/x", io::Error::from_raw_os_error(libc::EBUSY));
        assert_eq!(busy.kind(), ErrorKind::Conflict);
        let gone = CgroupError::io("read", "/x", io::Error::from_raw_os_error(libc::ENOENT));
        assert_eq!(gone.kind(), ErrorKind::NotFound);
        let bad = CgroupError::io("write", "/x", io::Error::from_raw_os_error(libc::EINVAL));
        assert_eq!(bad.kind(), ErrorKind::InvalidArgument);
        let missing = CgroupError::ControllerMissing {
            controller: "hugetlb".into(),
            field: "hugepageLimits".into(),
        };
        assert_eq!(missing.kind(), ErrorKind::NotImplemented);
        assert!(missing.to_string().contains("hugetlb"));
    }
}
