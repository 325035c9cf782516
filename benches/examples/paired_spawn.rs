//! The spawn benchmark's two sides in one process, alternated round by round: `SPAWNS`
//! times, spawn a `bounce` worker with the library's defaults (`Host::new()`), post it one
//! message and wait for the answer, then drop it; then the same `SPAWNS` times with a native
//! thread and two std channels; `ROUNDS` times (default 9). Each round prints the time from
//! spawn to first message on each side, their ratio, and the context switches the process
//! made per spawn (voluntary + involuntary, from `getrusage`); the medians come last.
//!
//! ```sh
//! cargo build --release -p wasm-workers-benches --example paired_spawn
//! target/release/examples/paired_spawn 9                 # unpinned
//! taskset -c 1 target/release/examples/paired_spawn 9    # everything on one CPU
//! ```
//!
//! `RUST_BACKTRACE` does not matter here: nothing traps.

use wasm_workers::{Codec, Host, Message};
use wasm_workers_benches::{alternate, first_answer, load, native_echo};

const SPAWNS: u64 = 2_000;

fn main() {
    let rounds: usize = std::env::args().nth(1).map_or(9, |arg| arg.parse().expect("a number of rounds"));
    let host = Host::new().expect("the engine starts");
    let bounce = load(&host, "bounce");
    alternate(
        rounds,
        SPAWNS,
        || {
            for _ in 0..SPAWNS {
                drop(first_answer(&host, &bounce, Message::new(Codec::Raw, vec![1])));
            }
        },
        || {
            for _ in 0..SPAWNS {
                let (to_thread, from_thread) = native_echo::<u8>();
                to_thread.send(1).expect("the thread runs");
                from_thread.recv().expect("the thread answers");
            }
        },
    );
}
