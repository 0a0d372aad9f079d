//! `/_ping`, `/version`, `/info`, `/events`, `/system/df`.

pub mod handlers;
pub mod routes;
