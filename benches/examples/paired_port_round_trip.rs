//! The port round trip's two sides in one process, alternated round by round: `ROUND_TRIPS`
//! round trips between two `port-pingpong` workers over a `MessageChannel`, then as many
//! between two native threads over two std channels, `ROUNDS` times (default 9). Each round
//! prints the time of one round trip on each side, their ratio, and the context switches the
//! whole process made per round trip (voluntary + involuntary, from `getrusage`), which is
//! where a pinned round trip's time goes; the medians come last.
//!
//! ```sh
//! cargo build --release -p wasm-workers-benches --example paired_port_round_trip
//! taskset -c 1 target/release/examples/paired_port_round_trip 9   # both workers on one CPU
//! target/release/examples/paired_port_round_trip 9                # unpinned
//! ```
//!
//! Pinned with `taskset`, the host sees one CPU (its workers do not spin), as in the
//! benchmark's pinned rows. `RUST_BACKTRACE` does not matter here: nothing traps.

use std::sync::mpsc;

use wasm_workers::{channel, Host, Message, WorkerOptions};
use wasm_workers_benches::{alternate, answer, load};

const ROUND_TRIPS: u64 = 100_000;

fn main() {
    let rounds: usize = std::env::args().nth(1).map_or(9, |arg| arg.parse().expect("a number of rounds"));
    let host = Host::new().expect("the engine starts");
    let component = load(&host, "port-pingpong");
    let mut ping = host.spawn(&component, WorkerOptions::named("ping")).expect("ping starts");
    let echo = host.spawn(&component, WorkerOptions::named("echo")).expect("echo starts");
    let (a, b) = channel();
    ping.post_message(Message::json(&"ping").unwrap().with_port(a)).expect("ping takes its port");
    echo.post_message(Message::json(&"echo").unwrap().with_port(b)).expect("echo takes its port");

    let (to_echo, from_ping) = mpsc::channel::<[u8; 8]>();
    let (to_ping, from_echo) = mpsc::channel::<[u8; 8]>();
    std::thread::spawn(move || {
        for message in from_ping {
            let _ = to_ping.send(message);
        }
    });

    alternate(
        rounds,
        ROUND_TRIPS,
        || {
            ping.post_message(Message::json(&ROUND_TRIPS).unwrap()).expect("ping takes a count");
            answer(&mut ping);
        },
        || {
            for _ in 0..ROUND_TRIPS {
                to_echo.send([1, 2, 3, 4, 5, 6, 7, 8]).expect("the echo thread runs");
                from_echo.recv().expect("the echo thread answers");
            }
        },
    );
}
