//! The throughput benchmark's loop without criterion, for profilers: posts 1,000,000 small
//! messages to the `counter` guest, ten times, and prints each round's time.
//!
//! ```sh
//! cargo build --release -p wasm-workers-benches --example profile_throughput
//! WASM_WORKERS_PERFMAP=1 perf record -e cpu-clock -g target/release/examples/profile_throughput
//! perf report --sort pid,dso,sym
//! ```
//!
//! `WASM_WORKERS_PERFMAP` makes the engine name the guest's functions for `perf`.

use std::time::Instant;

use wasm_workers::{Host, WorkerOptions};
use wasm_workers_benches::{count_through_worker, load};

const MESSAGES: u64 = 1_000_000;

fn main() {
    let host = Host::new().expect("the engine starts");
    let counter = load(&host, "counter");
    let mut worker = host.spawn(&counter, WorkerOptions::default()).expect("the counter starts");
    for _ in 0..10 {
        let start = Instant::now();
        count_through_worker(&mut worker, MESSAGES);
        let elapsed = start.elapsed();
        println!("{MESSAGES} messages in {elapsed:?}: {:.2} M msg/s", MESSAGES as f64 / elapsed.as_secs_f64() / 1e6);
    }
}
