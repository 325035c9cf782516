//! The chapter's delegation example (10.1.2.5): a worker farms a computation out to
//! sub-workers. Sent `{"n": N, "k": K}`, it splits `0..N` into K equal ranges, gives each to a
//! `core` sub-worker, adds up the prime counts they report, posts the total and closes.
//! K defaults to the number of processors (`hardware_concurrency`).

use serde::{Deserialize, Serialize};
use wasm_workers_guest::{close, export_worker, hardware_concurrency, post, Child, ErrorEvent, Worker};

#[derive(Deserialize)]
struct Job {
    n: u64,
    k: Option<u64>,
}

#[derive(Serialize)]
struct Range {
    from: u64,
    to: u64,
}

#[derive(Default)]
struct Delegation {
    pending: u64,
    total: u64,
}

impl Delegation {
    fn report(&mut self, count: u64) {
        self.total += count;
        self.pending -= 1;
        if self.pending == 0 {
            post(&self.total);
            close();
        }
    }
}

impl Worker for Delegation {
    type Message = Job;

    fn on_message(&mut self, job: Job) {
        let k = job.k.unwrap_or(hardware_concurrency() as u64).max(1);
        self.pending += k;
        for i in 0..k {
            let range = Range { from: job.n * i / k, to: job.n * (i + 1) / k };
            let core = Child::spawn("core.wasm", Some(&format!("core-{i}")))
                .unwrap_or_else(|e| panic!("cannot start a sub-worker: {e}"))
                .on_message(|this: &mut Self, count: u64| this.report(count))
                .on_error(|_: &mut Self, error: ErrorEvent| panic!("a sub-worker failed: {error}"));
            core.post(&range);
        }
    }
}

export_worker!(Delegation);
