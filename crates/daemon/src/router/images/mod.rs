//! `/images/...`, `/commit`, `/system/df`.

pub mod handlers;
pub mod routes;
