//! The `wharfd` binary: flags, config, logging, then [`wharfd::wiring::run`].

use anyhow::Context;
use clap::Parser;
use wharfd::config::{Config, Flags};

fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    let config = Config::load(&flags).context("loading configuration")?;
    let level = if config.debug {
        "debug"
    } else {
        config.log_level.as_str()
    };
    let level = if level == "fatal" { "error" } else { level };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(format!(
            "wharfd={level}"
        )))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // One thread serves the API; blocking storage work goes to spawn_blocking's pool.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(wharfd::wiring::run(flags, config))
        .context("wharfd")?;
    Ok(())
}
