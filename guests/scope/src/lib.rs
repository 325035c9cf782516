//! Answers every message with what its global scope says:
//! `{"name": ..., "location": ..., "hardware-concurrency": ...}`.

use wasm_workers_guest::{export_worker, hardware_concurrency, location, name, post, Worker};

#[derive(Default)]
struct Scope;

impl Worker for Scope {
    type Message = serde_json::Value;

    fn on_message(&mut self, _: serde_json::Value) {
        post(&serde_json::json!({
            "name": name(),
            "location": location(),
            "hardware-concurrency": hardware_concurrency(),
        }));
    }
}

export_worker!(Scope);
