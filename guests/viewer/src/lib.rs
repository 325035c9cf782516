//! The chapter's multiviewer viewer (10.1.2.4), with its parent in the place of the page.
//!
//! Sent `{"connect": name}`, it connects to the shared worker `name` running
//! `multiviewer.wasm`; in a graph, a channel labelled `map` to the shared worker does the same
//! from the start. Sent `{"send": text}`, it posts `text` to the shared worker; sent
//! `{"private": text}`, it posts `text` on its private-chat port. Everything that arrives is
//! posted to the parent: `{"shared": text}` from the shared worker, `{"private": text,
//! "with": name}` from the other viewer of a private chat.

use serde::Deserialize;
use serde_json::json;
use wasm_workers_guest::{export_worker, post, take_channel, Port, Received, SharedWorker, Worker};

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Command {
    Connect(String),
    Send(String),
    Private(String),
}

#[derive(Default)]
struct Viewer {
    shared: Option<Port>,
    private: Option<Port>,
}

impl Viewer {
    fn connected(&mut self, port: Port) {
        port.on_message(|this: &mut Self, message: Received<String>| {
            let Received { data, mut ports, .. } = message;
            // "msg <name>" comes with the viewer's end of a private channel.
            if let (Some(with), Some(private)) = (data.strip_prefix("msg "), ports.pop()) {
                let with = with.to_string();
                private.on_message(move |_: &mut Self, text: String| post(&json!({ "private": text, "with": with })));
                this.private = Some(private);
            }
            post(&json!({ "shared": data }));
        });
        self.shared = Some(port);
    }
}

impl Worker for Viewer {
    type Message = Command;

    fn on_start(&mut self) {
        if let Some(port) = take_channel("map") {
            self.connected(port);
        }
    }

    fn on_message(&mut self, command: Command) {
        match command {
            Command::Connect(name) => match SharedWorker::connect("multiviewer.wasm", &name) {
                Ok(port) => self.connected(port),
                Err(error) => post(&json!({ "error": error })),
            },
            Command::Send(text) => {
                if let Some(port) = &self.shared {
                    let _ = port.post(&text);
                }
            }
            Command::Private(text) => match &self.private {
                Some(port) => {
                    let _ = port.post(&text);
                }
                None => post(&json!({ "error": "no private chat" })),
            },
        }
    }
}

export_worker!(Viewer);
