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
//! Semantics follow runc + libseccomp: unknown syscall names are skipped, rules whose action
//! equals the default action are dropped, rules for one syscall are tried in order (first match
//! wins), the conditions of one rule are ANDed, syscalls newer than any the profile names get
//! `ENOSYS` (runc's "enosys stub") unless the default action allows, and a foreign architecture
//! is killed.
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
pub use docker::{default_docker_profile, docker_profile_to_oci};
pub use error::SeccompError;
pub use filter::Filter;
pub use syscalls::{syscall_number, Arch};
