//! The command line: verbs, and the exit codes they share.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod run;

/// Every worker ended without failing.
pub const EXIT_OK: u8 = 0;
/// A worker failed, or the command could not run (a missing or invalid component, ...).
pub const EXIT_FAILED: u8 = 1;
/// The run was interrupted (Ctrl-C); its workers were terminated.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Web Workers for WebAssembly components.
#[derive(Parser, Debug)]
#[command(name = "wasm-workers", version, about, long_about = None)]
#[command(after_help = "Exit codes: 0 the worker ended without failing; 1 a worker failed or the \
command could not run; 2 bad usage; 130 interrupted (Ctrl-C).")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a component as a worker: each line of stdin (one JSON value) is posted to it, and
    /// each message it posts to its parent is written to stdout as a JSON line. Ends when the
    /// worker closes, fails, or has nothing left to do after stdin ends.
    Run(RunArgs),
}

/// Arguments of `wasm-workers run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The worker's component (`.wasm`).
    component: PathBuf,
    /// The worker's name (its `self.name`); defaults to the component's file stem.
    #[arg(long)]
    name: Option<String>,
    /// What `hardware-concurrency()` returns to every worker; defaults to the number of
    /// processors available.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    hardware_concurrency: Option<u32>,
}

/// Runs the command.
///
/// # Errors
///
/// Whatever stops the command from running; the caller prints it and exits with
/// [`EXIT_FAILED`].
pub fn main(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run::run(args),
    }
}
