//! Web Workers for WebAssembly components, on wasmtime.
//!
//! A worker is a component instance (world `wasm-workers:worker/worker`, in `wit/`) running
//! on its own thread with its own event loop. Workers share nothing and talk only by
//! messages; a worker can spawn child workers and delegate work to them, as in chapter 10 of
//! the HTML standard.
//!
//! This crate is the host: embed it through [`Host`], or use the `wasm-workers` CLI.
//!
//! ```no_run
//! use wasm_workers::{Host, Message, WorkerEvent, WorkerOptions};
//!
//! # async fn example() -> anyhow::Result<()> {
//! let host = Host::new()?;
//! let delegation = host.load("delegation.wasm")?;
//! let mut worker = host.spawn(&delegation, WorkerOptions::named("delegation"))?;
//! worker.post_message(Message::json(&serde_json::json!({ "n": 1_000_000, "k": 4 }))?)?;
//! while let Some(event) = worker.recv().await {
//!     match event {
//!         WorkerEvent::Message(message) => println!("{message:?}"),
//!         WorkerEvent::Error(error) => eprintln!("{error}"),
//!         WorkerEvent::Closed(reason) => println!("ended: {reason:?}"),
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Its types follow the chapter's concepts: [`Host`] and [`Component`] (the host and what it
//! loads), [`WorkerHandle`] and [`WorkerOptions`] (dedicated workers), [`Message`] (what
//! `postMessage` sends), [`MessagePort`] and [`channel`] (channel messaging), [`Buffer`]
//! (transferable buffers), [`Host::connect_shared`] (shared workers), [`Graph`] (a worker
//! graph from a manifest), and the typed tasks of [`task`]. [`MessageCounts`] says what
//! became of every message: each one posted is delivered or dropped, for one [`DropReason`].

#![warn(missing_docs)]

// The layers, bottom to top (declared in `host/layers.txt`, checked by
// `scripts/check-layers.py`): plain data; messages, ports and the event loop; the WIT glue;
// the worker runtime; the public API; the CLI.
mod accounting;
mod budget;
mod buffer;
mod error;
mod limits;
mod location;
mod stats;
mod stdio;
mod threads;

mod event_loop;
mod messaging;

mod bindings;
mod burst;

mod worker;

mod graph;
mod host;
pub mod scripts;
pub mod task;

pub mod lattice;

pub use accounting::{DropReason, DroppedMessages, MessageCounts};
pub use buffer::{Buffer, BufferError};
pub use error::{BuildError, HostError, LoadError, SpawnError};
pub use graph::{parse_size, Graph, Manifest, ManifestError, RunningGraph, StartError};
pub use host::{
    Host, HostConfig, Pooling, DEFAULT_IDLE_THREADS, DEFAULT_MAX_BUFFER_LEN, DEFAULT_RELEASE_THREAD_AFTER,
    DEFAULT_SPIN, DEFAULT_THREAD_KEEP_ALIVE,
};
pub use limits::{Limits, DEADLINE_TICK, DEFAULT_MESSAGE_SIZE, DEFAULT_QUEUED_BYTES, DEFAULT_QUEUED_MESSAGES};
pub use location::DEFAULT_MAX_COMPONENT_SIZE;
pub use messaging::{channel, Codec, DecodeError, Message, MessagePort, PortEvent, PortPostError, PortRoom};
pub use stats::WorkerReport;
/// The list a [`Message`] keeps its transferred ports and buffers in (`thin-vec`'s): a `Vec`
/// of one word while empty.
pub use thin_vec::ThinVec;
pub use wasm_workers_protocol::ErrorEvent;
pub use worker::{
    Capabilities, CloseReason, Component, ConnectError, Origin, Placement, PostError, Preopen, QueueRoom, WorkerEvent,
    WorkerHandle, WorkerOptions, DEFAULT_CACHE_MAX_SIZE, KEPT_REPORTS, PERFMAP_ENV,
};
