//! Builds the bundled guests (the `guests/` workspace) for `wasm32-wasip2`, once per process,
//! for the host's tests and the benchmarks. A host-side helper that lives beside the guests.
//!
//! The guests get a target dir of their own (`target/guests`), so that building them from a
//! running `cargo test` or `cargo bench` never waits on that command's own lock.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The directory of the built guest components; the first call builds them.
///
/// # Panics
///
/// If cargo cannot be run or the build fails (for instance without the `wasm32-wasip2`
/// target): nothing that needs the guests can go on.
pub fn guests_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let guests = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("guest-build is inside guests/");
        let target = guests.parent().expect("guests/ is inside the repository").join("target").join("guests");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let output = Command::new(cargo)
            .args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
            .arg(guests.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .output()
            .expect("cargo can be run to build the guests");
        assert!(
            output.status.success(),
            "building the guests failed (is the wasm32-wasip2 target installed?):\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        target.join("wasm32-wasip2").join("release")
    })
}

/// The path of guest `name` (`echo`, `shared-hello`, ...). Cargo names a library's component
/// after the crate with `_` for `-` (`shared_hello.wasm`), a binary's as the crate.
pub fn guest(name: &str) -> PathBuf {
    let library = guests_dir().join(format!("{}.wasm", name.replace('-', "_")));
    if library.exists() {
        library
    } else {
        guests_dir().join(format!("{name}.wasm"))
    }
}

/// The directory where the bundle of the JavaScript worker scripts of `guests/js/<example>/`
/// is, each `NAME.js` as `NAME.wasm`; the first call for that content builds it with
/// `build(scripts, directory)` (`wasm_workers::scripts::build_js`).
///
/// Bundles are kept in `target/script-guests`, under a name that hashes every input (the
/// scripts, the JavaScript worker scope, the toolchain's lockfile, the WIT world) and
/// `fingerprint` (`wasm_workers::scripts::fingerprint`: what the building library has
/// compiled in), so a bundle is built again only when one of them changes. Concurrent builds of one bundle
/// (tests in several processes) each build into a directory of their own and keep the first
/// one finished.
///
/// # Panics
///
/// If the scripts cannot be read or the build fails: nothing that needs them can go on.
pub fn js_bundle(
    example: &str,
    fingerprint: u64,
    build: impl FnOnce(&[PathBuf], &Path) -> Result<(), String>,
) -> PathBuf {
    let root = repository();
    let dir = root.join("guests/js").join(example);
    let scripts = files_ending(&dir, "js");
    let mut inputs = scripts.clone();
    inputs.extend(
        ["guest-js/scope.js", "guest-js/structured-clone.js", "guest-js/package-lock.json", "wit/worker.wit"]
            .map(|p| root.join(p)),
    );
    built_once(&format!("js-{example}"), fingerprint, &inputs, |out| {
        std::fs::create_dir_all(out).map_err(|e| e.to_string())?;
        build(&scripts, out)
    })
}

/// The component built from the Python worker `guests/py/<name>/app.py`; the first call for
/// that content builds it with `build(module, component)` (`wasm_workers::scripts::build_py`),
/// kept as [`js_bundle`] keeps bundles.
///
/// # Panics
///
/// If the module cannot be read or the build fails.
pub fn py_guest(name: &str, fingerprint: u64, build: impl FnOnce(&Path, &Path) -> Result<(), String>) -> PathBuf {
    let root = repository();
    let dir = root.join("guests/py").join(name);
    let module = dir.join("app.py");
    // Every module beside it can be imported, so every one is an input.
    let mut inputs = files_ending(&dir, "py");
    inputs.extend(["guest-py/worker_scope.py", "guest-py/requirements.txt", "wit/worker.wit"].map(|p| root.join(p)));
    built_once(&format!("py-{name}"), fingerprint, &inputs, |out| {
        std::fs::create_dir_all(out).map_err(|e| e.to_string())?;
        build(&module, &out.join(format!("{name}.wasm")))
    })
    .join(format!("{name}.wasm"))
}

/// The files of `dir` with extension `ext`, sorted.
fn files_ending(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .expect("guests/guest-build is two levels down")
        .to_path_buf()
}

/// `target/script-guests/<what>-<hash of inputs>`, built by `build` into a fresh directory
/// unless it is there; once per process and content.
fn built_once(
    what: &str,
    fingerprint: u64,
    inputs: &[PathBuf],
    build: impl FnOnce(&Path) -> Result<(), String>,
) -> PathBuf {
    use std::collections::HashMap;
    use std::hash::{Hash, Hasher};
    use std::sync::Mutex;
    static BUILT: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);

    let mut hasher = std::hash::DefaultHasher::new();
    fingerprint.hash(&mut hasher);
    for input in inputs {
        input.file_name().hash(&mut hasher);
        std::fs::read(input).unwrap_or_else(|e| panic!("cannot read {}: {e}", input.display())).hash(&mut hasher);
    }
    let key = format!("{what}-{:016x}", hasher.finish());
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(dir) = built.get_or_insert_with(HashMap::new).get(&key) {
        return dir.clone();
    }
    let target = repository().join("target/script-guests");
    let dir = target.join(&key);
    if !dir.exists() {
        let fresh = target.join(format!(".{key}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&fresh);
        if let Err(why) = build(&fresh) {
            let _ = std::fs::remove_dir_all(&fresh);
            panic!("building {what} failed: {why}");
        }
        // Another process may have finished first: then its directory is kept.
        if std::fs::rename(&fresh, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&fresh);
            assert!(dir.exists(), "cannot move the built {what} into {}", dir.display());
        }
    }
    built.get_or_insert_with(HashMap::new).insert(key, dir.clone());
    dir
}
