//! The containers backend: lifecycle, OCI spec, shim supervision.

pub mod netns;
pub mod shim;
pub mod spec;
