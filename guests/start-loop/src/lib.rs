//! A worker that never finishes starting: a static constructor (run by the component's start
//! function, while it is instantiated, before any handler) loops forever.

use wasm_workers_guest::{export_worker, Worker};

extern "C" fn spin_forever() {
    let mut n = 0u64;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

/// Runs at instantiation, from `__wasm_call_ctors`.
#[used]
#[link_section = ".init_array"]
static SPIN_AT_START: extern "C" fn() = spin_forever;

#[derive(Default)]
struct StartLoop;

impl Worker for StartLoop {
    type Message = serde_json::Value;

    fn on_message(&mut self, _: serde_json::Value) {}
}

export_worker!(StartLoop);
