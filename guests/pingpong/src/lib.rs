//! Measures worker-to-worker round trips: sent `n` (a number), it starts a child `bounce`
//! worker (once), sends it a small message, and each time it comes back sends it again, `n`
//! times in all; then posts `n` to its parent.

use wasm_workers_guest::{export_worker, post, Child, Codec, RawMessage, Worker};

#[derive(Default)]
struct PingPong {
    child: Option<Child<PingPong>>,
    left: u64,
    total: u64,
}

impl Worker for PingPong {
    type Message = u64;

    fn on_message(&mut self, rounds: u64) {
        if self.child.is_none() {
            let child = Child::spawn("bounce.wasm", Some("bounce"))
                .expect("bounce.wasm is beside this worker")
                .on_message(|this: &mut Self, message: RawMessage| {
                    this.left -= 1;
                    if this.left == 0 {
                        post(&this.total);
                    } else if let Some(child) = &this.child {
                        child.post_bytes(Codec::Raw, message.data).unwrap();
                    }
                });
            self.child = Some(child);
        }
        self.left = rounds.max(1);
        self.total = self.left;
        if let Some(child) = &self.child {
            child.post_bytes(Codec::Raw, vec![1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        }
    }
}

export_worker!(PingPong);
