//! Tar layers for Wharf: confined extraction, whiteouts, filesystem diffs and deterministic tars.
//!
//! Everything here is plain filesystem work with no daemon knowledge. Every operation takes the
//! directory it must stay inside; untrusted names are cleaned lexically and resolved with
//! `openat2(RESOLVE_IN_ROOT)` so nothing an archive contains can reach outside that directory.
#![forbid(unsafe_code)]

mod apply;
mod changes;
mod copy;
mod error;
mod node;
mod path;
mod root;
mod stat;
mod walk;
mod write;

pub use apply::{
    apply_layer, decompress, extract_confined, ApplyOptions, WhiteoutFormat, DEFAULT_MAX_FILE_SIZE,
};
pub use changes::{changes_between, changes_overlay, overlay_lstat, Change, ChangeKind};
pub use copy::copy_tree;
pub use error::ArchiveError;
pub use node::copy_buffered;
pub use stat::{stat_path, PathStat};
pub use write::{tar_path, write_changes, TarOptions};
