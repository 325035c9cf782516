//! Spawns the children it is told to and reports everything they do, for the tests.
//!
//! Sent `{"spawn": [{"location": L, "name": N, "messages": [M, ...]}, ...]}`, it spawns each
//! child, posts it its messages, and posts to its own parent one report per child event:
//! `{"child": i, "message": M}`, `{"child": i, "error": E}`, `{"child": i, "message-error": R}`,
//! `{"child": i, "closed": true}`, or `{"child": i, "spawn-error": E}`. A spec may say where on
//! the lattice the child runs: `"placement": "any"`, `{"host": ID}` or `{"labels": {K: V}}`. Sent `{"terminate": i}`,
//! it terminates child `i` and reports `{"child": i, "terminated": true}`.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{json, Value};
use wasm_workers_guest::{export_worker, post, Child, ErrorEvent, MessageError, Placement, Source, Worker};

#[derive(Deserialize)]
struct Spec {
    location: String,
    name: Option<String>,
    #[serde(default)]
    messages: Vec<Value>,
    /// Where on the lattice: `"any"`, `{"host": ID}` or `{"labels": {K: V}}`.
    placement: Option<PlacementSpec>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PlacementSpec {
    Any(String),
    Host { host: String },
    Labels { labels: std::collections::BTreeMap<String, String> },
}

impl PlacementSpec {
    fn placement(&self) -> Result<Placement, String> {
        match self {
            PlacementSpec::Any(word) if word == "any" => Ok(Placement::Any),
            PlacementSpec::Any(word) => Err(format!("unknown placement `{word}`")),
            PlacementSpec::Host { host } => Ok(Placement::Host(host.clone())),
            PlacementSpec::Labels { labels } => Ok(Placement::Labels(labels.clone().into_iter().collect())),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Command {
    Spawn(Vec<Spec>),
    Terminate(usize),
}

#[derive(Default)]
struct Supervisor {
    /// Children by their index in the order they were asked for.
    children: HashMap<usize, Child<Supervisor>>,
    /// How many children were asked for so far.
    asked: usize,
    /// Child index by the id its events carry.
    index: HashMap<u32, usize>,
}

impl Worker for Supervisor {
    type Message = Command;

    fn on_message(&mut self, command: Command) {
        match command {
            Command::Spawn(specs) => {
                for spec in specs {
                    let i = self.asked;
                    self.asked += 1;
                    let spawned = match &spec.placement {
                        Some(placement) => placement.placement().and_then(|placement| {
                            Child::spawn_placed(&spec.location, spec.name.as_deref(), &placement)
                        }),
                        None => Child::spawn(&spec.location, spec.name.as_deref()),
                    };
                    match spawned {
                        Ok(child) => {
                            let child = child
                                .on_message(move |_: &mut Self, m: Value| post(&json!({ "child": i, "message": m })))
                                .on_error(move |_: &mut Self, e: ErrorEvent| {
                                    post(&json!({ "child": i, "error": e.message, "worker": e.worker }))
                                })
                                .on_close(move |_: &mut Self| post(&json!({ "child": i, "closed": true })));
                            for message in &spec.messages {
                                child.post(message);
                            }
                            self.index.insert(child.id(), i);
                            self.children.insert(i, child);
                        }
                        Err(error) => post(&json!({ "child": i, "spawn-error": error })),
                    }
                }
            }
            Command::Terminate(i) => {
                if let Some(child) = self.children.get(&i) {
                    child.terminate();
                    post(&json!({ "child": i, "terminated": true }));
                }
            }
        }
    }

    fn on_message_error(&mut self, error: MessageError) {
        let child = match error.source {
            Source::Child(id) => self.index.get(&id).map(|&i| json!(i)).unwrap_or(Value::Null),
            Source::Parent => json!("parent"),
            Source::Port(id) => json!(format!("port {id}")),
        };
        post(&json!({ "child": child, "message-error": error.reason }));
    }
}

export_worker!(Supervisor);
