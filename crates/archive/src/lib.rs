//! Tar layers for Wharf: confined extraction, whiteouts, filesystem diffs and deterministic tars.
//!
//! Everything here is plain filesystem work with no daemon knowledge. Every operation takes the
//! directory it must stay inside; untrusted names are cleaned lexically and resolved with
//! `openat2(RESOLVE_IN_ROOT)` so nothing an archive contains can reach outside that directory.
#![forbid(unsafe_code)]

mod apply;
mod error;
mod node;
mod path;
mod root;

pub use apply::{apply_layer, decompress, extract_confined, ApplyOptions, WhiteoutFormat, MAX_ENTRY_SIZE};
pub use error::ArchiveError;
