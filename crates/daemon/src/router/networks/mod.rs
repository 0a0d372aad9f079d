//! `/networks`: list, inspect, create, connect, disconnect, remove, prune.

pub mod handlers;
pub mod routes;
