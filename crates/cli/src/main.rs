//! `wharf`: the docker-compatible command line for the Wharf engine.

mod format;
mod template;

fn main() {}
