//! The chapter's first example (10.1.2.1, "A background number-crunching worker"): search for
//! prime numbers and post each one found. The chapter's worker searches forever; this one
//! stops at the limit it is sent (`{"limit": N}`), then closes.

use serde::Deserialize;
use wasm_workers_guest::{close, export_worker, post, Worker};

#[derive(Deserialize)]
struct Search {
    limit: u64,
}

#[derive(Default)]
struct Primes;

impl Worker for Primes {
    type Message = Search;

    fn on_message(&mut self, search: Search) {
        // The chapter's algorithm: trial division by every number below the candidate's root.
        let mut n = 1;
        'search: while n < search.limit {
            n += 1;
            let mut i = 2;
            while i * i <= n {
                if n % i == 0 {
                    continue 'search;
                }
                i += 1;
            }
            // Found a prime!
            post(&n);
        }
        close();
    }
}

export_worker!(Primes);
