//! A task worker: `{"from": a, "to": b}` → the number of primes in `a..b`, by trial division.

use serde::Deserialize;
use wasm_workers_guest::{export_task_worker, TaskWorker};

#[derive(Deserialize)]
struct Range {
    from: u64,
    to: u64,
}

fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    if n % 2 == 0 {
        return n == 2;
    }
    let mut d = 3;
    while d * d <= n {
        if n % d == 0 {
            return false;
        }
        d += 2;
    }
    true
}

#[derive(Default)]
struct PrimesTask;

impl TaskWorker for PrimesTask {
    type Input = Range;
    type Output = u64;

    fn run(&mut self, range: Range) -> Result<u64, String> {
        Ok((range.from..range.to).filter(|&n| is_prime(n)).count() as u64)
    }
}

export_task_worker!(PrimesTask);
