//! Counts the messages it receives in order: message `i` since the last end marker must hold
//! `i` as 8 little-endian bytes. A message whose data is empty is the end marker, answered
//! with the count so far (as JSON): the number of messages sent only if every one arrived, in
//! order. For the throughput benchmark.

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
        } else if message.data.get(..8).and_then(|bytes| bytes.try_into().ok()).map(u64::from_le_bytes)
            == Some(self.count)
        {
            self.count += 1;
        }
    }
}

export_worker!(Counter);
