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
//! The modules follow the chapter's concepts: [`worker`] (dedicated workers and their
//! handles), `event_loop` (the task queue and the closing flag), `scope` (the worker global
//! scope the guest imports), [`message`], [`port`] (message channels), [`buffer`]
//! (transferable buffers), [`shared`] (shared workers), `timers`, [`engine`] (compiled
//! components).

#![warn(missing_docs)]

pub mod accounting;
mod bindings;
mod budget;
pub mod buffer;
mod burst;
pub mod engine;
mod error;
mod event_loop;
pub mod graph;
mod host;
pub mod limits;
mod location;
pub mod message;
pub mod port;
mod scope;
pub mod shared;
pub mod stats;
mod stdio;
pub mod task;
mod threads;
mod timers;
pub mod worker;

pub use accounting::{DropReason, DroppedMessages, MessageCounts};
pub use buffer::{Buffer, BufferError};
pub use engine::Component;
pub use error::{HostError, LoadError, SpawnError};
pub use graph::{Graph, Manifest, ManifestError, RunningGraph, StartError};
pub use host::{
    Host, HostConfig, DEFAULT_IDLE_THREADS, DEFAULT_MAX_BUFFER_LEN, DEFAULT_SPIN, DEFAULT_THREAD_KEEP_ALIVE,
    KEPT_REPORTS,
};
pub use limits::{Limits, DEADLINE_TICK, DEFAULT_MESSAGE_SIZE, DEFAULT_QUEUED_BYTES, DEFAULT_QUEUED_MESSAGES};
pub use location::DEFAULT_MAX_COMPONENT_SIZE;
pub use message::{Codec, DecodeError, Message};
pub use port::{channel, MessagePort, PortEvent, PortPostError};
pub use shared::ConnectError;
pub use stats::WorkerReport;
pub use task::{Pool, PoolConfig, Schedule, Scope, Stream, TaskError};
pub use worker::{
    Capabilities, CloseReason, ErrorEvent, PostError, Preopen, QueueRoom, WorkerEvent, WorkerHandle, WorkerOptions,
};
