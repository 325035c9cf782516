//! A slow receiver, for the backpressure tests: for each message `{"work": N}` it counts the
//! primes below N, and answers nothing.

use serde::Deserialize;
use wasm_workers_guest::{export_worker, Worker};

#[derive(Deserialize)]
struct Work {
    work: u64,
}

#[derive(Default)]
struct Sink {
    primes: u64,
}

impl Worker for Sink {
    type Message = Work;

    fn on_message(&mut self, work: Work) {
        self.primes += (2..work.work).filter(|&n| (2..n).take_while(|d| d * d <= n).all(|d| n % d != 0)).count() as u64;
    }
}

export_worker!(Sink);
