//! `wasm-workers check` and `wasm-workers graph`: a manifest, checked.

use std::path::Path;

use wasm_workers::{Graph, Host, Manifest};

/// Reads and checks the manifest at `path`, loading its components.
///
/// # Errors
///
/// The manifest's first problem, with its file, line and key.
pub fn check(path: &Path, host: &Host) -> anyhow::Result<Graph> {
    Ok(Manifest::read(path)?.check(host)?)
}
