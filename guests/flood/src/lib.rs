//! Floods a child with messages, for the backpressure tests: sent `{"location": L, "n": N,
//! "message": M}`, it spawns the child at L, posts it M N times without waiting, posts
//! `{"sent": S, "full": F}` to its parent (how many the child's queue took, and how many were
//! refused as `queue-full`), and closes.

use serde::Deserialize;
use serde_json::{json, Value};
use wasm_workers_guest::{close, export_worker, post, Child, PostError, Worker};

#[derive(Deserialize)]
struct Job {
    location: String,
    n: u64,
    message: Value,
}

#[derive(Default)]
struct Flood;

impl Worker for Flood {
    type Message = Job;

    fn on_message(&mut self, job: Job) {
        let child: Child<Flood> = Child::spawn(&job.location, Some("sink"))
            .unwrap_or_else(|error| panic!("cannot start `{}`: {error}", job.location));
        let (mut sent, mut full) = (0u64, 0u64);
        for _ in 0..job.n {
            match child.try_post(&job.message) {
                Ok(()) => sent += 1,
                Err(PostError::QueueFull) => full += 1,
                Err(error) => panic!("cannot post: {error:?}"),
            }
        }
        post(&json!({ "sent": sent, "full": full }));
        close();
    }
}

export_worker!(Flood);
