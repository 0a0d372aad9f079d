//! `/containers/...` and `/exec/...`.

pub mod handlers;
pub mod routes;
