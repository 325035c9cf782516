//! Counts the messages it receives; a message whose data is empty is the end marker, answered
//! with the count so far (as JSON). Reads no data: for throughput benchmarks.

use wasm_workers_guest::{export_worker, post, RawMessage, Worker};

#[derive(Default)]
struct Counter {
    count: u64,
}

impl Worker for Counter {
    type Message = RawMessage;

    fn on_message(&mut self, message: RawMessage) {
        if message.data.is_empty() {
            post(&self.count);
            self.count = 0;
        } else {
            self.count += 1;
        }
    }
}

export_worker!(Counter);
