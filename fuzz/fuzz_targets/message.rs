//! Arbitrary bytes as a message: a stdin line, or the data a guest posts in each codec.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wasm_workers_fuzz::message(data));
