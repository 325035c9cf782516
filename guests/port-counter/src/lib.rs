//! Counts the numbers that arrive on a port and checks their order, for the port-move tests.
//!
//! - `{"count-until": n}` with a port: from now on every number that arrives on the port is
//!   counted; the one that is `n - 1` makes it post `{"count", "first", "last", "in-order"}`
//!   to its parent and close.
//! - `"move"`: gives the port back to its parent, with what it counted so far as above, under
//!   `{"moved": …}`; the messages it has not read yet travel with the port.

use serde::Deserialize;
use serde_json::{json, Value};
use wasm_workers_guest::{close, export_worker, post, post_with, Port, Received, Transfer, Worker};

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Command {
    CountUntil(u64),
    Move,
}

#[derive(Default)]
struct Counter {
    port: Option<Port>,
    until: u64,
    count: u64,
    first: Option<u64>,
    last: Option<u64>,
    in_order: bool,
}

impl Counter {
    fn report(&self) -> Value {
        json!({ "count": self.count, "first": self.first, "last": self.last, "in-order": self.in_order })
    }

    fn arrived(&mut self, n: u64) {
        if self.first.is_none() {
            self.first = Some(n);
        }
        if self.last.is_some_and(|last| n != last + 1) {
            self.in_order = false;
        }
        self.last = Some(n);
        self.count += 1;
        if n + 1 == self.until {
            post(&self.report());
            close();
        }
    }
}

impl Worker for Counter {
    type Message = Received<Command>;

    fn on_message(&mut self, message: Received<Command>) {
        match message.data {
            Command::CountUntil(n) => {
                let Some(port) = message.ports.into_iter().next() else {
                    post(&json!({ "error": "count-until came without a port" }));
                    return close();
                };
                (self.until, self.in_order) = (n, true);
                port.on_message(|counter: &mut Self, n: u64| counter.arrived(n));
                self.port = Some(port);
            }
            Command::Move => match self.port.take() {
                Some(port) => post_with(&json!({ "moved": self.report() }), Transfer::new().port(&port))
                    .expect("the port is held here"),
                None => post(&json!({ "error": "nothing to move" })),
            },
        }
    }
}

export_worker!(Counter);
