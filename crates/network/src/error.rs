//! The crate's typed errors, classified once for the API edge.

use std::path::PathBuf;

use wharf_errdefs::{Classify, ErrorKind};

use crate::ipam::IpamError;
use crate::sys::SysError;

/// Network failures.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// The state file.
    #[error("network state {path}: {source}")]
    Store {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A kernel operation.
    #[error(transparent)]
    Sys(#[from] SysError),
    /// Address management.
    #[error(transparent)]
    Ipam(#[from] IpamError),
    /// An unknown network.
    #[error("network {0} not found")]
    NotFound(String),
    /// No endpoint of that name on the network (`disconnect --force` of a lost container).
    #[error("endpoint {0} not found")]
    EndpointNotFound(String),
    /// A malformed port binding.
    #[error("{0}")]
    InvalidPort(String),
    /// A publication the kernel refused (dockerd's message).
    #[error("driver failed programming external connectivity on endpoint {name} ({endpoint}): Bind for {addr} failed: port is already allocated")]
    PortAllocated {
        /// Container name.
        name: String,
        /// Endpoint id.
        endpoint: String,
        /// `ip:port`.
        addr: String,
    },
    /// Binding a host port failed otherwise.
    #[error("driver failed programming external connectivity on endpoint {name} ({endpoint}): failed to bind {addr}: {source}")]
    PortBind {
        /// Container name.
        name: String,
        /// Endpoint id.
        endpoint: String,
        /// `ip:port`.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// Something we do not do (yet).
    #[error("{0}")]
    NotSupported(String),
    /// A request Docker refuses as forbidden (403), e.g. overlapping pools.
    #[error("{0}")]
    Forbidden(String),
    /// A name or state conflict (409).
    #[error("{0}")]
    Conflict(String),
    /// A malformed request (400).
    #[error("{0}")]
    Invalid(String),
}

impl Classify for NetworkError {
    fn kind(&self) -> ErrorKind {
        match self {
            NetworkError::NotFound(_) | NetworkError::EndpointNotFound(_) => ErrorKind::NotFound,
            NetworkError::InvalidPort(_) => ErrorKind::InvalidArgument,
            NetworkError::NotSupported(_) => ErrorKind::NotImplemented,
            NetworkError::Forbidden(_) => ErrorKind::Forbidden,
            NetworkError::Conflict(_) => ErrorKind::Conflict,
            NetworkError::Invalid(_) => ErrorKind::InvalidArgument,
            NetworkError::Ipam(IpamError::OutOfRange(_)) => ErrorKind::InvalidArgument,
            NetworkError::Ipam(IpamError::InUse) => ErrorKind::Conflict,
            NetworkError::Store { .. }
            | NetworkError::Sys(_)
            | NetworkError::Ipam(_)
            | NetworkError::PortAllocated { .. }
            | NetworkError::PortBind { .. } => ErrorKind::Internal,
        }
    }
}
