//! cgroup v1 and v2 management for the OCI runtime, following runc's cgroupfs driver.
//!
//! [`Hierarchy`] describes what the host mounts; [`Manager`] owns one container's cgroup on
//! top of it. Every file access goes below the mount points the hierarchy names, so tests run
//! against a fake cgroupfs tree in a tempdir. Synchronous by design: the runtime calls this
//! around fork, where no async runtime may run.
// Only `v2::bpf` needs unsafe (bpf(2) has no safe wrapper); it opts in explicitly.
#![deny(unsafe_code)]

mod cgfs;
mod convert;
mod devices;
mod error;
mod hierarchy;
mod manager;
mod stats;
mod v1;
mod v2;

pub use convert::ignored_settings;
pub use error::CgroupError;
pub use hierarchy::{CgroupVersion, Hierarchy, UnifiedMount, V1Mount};
pub use manager::Manager;
pub use stats::{BlkioEntry, BlkioStats, CpuStats, MemoryStats, PidsStats, Stats, ThrottlingStats};

/// What the runtime's `features` command reports about cgroups on this host.
pub fn features(h: &Hierarchy) -> serde_json::Value {
    serde_json::json!({
        "v1": !h.v1_mounts().is_empty(),
        "v2": h.unified().is_some(),
        "version": h.version(),
        "systemd": false,
        "systemdUser": false,
        "rdma": h.controllers().iter().any(|c| c == "rdma"),
        "controllers": h.controllers(),
    })
}

#[cfg(test)]
mod tests;
