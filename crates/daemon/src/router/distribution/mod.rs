//! `/auth` (docker login) and `/distribution/{name}/json`: the registry endpoints that are
//! not about local images.

pub mod handlers;
pub mod routes;
