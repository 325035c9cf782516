//! The library's errors. Each names what failed (the worker or the component) and the cause.

/// A component could not be loaded as a worker.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read component `{location}`: {source}")]
    Read {
        /// The component's location, as given.
        location: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid WebAssembly component (a core module, a corrupt file, ...).
    #[error("`{location}` is not a valid WebAssembly component: {cause}")]
    Invalid {
        /// The component's location, as given.
        location: String,
        /// What the validator or compiler said.
        cause: String,
    },
    /// The component is valid but does not implement the `worker` world: it imports what the
    /// host does not provide, or lacks the event handlers.
    #[error("`{location}` is not a worker component (world `wasm-workers:worker/worker`): {cause}")]
    NotAWorker {
        /// The component's location, as given.
        location: String,
        /// What is missing or mismatched.
        cause: String,
    },
}

/// A worker could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The operating system could not start its thread, or grant what it was given.
    #[error("cannot start worker `{worker}` ({location}): {source}")]
    Thread {
        /// The worker's name.
        worker: String,
        /// Its component's location.
        location: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A limit on the number of workers (of the host, or of the parent) was reached.
    #[error("cannot start worker `{worker}` ({location}): {limit}")]
    Limit {
        /// The worker's name.
        worker: String,
        /// Its component's location.
        location: String,
        /// Which limit, and its value.
        limit: String,
    },
}

/// The host could not be created.
#[derive(Debug, thiserror::Error)]
#[error("cannot create the wasmtime engine: {0}")]
pub struct HostError(pub(crate) String);
