//! Worker scripts in other languages: JavaScript written for browsers, and Python, built into
//! worker components with componentize-js and componentize-py, over this host's worker
//! scopes for them (`guest-js/scope.js`, `guest-py/worker_scope.py`).
//!
//! The scopes and the WIT world are the ones this crate was built with (they are compiled
//! in); only the toolchains come from outside: Node.js with the npm packages pinned by
//! `guest-js/package-lock.json`, and componentize-py pinned (with hashes) by
//! `guest-py/requirements.txt`.
//!
//! ```no_run
//! # fn main() -> Result<(), wasm_workers::BuildError> {
//! // `worker.wasm` runs `worker.js`; its `new Worker('core.js')` starts `core.wasm`, the
//! // same component under another name.
//! let built = wasm_workers::scripts::build_js(&["worker.js".into(), "core.js".into()], "out".as_ref(), None)?;
//! assert_eq!(built.len(), 2);
//! # Ok(())
//! # }
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::BuildError;

/// The JavaScript worker scope, and the structured-clone codec it uses.
const SCOPE_JS: &str = include_str!("../../guest-js/scope.js");
const STRUCTURED_CLONE_JS: &str = include_str!("../../guest-js/structured-clone.js");
/// The Python worker scope.
const WORKER_SCOPE_PY: &str = include_str!("../../guest-py/worker_scope.py");
const WORLD_WIT: &str = include_str!("../../wit/worker.wit");

/// The environment variable naming the directory where componentize-js is installed (a
/// directory with `node_modules/.bin/componentize-js`).
pub const JS_TOOLCHAIN_ENV: &str = "WASM_WORKERS_JS_TOOLCHAIN";

/// The environment variable naming the directory where componentize-py is installed (the
/// directory holding its virtual environment, `.venv/bin/componentize-py`).
pub const PY_TOOLCHAIN_ENV: &str = "WASM_WORKERS_PY_TOOLCHAIN";

/// The toolchain directory: `given`, else named by `env`, else this source tree's `default`.
fn toolchain(given: Option<&Path>, env: &str, default: &str) -> PathBuf {
    given
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os(env).filter(|v| !v.is_empty()).map(PathBuf::from))
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(default))
}

/// Builds worker scripts (classic scripts, as a browser's `new Worker(url)` runs them) into
/// one component with componentize-js, and returns the files written.
///
/// With one script and an `output` ending in `.wasm`, that is the file written. Otherwise
/// `output` is a directory that gets `NAME.wasm` for each `NAME.js`: one component,
/// hard-linked under every name, so that a host loads and compiles it once. A worker runs
/// the script named like the file it was started from, or the bundle's only script; a
/// script's `new Worker('x.js')` starts `x.wasm`, and `importScripts('x.js')` runs the
/// bundle's `x.js`.
///
/// `toolchain` is where componentize-js is installed; by default [`JS_TOOLCHAIN_ENV`], else
/// this source tree's `guest-js`.
///
/// # Errors
///
/// [`BuildError`]: Node.js or componentize-js missing (with how to install it), a script
/// that cannot be read or has a syntax error (with its file, line and column), two scripts
/// of one name, or componentize-js failing (with what it said).
pub fn build_js(scripts: &[PathBuf], output: &Path, toolchain: Option<&Path>) -> Result<Vec<PathBuf>, BuildError> {
    let toolchain = self::toolchain(toolchain, JS_TOOLCHAIN_ENV, "guest-js");
    let componentize = toolchain.join("node_modules/.bin/componentize-js");
    check_node()?;
    if !componentize.exists() {
        return Err(BuildError::Toolchain {
            tool: "componentize-js",
            hint: format!(
                "it is not installed in {dir}: run `npm ci --prefix {dir}` (or name another directory)",
                dir = toolchain.display()
            ),
        });
    }
    if scripts.is_empty() {
        return Err(BuildError::Input { path: output.to_path_buf(), cause: "no script to build".into() });
    }

    // Each script, by the stem its component is named after.
    let mut entry = String::from("import { addScript, handlers } from './scope.js';\n");
    let mut stems = Vec::new();
    for script in scripts {
        let source = std::fs::read_to_string(script)
            .map_err(|error| BuildError::Input { path: script.clone(), cause: error.to_string() })?;
        check_syntax(script)?;
        let filename = script.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let stem = script.file_stem().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if stems.contains(&stem) {
            return Err(BuildError::Input {
                path: script.clone(),
                cause: format!("another script is named `{stem}`: a bundle runs each by its name"),
            });
        }
        let quote = |text: &str| serde_json::to_string(text).expect("a string is JSON");
        entry.push_str(&format!("addScript({}, {}, {});\n", quote(&stem), quote(&filename), quote(&source)));
        stems.push(stem);
    }
    entry.push_str("export { handlers };\n");

    let work = staged(&[
        ("wit/worker.wit", WORLD_WIT),
        ("scope.js", SCOPE_JS),
        ("structured-clone.js", STRUCTURED_CLONE_JS),
        ("entry.js", &entry),
    ])?;
    let built = work.path().join("bundle.wasm");
    let mut command = Command::new(&componentize);
    command
        .current_dir(work.path())
        .args(["entry.js", "--wit", "wit", "--world-name", "worker", "--disable", "http", "fetch-event", "--out"])
        .arg(&built);
    run("componentize-js", command)?;

    let single = scripts.len() == 1 && output.extension().is_some_and(|e| e == "wasm");
    if single {
        replace(output, |to| std::fs::copy(&built, to).map(drop))?;
        return Ok(vec![output.to_path_buf()]);
    }
    std::fs::create_dir_all(output).map_err(|source| BuildError::Io { path: output.to_path_buf(), source })?;
    let first = output.join(format!("{}.wasm", stems[0]));
    replace(&first, |to| std::fs::copy(&built, to).map(drop))?;
    let mut written = vec![first.clone()];
    for stem in &stems[1..] {
        let to = output.join(format!("{stem}.wasm"));
        // One file under every name: loaded once, compiled once.
        replace(&to, |to| std::fs::hard_link(&first, to).or_else(|_| std::fs::copy(&first, to).map(drop)))?;
        written.push(to);
    }
    Ok(written)
}

/// Builds a Python worker module (`app.py`, defining `class Handlers(Worker)` with `Worker`
/// from `worker_scope`) into a component at `output` with componentize-py. Modules beside
/// it can be imported.
///
/// `toolchain` is where componentize-py is installed (the directory holding `.venv`); by
/// default [`PY_TOOLCHAIN_ENV`], else this source tree's `guest-py`.
///
/// # Errors
///
/// [`BuildError`]: componentize-py missing (with how to install it), a module that cannot
/// be read, or componentize-py failing (with what it said: a syntax error among others).
pub fn build_py(module: &Path, output: &Path, toolchain: Option<&Path>) -> Result<(), BuildError> {
    let toolchain = self::toolchain(toolchain, PY_TOOLCHAIN_ENV, "guest-py");
    let componentize = toolchain.join(".venv/bin/componentize-py");
    if !componentize.exists() {
        return Err(BuildError::Toolchain {
            tool: "componentize-py",
            hint: format!(
                "it is not installed in {dir}: run `python3 -m venv {dir}/.venv && {dir}/.venv/bin/pip install \
                 --require-hashes --only-binary :all: -r {dir}/requirements.txt` (or name another directory)",
                dir = toolchain.display()
            ),
        });
    }
    let name = module.file_stem().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if !module.is_file() || name.is_empty() {
        return Err(BuildError::Input { path: module.to_path_buf(), cause: "not a readable file".into() });
    }
    let dir = match module.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let work = staged(&[("wit/worker.wit", WORLD_WIT), ("scope/worker_scope.py", WORKER_SCOPE_PY)])?;
    let built = work.path().join("worker.wasm");
    let mut command = Command::new(&componentize);
    command
        .arg("--quiet")
        .arg("-d")
        .arg(work.path().join("wit"))
        .args(["-w", "worker", "componentize", &name, "-p"])
        .arg(&dir)
        .arg("-p")
        .arg(work.path().join("scope"))
        .arg("-o")
        .arg(&built);
    run("componentize-py", command)?;
    replace(output, |to| std::fs::copy(&built, to).map(drop))
}

/// A fresh temporary directory holding `files` (relative path, text), for a toolchain to build in.
fn staged(files: &[(&str, &str)]) -> Result<tempfile::TempDir, BuildError> {
    let work = tempfile::tempdir().map_err(|source| BuildError::Io { path: std::env::temp_dir(), source })?;
    for (name, text) in files {
        let path = work.path().join(name);
        let dir = path.parent().unwrap_or(work.path());
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&path, text))
            .map_err(|source| BuildError::Io { path, source })?;
    }
    Ok(work)
}

/// Runs a toolchain's command; what it said goes into the error if it fails.
fn run(tool: &'static str, mut command: Command) -> Result<(), BuildError> {
    let out =
        command.output().map_err(|error| BuildError::Toolchain { tool, hint: format!("cannot run it: {error}") })?;
    if !out.status.success() {
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        return Err(BuildError::Failed { tool, status: out.status.to_string(), output: said.trim().to_string() });
    }
    Ok(())
}

/// Writes `to` afresh with `write`: to a temporary name beside it, then renamed over it, so
/// that a host loading it meanwhile reads the old file or the new one, never half of one,
/// and an old hard link is not written through.
fn replace(to: &Path, write: impl FnOnce(&Path) -> std::io::Result<()>) -> Result<(), BuildError> {
    let name = to.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temporary = to.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&temporary);
    let written = write(&temporary).and_then(|()| std::fs::rename(&temporary, to));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written.map_err(|source| BuildError::Io { path: to.to_path_buf(), source })
}

/// A fingerprint of what this crate builds worker scripts with (the scopes, the codec, the
/// WIT world, the way the toolchains are called): two builds of the same scripts with the
/// same fingerprint and toolchain give the same component. For caches of built scripts.
pub fn fingerprint() -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    (SCOPE_JS, STRUCTURED_CLONE_JS, WORKER_SCOPE_PY, WORLD_WIT, BUILD_RECIPE).hash(&mut hasher);
    hasher.finish()
}

/// Bumped whenever the way a bundle is assembled or a toolchain is called changes.
const BUILD_RECIPE: u32 = 1;

fn check_node() -> Result<(), BuildError> {
    let hint = |why: String| BuildError::Toolchain {
        tool: "node",
        hint: format!("{why}: building JavaScript workers needs Node.js 18 or later on PATH"),
    };
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(hint(format!("`node --version` failed ({})", out.status))),
        Err(error) => Err(hint(format!("cannot run `node` ({error})"))),
    }
}

/// Parses the script as a classic script, as a browser's worker would: a syntax error is
/// reported with its file, line and column, and nothing is built.
fn check_syntax(script: &Path) -> Result<(), BuildError> {
    // The error's stack starts `file:line`, the line's text, and a caret under the column.
    const CHECK: &str = "const f = process.argv[process.argv.length - 1]; \
        try { new (require('vm').Script)(require('fs').readFileSync(f, 'utf8'), { filename: f }); } \
        catch (e) { const lines = String(e.stack).split('\\n'); const at = /^(.*):(\\d+)$/.exec(lines[0]); \
        const col = lines[2] === undefined ? -1 : lines[2].indexOf('^'); \
        console.error((at ? `${at[1]}:${at[2]}` + (col >= 0 ? `:${col + 1}` : '') + ': ' : '') + e.name + ': ' + e.message); \
        process.exit(1); }";
    let out = Command::new("node")
        .args(["-e", CHECK, "--"])
        .arg(script)
        .output()
        .map_err(|error| BuildError::Toolchain { tool: "node", hint: format!("cannot run it: {error}") })?;
    if !out.status.success() {
        return Err(BuildError::Syntax {
            script: script.to_path_buf(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}
