//! Wharf's OCI runtime library: creates and operates containers from OCI bundles the way runc
//! does (same process model, state layout and lifecycle), synchronously and without threads,
//! because it forks.
//!
//! Lifecycle: [`CreateOptions::create`] forks init, which builds the container and blocks on
//! `<root>/<id>/exec.fifo`; [`Container::start`] opens the fifo so init execs the user process;
//! [`Container::kill`], [`Container::exec`] and [`Container::delete`] act on a loaded
//! [`Container`]. State is `<root>/<id>/state.json`, replaced atomically.
//!
//! ```no_run
//! use wharf_libcontainer::{Container, CreateOptions};
//! let opts = CreateOptions {
//!     id: "c1".into(),
//!     bundle: "/tmp/bundle".into(),
//!     state_root: "/run/wharf-runtime".into(),
//!     ..Default::default()
//! };
//! let mut c = opts.create()?;
//! c.start()?;
//! # Ok::<(), wharf_libcontainer::LibcontainerError>(())
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod capabilities;
pub mod cgroup;
pub mod cgroupfs_mount;
pub mod channel;
pub mod console;
pub mod container;
pub mod devices;
pub mod error;
pub mod fsroot;
pub mod hooks;
pub mod init;
pub mod mount;
pub mod namespaces;
pub mod process;
pub mod procfs;
pub mod reexec;
pub mod rlimit;
pub mod rootfs;
pub mod spec;
pub mod state;

pub use container::{
    parse_signal, set_child_subreaper, wait_exit, Container, CreateOptions, ExecOptions,
};
pub use error::{LibcontainerError, Result};
pub use state::{ContainerStatus, OciState, State};
