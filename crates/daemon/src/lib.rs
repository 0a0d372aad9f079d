//! `wharfd`: the Docker Engine API daemon. See `wiring` for how the pieces fit together.
#![forbid(unsafe_code)]

pub mod config;
pub mod events;
pub mod fault;
pub mod ids;
pub mod router;
pub mod server;
pub mod service;
pub mod state;
pub mod wiring;
