//! Posts every message back to its parent, unchanged. After echoing the string `"close"` it
//! closes itself. A message that does not decode is answered with `{"message-error": reason}`.

use wasm_workers_guest::{close, export_worker, post, MessageError, Worker};

#[derive(Default)]
struct Echo;

impl Worker for Echo {
    type Message = serde_json::Value;

    fn on_message(&mut self, message: serde_json::Value) {
        post(&message);
        if message == "close" {
            close();
        }
    }

    fn on_message_error(&mut self, error: MessageError) {
        post(&serde_json::json!({ "message-error": error.reason }));
    }
}

export_worker!(Echo);
