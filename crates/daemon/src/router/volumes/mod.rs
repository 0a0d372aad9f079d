//! `/volumes/...`.

pub mod handlers;
pub mod routes;
