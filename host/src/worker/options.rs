//! Options for a new worker: its name, what it may reach, its limits and its channels.

use crate::limits::Limits;
use crate::messaging::MessagePort;

use super::origin::Origin;

/// Options for a new worker (`WorkerOptions`, and what a graph grants it).
#[derive(Debug, Default)]
pub struct WorkerOptions {
    /// The worker's name (`self.name` in the worker); empty if `None`. It also names the
    /// worker's thread and prefixes its stdout and stderr lines.
    pub name: Option<String>,
    /// What the worker may reach through WASI; nothing by default.
    pub capabilities: Capabilities,
    /// Its resource limits.
    pub limits: Limits,
    /// Ports handed to the worker at start, by label (`take-channel`).
    pub channels: Vec<(String, MessagePort)>,
    /// Where the workers this worker spawns run: `None` (the default) on this host; otherwise
    /// on a host of the lattice this host has joined that matches (see
    /// [`Placement`]). Without a lattice, its children run here whatever this says.
    pub spawn_placement: Option<Placement>,
    /// Where this worker runs: `None` (the default) on this host; otherwise on a host of the
    /// lattice this host has joined that matches, with these limits and channels (linked
    /// across) and no capabilities. Without a lattice, it runs here whatever this says.
    pub placement: Option<Placement>,
    /// Where the locations it names are resolved, for a worker placed here by another host
    /// (see [`Origin`]); `None` (the default): beside its own component, here.
    pub origin: Option<Origin>,
}

impl WorkerOptions {
    /// Options with the given name.
    pub fn named(name: impl Into<String>) -> Self {
        WorkerOptions { name: Some(name.into()), ..WorkerOptions::default() }
    }
}

/// What a worker may reach through WASI. A worker gets no files, environment, arguments or
/// time of day unless granted here; its stdout and stderr always go to the host's stderr,
/// prefixed with its name, and it never gets the host's stdin. What the world itself needs
/// is always there: a monotonic clock (for measuring time and for timers) and random bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Whether it may read the time of day (`wasi:clocks/wall-clock`). Without it, the wall
    /// clock reads the Unix epoch, always.
    pub wall_clock: bool,
    /// Its command-line arguments.
    pub args: Vec<String>,
    /// Its environment variables.
    pub env: Vec<(String, String)>,
    /// Host directories it may open, and where it sees them.
    pub dirs: Vec<Preopen>,
}

/// A host directory granted to a worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preopen {
    /// The directory on the host.
    pub host: std::path::PathBuf,
    /// The path the guest opens it by.
    pub guest: String,
    /// Whether the guest may only read.
    pub read_only: bool,
}

/// Where on a lattice a worker runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Any live host with a free worker slot: the one with the most free slots.
    Any,
    /// A live host with a free slot whose labels include all of these.
    Labels(std::collections::BTreeMap<String, String>),
    /// The host with this id.
    Host(String),
}
