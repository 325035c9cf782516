//! What the benchmarks share: the bundled guests (built on first use), a host, waiting for a
//! worker's answer, posting under back-pressure, and the native-threads baselines each wasm figure is compared with.

use std::sync::mpsc;

use wasm_workers::{Component, DropReason, Host, Message, WorkerEvent, WorkerHandle};

pub use guest_build::guests_dir;

/// Loads guest `name` on `host`.
pub fn load(host: &Host, name: &str) -> Component {
    host.load(guest_build::guest(name)).expect("the guest loads")
}

/// The next message from `worker`, blocking.
///
/// # Panics
///
/// If the worker ends or fails instead: a benchmark with a broken guest measures nothing.
pub fn answer(worker: &mut WorkerHandle) -> Message {
    match worker.recv_blocking() {
        Some(WorkerEvent::Message(message)) => message,
        other => panic!("expected a message from `{}`, got {other:?}", worker.name()),
    }
}

/// Posts `message`, waiting while the worker's queue is full (its limit bounds how far a
/// sender may run ahead: back-pressure, where the native baseline's channel is unbounded).
///
/// # Panics
///
/// If the worker refuses the message for any other reason (it ended, or the message is too
/// large): a benchmark that loses messages measures nothing.
pub fn post_waiting(worker: &WorkerHandle, mut message: Message) {
    loop {
        match worker.post_message(message) {
            Ok(()) => return,
            Err(error) if error.reason == DropReason::QueueFull => {
                message = error.message;
                std::thread::yield_now();
            }
            Err(error) => panic!("{error}"),
        }
    }
}

pub use prime_count::is_prime;

/// Native baseline of the delegation example: `k` threads, equal ranges of `0..n`, results
/// over a channel; thread spawning included.
pub fn native_fanout(n: u64, k: u64) -> u64 {
    let (tx, rx) = mpsc::channel();
    for i in 0..k {
        let tx = tx.clone();
        let (from, to) = (n * i / k, n * (i + 1) / k);
        std::thread::spawn(move || {
            let _ = tx.send((from..to).filter(|&x| is_prime(x)).count() as u64);
        });
    }
    drop(tx);
    rx.iter().sum()
}

/// Native baseline of the balanced delegation: `threads` threads take chunks of `chunk`
/// numbers from a shared counter until none is left.
pub fn native_balanced(n: u64, threads: u64, chunk: u64) -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    let next = std::sync::Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let next = next.clone();
            std::thread::spawn(move || {
                let mut count = 0;
                loop {
                    let from = next.fetch_add(chunk, Ordering::Relaxed);
                    if from >= n {
                        return count;
                    }
                    count += (from..(from + chunk).min(n)).filter(|&x| is_prime(x)).count() as u64;
                }
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().expect("no panic")).sum()
}

/// The resident memory of this process, in bytes (Linux).
pub fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}
