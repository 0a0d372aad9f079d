//! Docker Engine API models (v1.24–v1.45) with Docker's JSON field names, plus the API version
//! type and the `filters` query parameter. Pure data: no I/O.
//!
//! Request structs accept unknown fields (Docker clients send many); optional fields are
//! `Option` so an absent field and Docker's `null` mean the same.
#![forbid(unsafe_code)]

pub mod base64;
pub mod container;
pub mod dockerignore;
pub mod exec;
pub mod filters;
pub mod image;
pub mod network;
pub mod strslice;
pub mod system;
pub mod version;
pub mod volume;

pub use filters::{Filters, FiltersError};
pub use version::{ApiVersion, ApiVersionError};

use serde::{Deserialize, Serialize};

/// Docker's error body: `{"message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// One line for the user.
    pub message: String,
}

/// `{"Id": ...}` answers (exec create, commit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdResponse {
    /// The new object's id.
    #[serde(rename = "Id")]
    pub id: String,
}
