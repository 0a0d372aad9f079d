//! `/images/...`, `/commit`, `/system/df`.

pub mod handlers;
pub mod pull;
pub mod routes;
