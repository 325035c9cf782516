//! Passes ports and buffers down a chain of sub-workers and back, for the transfer tests.
//!
//! - `{"forward": n}` with ports and buffers: if `n > 0`, spawns a child relay and passes the
//!   message on with `{"forward": n - 1}`, transferring everything; whatever a child posts is
//!   passed up to this worker's parent, transfers included. At `n == 0` (the end of the
//!   chain) each port is started and every message arriving on it is posted back on it,
//!   `{"port-closed": id}` is posted up when its other end closes, and each buffer is answered
//!   with `{"buffer-head": [first 16 bytes], "len": n}` after writing 0xAB at offset 0, with
//!   the buffer transferred back.
//! - `{"misuse": "port" | "buffer"}`: transfers a port (or buffer) to the parent, then tries to
//!   use it again through the SDK, and posts the refusal: `{"refused": error}`.
//! - `{"misuse": "raw-port"}`: the same through the raw handle, which the host refuses by
//!   trapping this worker.
//! - `"report"` with ports: each message on a port is posted up as `{"port-message": m}`, then
//!   `{"port-closed": id}` when its other end closes.
//! - `{"create-buffer": n}`: answers `{"created": n}` or `{"error": why}`;
//!   `{"spawn-create": n}` asks a child relay to do it and passes its answer up.

use serde::Deserialize;
use serde_json::{json, Value};
use wasm_workers_guest::__private::wasm_workers::worker::{scope, types};
use wasm_workers_guest::{
    export_worker, post, post_with, Buffer, Child, MessageChannel, Port, Received, Transfer, Worker,
};

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Command {
    Forward(u32),
    Misuse(String),
    /// At the end of the chain, report port messages to the parent instead of echoing them.
    Report,
    /// Create a buffer of this many bytes and say whether that worked.
    CreateBuffer(u64),
    /// Have a child relay create a buffer of this many bytes, and pass its answer up.
    SpawnCreate(u64),
}

#[derive(Default)]
struct Relay {
    children: Vec<Child<Relay>>,
}

fn transfer_all(ports: &[Port], buffers: &[Buffer]) -> Transfer {
    let transfer = ports.iter().fold(Transfer::new(), |t, p| t.port(p));
    buffers.iter().fold(transfer, |t, b| t.buffer(b))
}

impl Relay {
    fn end_of_chain(&mut self, ports: Vec<Port>, buffers: Vec<Buffer>) {
        for port in ports {
            let echo = port.clone();
            let id = port.id();
            port.on_message(move |_: &mut Self, value: Value| {
                echo.post(&value).expect("the port is held here");
            })
            .on_close(move |_: &mut Self| post(&json!({ "port-closed": id })));
        }
        for buffer in buffers {
            let head = buffer.read(0, 16.min(buffer.len())).expect("the buffer is held here");
            buffer.write(0, &[0xAB]).expect("the buffer is held here");
            post_with(&json!({ "buffer-head": head, "len": buffer.len() }), Transfer::new().buffer(&buffer))
                .expect("the buffer is held here");
        }
    }
}

impl Worker for Relay {
    type Message = Received<Command>;

    fn on_message(&mut self, message: Received<Command>) {
        let Received { data, ports, buffers } = message;
        match data {
            Command::Forward(0) => self.end_of_chain(ports, buffers),
            Command::Report => {
                for port in ports {
                    let id = port.id();
                    port.on_message(|_: &mut Self, value: Value| post(&json!({ "port-message": value })))
                        .on_close(move |_: &mut Self| post(&json!({ "port-closed": id })));
                }
            }
            Command::CreateBuffer(len) => match Buffer::new(len) {
                Ok(buffer) => post(&json!({ "created": buffer.len() })),
                Err(error) => post(&json!({ "error": error })),
            },
            Command::SpawnCreate(len) => {
                let child = Child::spawn("relay.wasm", Some("relay-child"))
                    .expect("relay.wasm is beside this worker")
                    .on_message(|_: &mut Self, answer: Value| post(&answer));
                child.post(&json!({ "create-buffer": len }));
                self.children.push(child);
            }
            Command::Forward(n) => {
                let child = Child::spawn("relay.wasm", Some(&format!("relay-{n}")))
                    .expect("relay.wasm is beside this worker")
                    .on_message(|_: &mut Self, up: Received<Value>| {
                        post_with(&up.data, transfer_all(&up.ports, &up.buffers)).expect("just received");
                    });
                child.post_with(&json!({ "forward": n - 1 }), transfer_all(&ports, &buffers)).expect("just received");
                self.children.push(child);
            }
            Command::Misuse(what) => match what.as_str() {
                "port" => {
                    let channel = MessageChannel::new();
                    post_with(&json!({ "transferred": "port" }), Transfer::new().port(&channel.port2)).unwrap();
                    let refused = channel.port2.post(&"after transfer").unwrap_err();
                    let again = post_with(&"again", Transfer::new().port(&channel.port2)).unwrap_err();
                    post(&json!({ "refused": refused.to_string(), "again": again.to_string() }));
                }
                "buffer" => {
                    let buffer = Buffer::from_bytes(b"moving");
                    post_with(&json!({ "transferred": "buffer" }), Transfer::new().buffer(&buffer)).unwrap();
                    let refused = buffer.read(0, 1).unwrap_err();
                    post(&json!({ "refused": refused, "len": buffer.len() }));
                }
                "raw-port" => {
                    let (one, two) = scope::message_channel();
                    let stale = two.handle();
                    let message = types::Message {
                        codec: types::Codec::Json,
                        data: b"1".to_vec(),
                        transfer: vec![types::Transferable::Port(two)],
                    };
                    let _ = scope::post_message(message);
                    // SAFETY: deliberately wrong: the handle was moved away by the post above;
                    // the host must refuse to use it.
                    let stale = unsafe { types::MessagePort::from_handle(stale) };
                    let _ = stale.post_message(types::Message {
                        codec: types::Codec::Json,
                        data: b"2".to_vec(),
                        transfer: vec![],
                    });
                    drop(one);
                    post(&"unreachable: the host accepted a moved handle");
                }
                other => post(&json!({ "unknown-misuse": other })),
            },
        }
    }
}

export_worker!(Relay);
