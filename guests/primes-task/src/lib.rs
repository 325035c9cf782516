//! A task worker: `{"from": a, "to": b}` → the number of primes in `a..b`, by trial division.

use serde::Deserialize;
use wasm_workers_guest::{export_task_worker, TaskWorker};

#[derive(Deserialize)]
struct Range {
    from: u64,
    to: u64,
}

#[derive(Default)]
struct PrimesTask;

impl TaskWorker for PrimesTask {
    type Input = Range;
    type Output = u64;

    fn run(&mut self, range: Range) -> Result<u64, String> {
        Ok(prime_count::count(range.from, range.to))
    }
}

export_task_worker!(PrimesTask);
