//! The throughput benchmark's two sides in one process, alternated round by round: 1,000,000
//! small messages from the host program to the `counter` guest, then the same through a std
//! channel to a native thread, `ROUNDS` times (default 9). Each pair's ratio is taken seconds
//! apart at most, so that a noisy machine moves both sides alike; the medians come last. Each
//! side also prints the context switches the process made per 1,000 messages (voluntary +
//! involuntary, from `getrusage`): how often a thread parked, or was preempted.
//!
//! ```sh
//! cargo build --release -p wasm-workers-benches --example paired_throughput
//! target/release/examples/paired_throughput 9                 # unpinned
//! taskset -c 1 target/release/examples/paired_throughput 9    # both sides on one CPU
//! ```
//!
//! Pinned with `taskset`, the host sees one CPU (its workers do not spin), as in the
//! benchmark's pinned rows. `RUST_BACKTRACE` does not matter here: nothing traps.

use wasm_workers::{Host, WorkerOptions};
use wasm_workers_benches::{count_through_worker, load, measure, median, native_counter, take_refused};

const MESSAGES: u64 = 1_000_000;

fn main() {
    let rounds: usize = std::env::args().nth(1).map_or(9, |arg| arg.parse().expect("a number of rounds"));
    let host = Host::new().expect("the engine starts");
    let counter = load(&host, "counter");
    let mut worker = host.spawn(&counter, WorkerOptions::default()).expect("the counter starts");
    let counter_thread = native_counter();
    let (mut wasm, mut native, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        take_refused();
        let wasm_side = measure(MESSAGES, || count_through_worker(&mut worker, MESSAGES));
        let refused = take_refused();
        let native_side = measure(MESSAGES, || counter_thread.count(MESSAGES));
        let (w, n) = (1.0 / wasm_side.micros, 1.0 / native_side.micros);
        println!(
            "wasm {w:.2} M/s ({:.2} + {:.2} switches per 1,000), native {n:.2} M/s ({:.2} + {:.2}), \
             ratio {:.2}, {refused} posts refused",
            wasm_side.voluntary * 1e3,
            wasm_side.involuntary * 1e3,
            native_side.voluntary * 1e3,
            native_side.involuntary * 1e3,
            w / n
        );
        wasm.push(w);
        native.push(n);
        ratios.push(w / n);
    }
    println!(
        "median of {rounds}: wasm {:.2} M/s, native {:.2} M/s, ratio {:.2}",
        median(&mut wasm),
        median(&mut native),
        median(&mut ratios)
    );
}
