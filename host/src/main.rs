//! The `wasm-workers` command: run WebAssembly components as Web Workers.

use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    // Errors by default; the NATS client's own are said again, in one line, by the error
    // they cause, so they stay quiet unless RUST_LOG asks for them.
    let filter = match std::env::var(tracing_subscriber::EnvFilter::DEFAULT_ENV) {
        Ok(filter) => tracing_subscriber::EnvFilter::new(filter),
        Err(_) => tracing_subscriber::EnvFilter::new("error,async_nats=off"),
    };
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let args = cli::Cli::parse();
    match cli::main(args) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(cli::EXIT_INVALID)
        }
    }
}
