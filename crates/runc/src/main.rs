//! `wharf-runtime`: a runc-compatible OCI runtime binary.

mod args;
mod commands;
mod logging;

use clap::Parser;

fn main() {
    let cli = args::Cli::parse();
    let log = logging::Logger::new(cli.log.clone(), cli.log_format);
    match commands::dispatch(&cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            let msg = format!("{e:#}");
            log.error(&msg);
            eprintln!("wharf-runtime: {msg}");
            std::process::exit(1);
        }
    }
}
