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
