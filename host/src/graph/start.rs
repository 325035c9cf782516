//! A checked graph: starting it as one run, and drawing it.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::host::Host;

use crate::error::SpawnError;
use crate::messaging;
use crate::worker::{Capabilities, Component, ConnectError, Preopen, WorkerHandle, WorkerOptions};

use super::manifest::{End, Manifest};

/// A checked graph could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A worker's thread could not be started.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    /// A shared worker could not be connected.
    #[error(transparent)]
    Connect(#[from] ConnectError),
}

/// A checked manifest with its components loaded, ready to start or to draw.
#[derive(Debug)]
pub struct Graph {
    pub(super) manifest: Manifest,
    /// Components by manifest key (`workers.x`, `shared.y`).
    pub(super) components: HashMap<String, Component>,
}

/// A started graph: the entry worker and the others, each with its manifest key.
#[derive(Debug)]
pub struct RunningGraph {
    /// The entry worker: stdin goes to it, its messages are the run's output.
    pub entry: WorkerHandle,
    /// The other workers, by manifest key. Their input is ended from the start (only their
    /// channels reach them), so each ends idle once it has nothing left to do.
    pub others: Vec<(String, WorkerHandle)>,
}

impl Graph {
    /// The key of the entry worker.
    pub fn entry(&self) -> &str {
        self.manifest.entry.get_ref()
    }

    /// Starts the graph: makes its channels, spawns its workers with their capabilities,
    /// limits and channel ends, and connects the shared ends.
    ///
    /// # Errors
    ///
    /// If a worker or shared worker cannot be started.
    pub fn start(&self, host: &Host) -> Result<RunningGraph, StartError> {
        let manifest = &self.manifest;
        let mut channels: HashMap<String, Vec<(String, messaging::MessagePort)>> = HashMap::new();
        for channel in &manifest.channels {
            let (one, two) = messaging::channel();
            for (end, port) in [(channel.a.get_ref(), one), (channel.b.get_ref(), two)] {
                match end {
                    End::Worker { worker, label } => {
                        channels.entry(worker.clone()).or_default().push((label.clone(), port))
                    }
                    End::Shared { shared } => {
                        let component = &self.components[&format!("shared.{shared}")];
                        // Its own limits, then the graph's, then the host's.
                        let limits = manifest.shared[shared].limits.limits().or(manifest.limits.limits());
                        host.connect_shared_with(component, shared, port, limits)?;
                    }
                }
            }
        }
        let mut entry = None;
        let mut others = Vec::new();
        for (key, worker) in &manifest.workers {
            // The worker's own limits, then the graph's, then the host's.
            let limits = worker.limits.limits().or(manifest.limits.limits());
            let capabilities = Capabilities {
                wall_clock: worker.wall_clock,
                args: worker.args.clone(),
                env: worker.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                dirs: worker
                    .dirs
                    .iter()
                    .map(|d| Preopen {
                        host: manifest.resolve(d.host.get_ref()),
                        guest: d.guest.clone(),
                        read_only: d.read_only,
                    })
                    .collect(),
            };
            let options = WorkerOptions {
                name: Some(worker.name.as_ref().map_or(key.clone(), |n| n.get_ref().clone())),
                capabilities,
                limits,
                channels: channels.remove(key).unwrap_or_default(),
                // Checked when the manifest was validated.
                spawn_placement: worker.place_spawns.as_ref().and_then(|place| place.get_ref().placement().ok()),
                placement: worker.placement(),
                origin: None,
            };
            let mut handle = match host.spawn(&self.components[&format!("workers.{key}")], options) {
                Ok(handle) => handle,
                Err(error) => {
                    // Nothing half-started is left behind.
                    for (_, other) in &others {
                        WorkerHandle::terminate(other);
                    }
                    if let Some(entry) = &entry {
                        WorkerHandle::terminate(entry);
                    }
                    return Err(error.into());
                }
            };
            if key == manifest.entry.get_ref() {
                entry = Some(handle);
            } else {
                handle.end_input();
                others.push((key.clone(), handle));
            }
        }
        let entry = entry.expect("checked: the entry is a worker");
        Ok(RunningGraph { entry, others })
    }

    /// The graph as Graphviz DOT: workers (the entry double-circled), shared workers,
    /// channels (undirected, labelled), and declared spawns (dashed).
    pub fn to_dot(&self) -> String {
        let m = &self.manifest;
        let mut out = String::from("graph workers {\n  node [shape=box, style=rounded];\n");
        for key in m.workers.keys() {
            let shape = if key == m.entry.get_ref() { ", peripheries=2" } else { "" };
            let _ = writeln!(out, "  {} [label={}{shape}];", quote(&format!("w:{key}")), quote(key));
        }
        for key in m.shared.keys() {
            let _ = writeln!(
                out,
                "  {} [label={}, shape=ellipse];",
                quote(&format!("s:{key}")),
                quote(&format!("shared {key}"))
            );
        }
        for channel in &m.channels {
            let (a, b) = (channel.a.get_ref(), channel.b.get_ref());
            let _ =
                writeln!(out, "  {} -- {} [label={}];", quote(&node(a)), quote(&node(b)), quote(&channel_label(a, b)));
        }
        for (key, worker) in &m.workers {
            for child in &worker.spawns {
                let _ = writeln!(out, "  {} [label={}, shape=note];", quote(&format!("c:{child}")), quote(child));
                let _ = writeln!(
                    out,
                    "  {} -- {} [style=dashed, label=\"spawns\"];",
                    quote(&format!("w:{key}")),
                    quote(&format!("c:{child}"))
                );
            }
        }
        out.push_str("}\n");
        out
    }

    /// The graph as a Mermaid flowchart.
    pub fn to_mermaid(&self) -> String {
        let m = &self.manifest;
        let mut ids = HashMap::new();
        let mut id = |name: String| {
            let next = ids.len();
            ids.entry(name).or_insert_with(|| format!("n{next}")).clone()
        };
        let mut out = String::from("flowchart LR\n");
        for key in m.workers.keys() {
            let shape = if key == m.entry.get_ref() { ("((", "))") } else { ("[", "]") };
            let _ = writeln!(out, "  {}{}\"{}\"{}", id(format!("w:{key}")), shape.0, mermaid_text(key), shape.1);
        }
        for key in m.shared.keys() {
            let _ = writeln!(out, "  {}([\"shared {}\"])", id(format!("s:{key}")), mermaid_text(key));
        }
        for channel in &m.channels {
            let (a, b) = (channel.a.get_ref(), channel.b.get_ref());
            let _ =
                writeln!(out, "  {} <-- \"{}\" --> {}", id(node(a)), mermaid_text(&channel_label(a, b)), id(node(b)));
        }
        for (key, worker) in &m.workers {
            for child in &worker.spawns {
                let parent = id(format!("w:{key}"));
                let _ = writeln!(
                    out,
                    "  {parent} -.->|spawns| {}[/\"{}\"/]",
                    id(format!("c:{child}")),
                    mermaid_text(child)
                );
            }
        }
        out
    }
}

fn node(end: &End) -> String {
    match end {
        End::Worker { worker, .. } => format!("w:{worker}"),
        End::Shared { shared } => format!("s:{shared}"),
    }
}

fn channel_label(a: &End, b: &End) -> String {
    let label = |end: &End| match end {
        End::Worker { label, .. } => label.clone(),
        End::Shared { .. } => "connect".to_string(),
    };
    format!("{} / {}", label(a), label(b))
}

/// A DOT double-quoted string.
fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Text safe inside a Mermaid quoted label.
fn mermaid_text(text: &str) -> String {
    text.replace('"', "#quot;")
}
