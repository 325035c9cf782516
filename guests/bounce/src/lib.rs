//! Posts every message back to its parent as it came: the same codec and bytes, and the same
//! ports and buffers, transferred (never copied). For benchmarks of round trips and transfers.

use wasm_workers_guest::{export_worker, post_raw, RawMessage, Transfer, Worker};

#[derive(Default)]
struct Bounce;

impl Worker for Bounce {
    type Message = RawMessage;

    fn on_message(&mut self, message: RawMessage) {
        let transfer = message.ports.iter().fold(Transfer::new(), |t, p| t.port(p));
        let transfer = message.buffers.iter().fold(transfer, |t, b| t.buffer(b));
        post_raw(message.codec, message.data, transfer).expect("just received, so held here");
    }
}

export_worker!(Bounce);
