//! Arbitrary bytes as a program of host calls run by a hostile guest; the host's invariants
//! must hold (see `wasm_workers_fuzz::host_calls`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wasm_workers_fuzz::host_calls(data));
