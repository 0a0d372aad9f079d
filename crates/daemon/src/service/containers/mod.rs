//! The containers backend: lifecycle, OCI spec, shim supervision.

pub mod spec;
