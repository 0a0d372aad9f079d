//! Backends behind the routers, one module per API area.

pub mod build;
pub mod containers;
pub mod networks;
pub mod system;
pub mod volumes;
