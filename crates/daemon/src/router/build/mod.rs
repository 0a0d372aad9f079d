//! `POST /build`, `/build/prune`, `/build/cancel`: the classic builder's API, served by
//! `wharf_builder` through `service::build`.

pub mod handlers;
pub mod routes;
