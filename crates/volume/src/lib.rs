//! Volumes: the store (name -> driver, labels, options; references by container id), the
//! `local` driver with Docker's on-disk layout, copy-up of image content into a new volume,
//! and the parser for Docker's `-v`/`--mount` syntax.
//!
//! Mount effects go through [`sys::Mounter`], so the logic is tested without root.

pub mod copyup;
pub mod driver;
pub mod error;
pub mod local;
pub mod mounts;
pub mod refs;
pub mod store;
pub mod sys;

pub use driver::{Volume, VolumeDriver};
pub use error::VolumeError;
pub use mounts::{MountKind, MountPoint, MountRequest};
pub use store::{VolumeStore, VolumeView};

/// The label Docker puts on anonymous volumes (what `volume prune` without `all` removes).
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";
