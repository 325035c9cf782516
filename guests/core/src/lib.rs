//! The sub-worker of the delegation example (10.1.2.5): receives a range `{"from", "to"}`,
//! counts the primes in `from..to` by trial division, posts the count and closes.

use serde::Deserialize;
use wasm_workers_guest::{close, export_worker, post, Worker};

#[derive(Deserialize)]
struct Range {
    from: u64,
    to: u64,
}

#[derive(Default)]
struct Core;

impl Worker for Core {
    type Message = Range;

    fn on_message(&mut self, range: Range) {
        post(&prime_count::count(range.from, range.to));
        close();
    }
}

export_worker!(Core);
