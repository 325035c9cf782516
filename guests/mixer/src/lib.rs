//! A worker for the conservation test: it exchanges messages with its parent and with peers
//! over ports, and passes ports on. Commands from the parent (JSON):
//!
//! - `"port"`, with ports transferred: keeps them, and starts receiving on them;
//! - `{"burst": n}`: posts `n` messages to the parent, and `n` on every port it holds;
//! - `"pass"`: hands its last port to the peer at the other end of its first port.
//!
//! Ports that arrive on a port are kept too. Refused posts (a full queue) are fine: the host
//! counts them.

use serde_json::{json, Value};
use wasm_workers_guest::{export_worker, post, Port, Received, Transfer, Worker};

#[derive(Default)]
struct Mixer {
    ports: Vec<Port>,
    received: u64,
}

impl Mixer {
    fn keep(&mut self, ports: Vec<Port>) {
        for port in ports {
            port.on_message(|this: &mut Mixer, message: Received<Value>| {
                this.received += 1;
                this.keep(message.ports);
            });
            self.ports.push(port);
        }
    }
}

impl Worker for Mixer {
    type Message = Received<Value>;

    fn on_message(&mut self, message: Received<Value>) {
        match &message.data {
            Value::String(command) if command == "port" => self.keep(message.ports),
            Value::String(command) if command == "pass" => {
                self.ports.retain(|port| !port.is_detached());
                if self.ports.len() >= 2 {
                    let passed = self.ports.pop().expect("two ports or more");
                    let _ = self.ports[0].post_with(&json!("passed"), Transfer::new().port(&passed));
                }
            }
            Value::Object(command) => {
                let n = command.get("burst").and_then(Value::as_u64).unwrap_or(0);
                self.ports.retain(|port| !port.is_detached());
                for i in 0..n {
                    post(&i);
                    for port in &self.ports {
                        let _ = port.post(&i);
                    }
                }
            }
            _ => {}
        }
    }
}

export_worker!(Mixer);
