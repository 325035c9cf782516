//! The sub-worker of the delegation example (10.1.2.5): receives a range `{"from", "to"}`,
//! counts the primes in `from..to` by trial division, posts the count and closes.

use serde::Deserialize;
use wasm_workers_guest::{close, export_worker, post, Worker};

#[derive(Deserialize)]
struct Range {
    from: u64,
    to: u64,
}

#[derive(Default)]
struct Core;

/// Whether `n` is prime, by trial division by 2 and the odd numbers up to its square root.
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

impl Worker for Core {
    type Message = Range;

    fn on_message(&mut self, range: Range) {
        let count = (range.from..range.to).filter(|&n| is_prime(n)).count() as u64;
        post(&count);
        close();
    }
}

export_worker!(Core);
