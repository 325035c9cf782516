//! Arbitrary bytes as a worker graph's manifest: `Manifest::parse`, then `validate`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wasm_workers_fuzz::manifest(data));
