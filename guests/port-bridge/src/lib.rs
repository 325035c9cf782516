//! Bridges its parent and a channel: at start it takes the port its graph handed it under the
//! label `peer`; every message from its parent goes out on the port, and every message that
//! arrives on the port goes to its parent. It closes when the other end of the port closes.
//! As the entry of a graph, it lets stdin and stdout talk to another worker or a shared one.

use serde_json::{json, Value};
use wasm_workers_guest::{close, export_worker, post, take_channel, Port, Worker};

#[derive(Default)]
struct Bridge {
    peer: Option<Port>,
}

impl Worker for Bridge {
    type Message = Value;

    fn on_start(&mut self) {
        self.peer = take_channel("peer");
        match &self.peer {
            Some(peer) => {
                peer.on_message(|_: &mut Self, message: Value| post(&message)).on_close(|_: &mut Self| close());
            }
            None => {
                post(&json!({ "error": "no channel labelled `peer` was handed to this worker" }));
                close();
            }
        }
    }

    fn on_message(&mut self, message: Value) {
        if let Some(peer) = &self.peer {
            let _ = peer.post(&message);
        }
    }
}

export_worker!(Bridge);
