//! Measures round trips on a message channel between two workers. Its first message is a
//! role, `"echo"` or `"ping"`, and carries one end of a channel:
//!
//! - an echo posts every message that arrives on the port back on it, as it came;
//! - a ping keeps the port; each later message `n` (a number) makes `n` round trips on it (a
//!   small message out, its echo back, out again), then it posts `n` to its parent.

use wasm_workers_guest::{export_worker, post, Codec, Port, RawMessage, Worker};

#[derive(Default)]
struct PortPingPong {
    port: Option<Port>,
    left: u64,
    total: u64,
}

impl PortPingPong {
    fn send(&self) {
        if let Some(port) = &self.port {
            port.post_bytes(Codec::Raw, vec![1, 2, 3, 4, 5, 6, 7, 8]).expect("the echo keeps up");
        }
    }
}

impl Worker for PortPingPong {
    type Message = RawMessage;

    fn on_message(&mut self, mut message: RawMessage) {
        if self.port.is_none() {
            let role: String = serde_json::from_slice(&message.data).expect("the first message is a role");
            let port = message.ports.pop().expect("the first message carries a port");
            match role.as_str() {
                "echo" => {
                    port.on_message(|this: &mut Self, echo: RawMessage| {
                        if let Some(port) = &this.port {
                            port.post_bytes(echo.codec, echo.data).expect("the ping keeps up");
                        }
                    });
                }
                _ => {
                    port.on_message(|this: &mut Self, _: RawMessage| {
                        this.left -= 1;
                        if this.left == 0 {
                            post(&this.total);
                        } else {
                            this.send();
                        }
                    });
                }
            }
            self.port = Some(port);
            return;
        }
        let rounds: u64 = serde_json::from_slice(&message.data).expect("a number of round trips");
        self.left = rounds.max(1);
        self.total = self.left;
        self.send();
    }
}

export_worker!(PortPingPong);
