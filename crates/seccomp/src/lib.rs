//! Seccomp for Wharf without libseccomp: compiles an OCI `linux.seccomp` section into a classic
//! BPF program, installs it, and turns Docker's seccomp profile format into the OCI one.
//!
//! The flow a container goes through:
//! 1. The daemon calls [`docker_profile_to_oci`] on [`default_docker_profile`] (or a user's
//!    profile) with the container's capabilities and writes the result into the bundle.
//! 2. The runtime calls [`compile`] on the bundle's `linux.seccomp` before forking (compiling
//!    allocates), then in the child sets `PR_SET_NO_NEW_PRIVS` and calls [`Filter::install`]
//!    just before `execve`.
//!
//! Semantics follow runc + libseccomp, and are checked against the program runc 1.1.5 installs
//! for Docker's default profile:
//! - unknown syscall names are skipped; rules whose action equals the default action are
//!   dropped; rules for one syscall are tried in order (first match wins) and the conditions of
//!   one rule are ANDed (runc instead ORs conditions that repeat an argument index);
//! - syscalls numbered above every syscall the profile names get `ENOSYS` (runc's "enosys
//!   stub") for listed architectures unless the default action allows;
//! - arguments compare as 64-bit values on x86_64, low 32 bits only on i386 and x32;
//! - a syscall from an architecture the filter does not cover kills the process (libseccomp
//!   kills the thread).
#![deny(unsafe_code)]

mod bpf;
mod compile;
mod docker;
mod error;
mod filter;
mod syscalls;
#[rustfmt::skip]
mod tables;
#[cfg(test)]
mod test_utils;

pub use compile::compile;
pub use docker::{default_docker_profile, docker_profile_to_oci, DOCKER_DEFAULT_CAPS};
pub use error::SeccompError;
pub use filter::Filter;
pub use syscalls::{syscall_number, Arch};
