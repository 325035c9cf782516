//! Shows what a worker was granted. Sent `{"read": path}`, it answers `{"read": path,
//! "text": contents}` or `{"read": path, "error": why}`; sent `"args"`, its arguments; sent
//! `{"env": name}`, that variable's value or null.

use serde::Deserialize;
use serde_json::json;
use wasm_workers_guest::{export_worker, post, Worker};

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Request {
    Read(String),
    Env(String),
    #[serde(untagged)]
    Word(String),
}

#[derive(Default)]
struct Files;

impl Worker for Files {
    type Message = Request;

    fn on_message(&mut self, request: Request) {
        match request {
            Request::Read(path) => match std::fs::read_to_string(&path) {
                Ok(text) => post(&json!({ "read": path, "text": text })),
                Err(error) => post(&json!({ "read": path, "error": error.to_string() })),
            },
            Request::Env(name) => post(&json!({ "env": name, "value": std::env::var(&name).ok() })),
            Request::Word(word) if word == "args" => post(&json!({ "args": std::env::args().collect::<Vec<_>>() })),
            Request::Word(other) => post(&json!({ "error": format!("unknown request {other}") })),
        }
    }
}

export_worker!(Files);
