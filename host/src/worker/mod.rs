//! The worker runtime (10.2.6.3 dedicated workers, 10.2.6.4 shared workers): a component
//! instance on its own thread, its store's state, the host side of each WIT interface it
//! imports, and the handle its creator holds.
//!
//! Each worker owns one OS thread (named after the worker), one [`Store`](wasmtime::Store)
//! and one task queue. The thread instantiates the component, then runs the event loop until
//! the worker closes, is terminated, fails, or is idle for good; then it terminates the
//! worker's children and tells the parent how it ended.
//!
//! - [`component`]: compiled components, the engine's configuration, the compile cache;
//! - [`services`]: what a worker needs of its host, and nothing more;
//! - [`state`]: what a worker's store holds; [`types`] and [`global_scope`]: the host side
//!   of the WIT interfaces `types` and `scope`;
//! - [`spawn`], [`thread`]: starting a worker, and the body of its thread;
//! - [`parent`]: where its messages and its end go; [`handle`]: the host program's side;
//! - [`shared_workers`]: the registry of shared workers by name; [`timers`]: the timer thread.

pub(crate) mod component;
mod global_scope;
mod handle;
mod options;
mod origin;
mod parent;
mod remote;
mod services;
mod shared_workers;
mod spawn;
mod state;
mod thread;
mod timers;
mod types;

pub use component::{Component, DEFAULT_CACHE_MAX_SIZE, PERFMAP_ENV};
pub(crate) use handle::spawn_root;
pub use handle::{CloseReason, PostError, QueueRoom, WorkerEvent, WorkerHandle};
pub use options::{Capabilities, Placement, Preopen, WorkerOptions};
pub(crate) use origin::Fetch;
pub use origin::Origin;
pub(crate) use parent::{EventSink, Exit, HostInbox, ParentLink};
pub(crate) use remote::{spawn_anywhere, PlaceRequest, Placer, RemoteEvents, RemoteWorker, Started};
pub use services::KEPT_REPORTS;
pub(crate) use services::{LatticeQuiet, Services};
pub use shared_workers::ConnectError;
pub(crate) use shared_workers::{SharedNames, SharedWorkers};
pub(crate) use timers::Timers;
