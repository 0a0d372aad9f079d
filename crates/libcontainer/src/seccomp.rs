//! Seccomp: the point where the spec's profile is compiled and loaded, just before execve.

use oci_spec::runtime::LinuxSeccomp;

use crate::error::{LibcontainerError, Result};

/// Loads `profile` into the calling thread. Must run after PR_SET_NO_NEW_PRIVS or with
/// CAP_SYS_ADMIN, and after every other syscall the runtime itself still needs.
pub fn install(_profile: &LinuxSeccomp) -> Result<()> {
    Err(LibcontainerError::NotSupported(
        "linux.seccomp: the seccomp filter compiler (wharf-seccomp) is not linked into this build".into(),
    ))
}
