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
    /// The location names something other than a regular file (a directory, a device, a
    /// FIFO).
    #[error("cannot read component `{location}`: it is not a regular file")]
    NotAFile {
        /// The component's location, as given.
        location: String,
    },
    /// The file is larger than the host accepts
    /// ([`HostConfig::max_component_size`](crate::HostConfig::max_component_size)).
    #[error("cannot read component `{location}`: it has {len} bytes, over the limit of {limit}")]
    TooLarge {
        /// The component's location, as given.
        location: String,
        /// Its size.
        len: u64,
        /// The limit.
        limit: u64,
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

impl LoadError {
    /// The error as a guest may see it (a worker that spawned or connected to `location`):
    /// what kind of failure, never the validator's or linker's words, which may quote the
    /// file's bytes or name what it imports.
    pub(crate) fn redacted(&self) -> String {
        match self {
            LoadError::Read { .. } | LoadError::NotAFile { .. } | LoadError::TooLarge { .. } => self.to_string(),
            LoadError::Invalid { location, .. } => {
                format!("`{location}` is not a valid WebAssembly component")
            }
            LoadError::NotAWorker { location, .. } => {
                format!("`{location}` is not a worker component (world `wasm-workers:worker/worker`)")
            }
        }
    }
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
    /// It was to run on another host of the lattice, and could not be placed there.
    #[error("cannot start worker `{worker}` ({location}) on the lattice: {cause}")]
    Placement {
        /// The worker's name.
        worker: String,
        /// Its component's location.
        location: String,
        /// Why: no host matches or has room, the host refused, the lattice is unreachable.
        cause: String,
    },
}

/// The host could not be created: the engine cannot run on this machine, or the compile
/// cache directory is not safe to use.
#[derive(Debug, thiserror::Error)]
#[error("cannot create the host: {0}")]
pub struct HostError(pub(crate) String);

/// A worker script could not be built into a component ([`scripts`](crate::scripts)).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A tool of the toolchain is missing or cannot be run.
    #[error("cannot build with {tool}: {hint}")]
    Toolchain {
        /// The tool: `node`, `componentize-js`, `componentize-py`.
        tool: &'static str,
        /// Why, and how to install it.
        hint: String,
    },
    /// A script has a syntax error: nothing was built.
    #[error("{message}")]
    Syntax {
        /// The script.
        script: std::path::PathBuf,
        /// The error, with the script's file, line and column (`worker.js:3: SyntaxError: …`).
        message: String,
    },
    /// An input cannot be used (unreadable, or two scripts of one name).
    #[error("cannot build {}: {cause}", path.display())]
    Input {
        /// The input.
        path: std::path::PathBuf,
        /// Why.
        cause: String,
    },
    /// A file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The toolchain failed.
    #[error("{tool} failed ({status}):\n{output}")]
    Failed {
        /// The tool.
        tool: &'static str,
        /// Its exit status.
        status: String,
        /// What it printed.
        output: String,
    },
}
