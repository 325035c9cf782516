//! The fuzz targets' seeds (`fuzz/seeds/`), replayed through the targets' own bodies
//! (`fuzz/src/lib.rs`, included here) on stable Rust and without cargo-fuzz: a seed that makes
//! the manifest loader, the message paths or the host calls of a guest panic fails this test, naming the seed. Running the
//! fuzzers themselves is `cargo +nightly fuzz run` (README, "Fuzzing").

use std::path::{Path, PathBuf};

#[path = "../../fuzz/src/lib.rs"]
mod targets;

fn seeds(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.expect("a seed directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(files.len() >= 10, "{}: only {} seeds", dir.display(), files.len());
    files
}

/// Runs `body` on every seed of `target`, each on a thread with a main thread's stack (as
/// libFuzzer runs it), and fails naming every seed that panicked.
fn replay(target: &str, body: fn(&[u8])) {
    let failed: Vec<String> = seeds(target)
        .into_iter()
        .filter_map(|path| {
            let data = std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            let run = std::thread::Builder::new().stack_size(8 << 20).spawn(move || body(&data));
            let ok = run.expect("a thread for the seed").join().is_ok();
            (!ok).then(|| path.display().to_string())
        })
        .collect();
    assert!(failed.is_empty(), "{target}: these seeds panicked (see above): {failed:?}");
}

#[test]
fn manifest_seeds_are_errors_or_manifests_never_panics() {
    replay("manifest", targets::manifest);
}

#[test]
fn message_seeds_are_errors_or_messages_never_panics() {
    replay("message", targets::message);
}

#[test]
fn host_call_seeds_keep_the_hosts_invariants() {
    replay("host-calls", targets::host_calls);
}

/// Random programs of host calls, from a fixed seed, as the fuzzer would start: each must keep
/// the host's invariants (accounting exact, charges released, budget never passed).
#[test]
fn random_programs_of_host_calls_keep_the_hosts_invariants() {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    for _ in 0..40 {
        let len = (next() % 800) as usize;
        let program: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        targets::host_calls(&program);
    }
}

#[test]
fn the_example_graphs_parse_and_validate() {
    // Their copies are seeds of `manifest`; the originals must stay valid manifests.
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../graphs");
    let mut count = 0;
    for entry in std::fs::read_dir(&examples).expect("graphs/") {
        let path = entry.expect("an entry of graphs/").path();
        if path.extension().is_some_and(|ext| ext == "toml") {
            let manifest = wasm_workers::Manifest::read(&path).unwrap_or_else(|error| panic!("{error}"));
            manifest.validate().unwrap_or_else(|error| panic!("{error}"));
            targets::manifest(&std::fs::read(&path).expect("the example"));
            count += 1;
        }
    }
    assert!(count >= 5, "only {count} example graphs");
}
