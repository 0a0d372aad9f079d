//! Output formatting shared by the commands: units, tabwriter layout, table/JSON/template modes.

pub(crate) mod tabwriter;
pub(crate) mod units;
