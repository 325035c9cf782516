//! `wasm-workers build-js` and `build-py`: worker scripts in JavaScript (written for
//! browsers) and Python, built into worker components (see [`wasm_workers::scripts`]).

use std::path::PathBuf;
use std::process::ExitCode;

use super::EXIT_OK;

/// Arguments of `build-js`.
#[derive(clap::Args, Debug)]
pub struct BuildJsArgs {
    /// The worker scripts (classic scripts, as a browser's `new Worker(url)` runs them).
    #[arg(required = true)]
    scripts: Vec<PathBuf>,
    /// Where to write the component: a `.wasm` file for one script; for several, a directory
    /// that gets `NAME.wasm` for each `NAME.js` (one component, hard-linked under every name:
    /// a worker runs the script named like the file it was started from).
    #[arg(short, long)]
    output: PathBuf,
    /// Where componentize-js is installed [default: $WASM_WORKERS_JS_TOOLCHAIN, else this
    /// source tree's `guest-js`].
    #[arg(long, value_name = "DIR")]
    toolchain: Option<PathBuf>,
}

/// Arguments of `build-py`.
#[derive(clap::Args, Debug)]
pub struct BuildPyArgs {
    /// The worker's module (`app.py`): it defines `class Handlers(Worker)`, with `Worker`
    /// from `worker_scope`. Modules beside it can be imported.
    module: PathBuf,
    /// Where to write the component (`.wasm`).
    #[arg(short, long)]
    output: PathBuf,
    /// Where componentize-py is installed (the directory holding `.venv`) [default:
    /// $WASM_WORKERS_PY_TOOLCHAIN, else this source tree's `guest-py`].
    #[arg(long, value_name = "DIR")]
    toolchain: Option<PathBuf>,
}

/// `build-js`.
pub fn build_js(args: BuildJsArgs) -> anyhow::Result<ExitCode> {
    let written = wasm_workers::scripts::build_js(&args.scripts, &args.output, args.toolchain.as_deref())?;
    let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
    eprintln!("built {}", names.join(", "));
    Ok(ExitCode::from(EXIT_OK))
}

/// `build-py`.
pub fn build_py(args: BuildPyArgs) -> anyhow::Result<ExitCode> {
    wasm_workers::scripts::build_py(&args.module, &args.output, args.toolchain.as_deref())?;
    eprintln!("built {} from {}", args.output.display(), args.module.display());
    Ok(ExitCode::from(EXIT_OK))
}
