//! The chapter's shared-worker demos (10.1.2.3): each client that connects is greeted with
//! `"Hello World! You are connection #N"`, and every `"ping"` it sends is answered `"pong"`.

use serde_json::Value;
use wasm_workers_guest::{export_worker, Port, Worker};

#[derive(Default)]
struct SharedHello {
    count: u32,
}

impl Worker for SharedHello {
    type Message = Value;

    fn on_message(&mut self, _: Value) {}

    fn on_connect(&mut self, port: Port) {
        self.count += 1;
        let _ = port.post(&format!("Hello World! You are connection #{}", self.count));
        let reply = port.clone();
        port.on_message(move |_: &mut Self, message: String| {
            if message == "ping" {
                let _ = reply.post(&"pong"); // not the message's own port: this one
            }
        });
    }
}

export_worker!(SharedHello);
