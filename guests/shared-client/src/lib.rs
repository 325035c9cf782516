//! Connects to a shared worker and passes up what it says, for the shared-worker tests.
//! Sent `{"location": L, "name": N}`, it connects to the shared worker `N` running `L` and
//! posts `{"shared": m}` to its parent for every message `m` that arrives on the connection;
//! `{"error": why}` if it cannot connect. Sent `"close"`, it closes.

use serde::Deserialize;
use serde_json::{json, Value};
use wasm_workers_guest::{close, export_worker, post, Port, SharedWorker, Worker};

#[derive(Deserialize)]
#[serde(untagged)]
enum Command {
    Connect { location: String, name: String },
    Word(String),
}

#[derive(Default)]
struct Client {
    port: Option<Port>,
}

impl Worker for Client {
    type Message = Command;

    fn on_message(&mut self, command: Command) {
        match command {
            Command::Connect { location, name } => match SharedWorker::connect(&location, &name) {
                Ok(port) => {
                    port.on_message(|_: &mut Self, message: Value| post(&json!({ "shared": message })));
                    self.port = Some(port);
                }
                Err(error) => post(&json!({ "error": error })),
            },
            Command::Word(word) if word == "close" => close(),
            Command::Word(other) => post(&json!({ "unknown": other })),
        }
    }
}

export_worker!(Client);
