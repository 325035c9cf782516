//! The command line: verbs, the host they share, and the exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use wasm_workers::{Host, HostConfig};

mod build;
mod graph;
mod lattice;
mod run;
mod stdin;
mod stdout;

/// Every worker ended without failing.
pub const EXIT_OK: u8 = 0;
/// A worker failed.
pub const EXIT_FAILED: u8 = 1;
/// The command could not run: bad usage, an invalid manifest, a component that cannot be
/// loaded. Nothing was started.
pub const EXIT_INVALID: u8 = 2;
/// The run was interrupted (Ctrl-C); its workers were terminated.
pub const EXIT_INTERRUPTED: u8 = 130;
/// Stdout was closed by its reader (`| head`): the run ended quietly, as a Unix tool ends
/// on `SIGPIPE` (the status a shell reports for that, 128 + 13).
pub const EXIT_OUTPUT_CLOSED: u8 = 141;

/// Web Workers for WebAssembly components.
#[derive(Parser, Debug)]
#[command(name = "wasm-workers", version, about, long_about = None)]
#[command(
    after_help = "Exit codes: 0 every worker ended without failing; 1 a worker failed, or stdin lines were lost; 2 the \
command could not run (bad usage, invalid manifest, component that cannot be loaded); 130 \
interrupted (Ctrl-C); 141 stdout was closed by its reader."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a component as a worker, or a worker graph (a `.toml` manifest): each line of stdin
    /// (one JSON value) is posted to the (entry) worker, and each message it posts to its
    /// parent is written to stdout as a JSON line. Ends when that worker closes, fails, or has
    /// nothing left to do after stdin ends.
    Run(RunArgs),
    /// Serve a lattice: join it on a NATS server and run the workers other hosts place here,
    /// until Ctrl-C or SIGTERM (its workers are then terminated, and their parents told).
    Host(lattice::HostArgs),
    /// List the live hosts of a lattice.
    Hosts {
        #[command(flatten)]
        lattice: LatticeArgs,
    },
    /// Check a worker graph's manifest, loading every component, without starting anything.
    Check {
        /// The manifest.
        manifest: PathBuf,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Print a worker graph as a picture source (Graphviz DOT or Mermaid).
    Graph {
        /// The manifest.
        manifest: PathBuf,
        /// The picture language.
        #[arg(long, value_enum, default_value_t = Format::Dot)]
        format: Format,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Compile a component ahead of time (`.cwasm`), as `wasmtime compile` does. Run it with
    /// `--allow-precompiled`.
    Compile {
        /// The component.
        component: PathBuf,
        /// Where to write the compiled component; beside it with `.cwasm` if omitted.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Print the WIT world that worker components implement.
    Wit,
    /// Build worker scripts written for browsers (JavaScript) into a worker component, with
    /// componentize-js and this host's JavaScript worker scope.
    BuildJs(build::BuildJsArgs),
    /// Build a worker written in Python into a worker component, with componentize-py and
    /// this host's Python worker scope.
    BuildPy(build::BuildPyArgs),
}

/// A picture language for `graph`.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    /// Graphviz DOT.
    Dot,
    /// A Mermaid flowchart.
    Mermaid,
}

/// How the engine loads components.
#[derive(clap::Args, Debug, Clone)]
struct EngineArgs {
    /// Where compiled components are cached [default: $WASM_WORKERS_CACHE_DIR, else
    /// $XDG_CACHE_HOME/wasm-workers, else ~/.cache/wasm-workers].
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile every component afresh, without the on-disk cache.
    #[arg(long, conflicts_with = "cache_dir")]
    no_cache: bool,
    /// Accept precompiled components (`.cwasm`). Their machine code is trusted as it is:
    /// only for files that are yours.
    #[arg(long)]
    allow_precompiled: bool,
}

/// Arguments of `wasm-workers run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The worker's component (`.wasm`, or `.cwasm` with `--allow-precompiled`), or a worker
    /// graph's manifest (`.toml`).
    path: PathBuf,
    /// The worker's name (its `self.name`); defaults to the component's file stem. Not for
    /// graphs, whose manifest names its workers.
    #[arg(long)]
    name: Option<String>,
    /// What `hardware-concurrency()` returns to every worker; defaults to the number of
    /// processors available.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    hardware_concurrency: Option<u32>,
    /// At the end, print a table of what each worker did to stderr.
    #[arg(long)]
    stats: bool,
    /// The most memory all workers together may make the host hold ("4 GiB"): their linear
    /// memories, buffers, messages on their way, ports, timers [default: half of the
    /// machine's memory].
    #[arg(long, value_name = "SIZE", value_parser = wasm_workers::parse_size)]
    memory_budget: Option<u64>,
    #[command(flatten)]
    engine: EngineArgs,
    /// Place the workers that ask for it (`place-spawns` in a manifest) on this lattice.
    #[command(flatten)]
    lattice: LatticeArgs,
}

/// How to reach a lattice.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct LatticeArgs {
    /// The NATS server of the lattice (`nats://HOST:PORT`).
    #[arg(long, value_name = "URL")]
    nats: Option<String>,
    /// The lattice's name on that server.
    #[arg(long, value_name = "NAME", requires = "nats")]
    lattice: Option<String>,
    /// A NATS credentials file.
    #[arg(long, value_name = "FILE", requires = "nats")]
    nats_creds: Option<PathBuf>,
    /// A NATS authentication token.
    #[arg(long, value_name = "TOKEN", requires = "nats")]
    nats_token: Option<String>,
    /// Require TLS to the NATS server.
    #[arg(long, requires = "nats")]
    nats_tls: bool,
    /// A root certificate (PEM) to trust for the NATS server.
    #[arg(long, value_name = "FILE", requires = "nats")]
    nats_ca: Option<PathBuf>,
}

impl LatticeArgs {
    /// The lattice to join, if `--nats` was given.
    ///
    /// # Errors
    ///
    /// `--nats` without `--lattice`.
    fn options(&self) -> anyhow::Result<Option<wasm_workers::lattice::LatticeOptions>> {
        let Some(url) = &self.nats else { return Ok(None) };
        let Some(name) = &self.lattice else { anyhow::bail!("--nats needs --lattice NAME") };
        Ok(Some(wasm_workers::lattice::LatticeOptions {
            url: url.clone(),
            name: name.clone(),
            credentials: self.nats_creds.clone(),
            token: self.nats_token.clone(),
            tls: self.nats_tls,
            root_certificate: self.nats_ca.clone(),
        }))
    }

    /// The lattice to join, which must be given.
    ///
    /// # Errors
    ///
    /// Without `--nats` and `--lattice`, or if the lattice cannot be reached.
    fn connect(&self) -> anyhow::Result<wasm_workers::lattice::Lattice> {
        let Some(options) = self.options()? else { anyhow::bail!("--nats URL and --lattice NAME are needed") };
        Ok(wasm_workers::lattice::Lattice::connect(&options)?)
    }
}

impl EngineArgs {
    fn host(&self, hardware_concurrency: Option<u32>, memory_budget: Option<u64>) -> anyhow::Result<Host> {
        let cache_dir = if self.no_cache { None } else { self.cache_dir.clone().or_else(default_cache_dir) };
        let config = HostConfig {
            hardware_concurrency,
            memory_budget,
            cache_dir,
            allow_precompiled: self.allow_precompiled,
            // One host per process: the pool's address space is ours to reserve.
            pooling: wasm_workers::Pooling::Own,
            ..HostConfig::default()
        };
        Ok(Host::with_config(config)?)
    }
}

fn default_cache_dir() -> Option<PathBuf> {
    let env = |name| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    env("WASM_WORKERS_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("wasm-workers")))
        .or_else(|| env("HOME").map(|d| d.join(".cache").join("wasm-workers")))
}

/// Runs the command.
///
/// # Errors
///
/// Whatever stops the command from running; the caller prints it and exits with
/// [`EXIT_INVALID`].
pub fn main(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Host(args) => lattice::host(args),
        Command::Hosts { lattice } => lattice::hosts(&lattice),
        Command::Check { manifest, engine } => {
            let graph = graph::check(&manifest, &engine.host(None, None)?)?;
            println!("{}: ok, entry `{}`", manifest.display(), graph.entry());
            Ok(ExitCode::from(EXIT_OK))
        }
        Command::Graph { manifest, format, engine } => {
            let graph = graph::check(&manifest, &engine.host(None, None)?)?;
            print!(
                "{}",
                match format {
                    Format::Dot => graph.to_dot(),
                    Format::Mermaid => graph.to_mermaid(),
                }
            );
            Ok(ExitCode::from(EXIT_OK))
        }
        Command::Compile { component, output } => {
            let host = EngineArgs { cache_dir: None, no_cache: true, allow_precompiled: false }.host(None, None)?;
            let compiled = host.precompile(&component)?;
            let output = output.unwrap_or_else(|| component.with_extension("cwasm"));
            std::fs::write(&output, compiled).with_context(|| format!("cannot write {}", output.display()))?;
            eprintln!("compiled {} to {}", component.display(), output.display());
            Ok(ExitCode::from(EXIT_OK))
        }
        Command::BuildJs(args) => build::build_js(args),
        Command::BuildPy(args) => build::build_py(args),
        Command::Wit => {
            print!("{}", include_str!("../../../wit/worker.wit"));
            Ok(ExitCode::from(EXIT_OK))
        }
    }
}
