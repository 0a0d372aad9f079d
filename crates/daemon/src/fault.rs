//! Named crash points for the fault-injection tests.
//!
//! When the environment variable `WHARFD_CRASH_AT` names a point, wharfd aborts the moment it
//! reaches it: no destructors run and nothing is flushed, exactly what `kill -9` at that line
//! would leave behind. Tests use it to reproduce a crash between two steps deterministically
//! (`crates/daemon/tests/crash.rs`); random `kill -9` covers the rest (`tests/fault.rs`).
//! Unset (production), a point is one cached comparison.
//!
//! Points (`<verb>:<where>`): `create:after-layer`, `create:after-endpoints`,
//! `start:after-shim-start`, `remove:after-intent`, `remove:after-layer`.

use std::sync::OnceLock;

/// The environment variable naming the crash point.
pub const ENV: &str = "WHARFD_CRASH_AT";

/// Aborts the daemon if `name` is the configured crash point.
pub fn point(name: &str) {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    if AT.get_or_init(|| std::env::var(ENV).ok()).as_deref() == Some(name) {
        tracing::error!(point = name, "crash point reached: aborting");
        std::process::abort();
    }
}
