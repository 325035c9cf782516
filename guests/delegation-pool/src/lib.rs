//! The delegation example (10.1.2.5), balanced: sent `{"n": N, "chunk": C}`, it splits `0..N`
//! into ranges of C numbers and counts the primes in them with `par_map` over a pool of
//! `primes_task` workers (one per processor), which hands a worker its next range as soon as
//! it answers one: the larger numbers cost more, and no worker waits for a slow one. Posts the
//! total and closes.

use serde::{Deserialize, Serialize};
use wasm_workers_guest::{close, export_worker, post, Pool, PoolOptions, TaskError, Worker};

#[derive(Deserialize)]
struct Job {
    n: u64,
    chunk: Option<u64>,
}

#[derive(Serialize)]
struct Range {
    from: u64,
    to: u64,
}

#[derive(Default)]
struct DelegationPool;

impl Worker for DelegationPool {
    type Message = Job;

    fn on_message(&mut self, job: Job) {
        let chunk = job.chunk.unwrap_or(50_000).max(1);
        let ranges: Vec<Range> =
            (0..job.n).step_by(chunk as usize).map(|from| Range { from, to: (from + chunk).min(job.n) }).collect();
        let pool = Pool::<Self>::new("primes_task.wasm", "primes", PoolOptions::default());
        pool.par_map(ranges, |_: &mut Self, counts: Vec<Result<u64, TaskError>>| {
            match counts.into_iter().collect::<Result<Vec<u64>, _>>() {
                Ok(counts) => post(&counts.iter().sum::<u64>()),
                Err(error) => panic!("a range could not be counted: {error}"),
            }
            close();
        });
    }
}

export_worker!(DelegationPool);
