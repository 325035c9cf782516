//! Worker graphs: a TOML manifest naming workers, shared workers and the channels between
//! them, checked before anything starts, then started as one run.
//!
//! ```toml
//! entry = "viewer"                      # its messages are the run's output; stdin goes to it
//!
//! [workers.viewer]
//! component = "viewer.wasm"             # relative to the manifest
//! name = "viewer-1"                     # its `self.name`; the key if omitted
//! args = ["--verbose"]                  # granted capabilities: nothing unless listed
//! env = { LEVEL = "2" }
//! dirs = [{ host = "data", guest = "/data", read-only = true }]
//! wall-clock = true                     # may read the time of day (the epoch otherwise)
//! limits = { memory = "64 MiB", table-elements = 10000, instances = 16, children = 8,
//!            queued-messages = 10000, queued-bytes = "16 MiB", message-size = "1 MiB", deadline-ms = 500 }
//! spawns = ["core.wasm"]                # children it spawns, for the picture only
//!
//! [limits]                              # for every worker that does not set its own
//! deadline-ms = 2000
//!
//! [shared.map]                          # a shared worker, by name
//! component = "multiviewer.wasm"
//!
//! [[channels]]                          # a MessageChannel, one end to each side
//! a = { worker = "viewer", label = "map" }   # the guest takes it with `take-channel("map")`
//! b = { shared = "map" }                      # a shared worker gets it through `on-connect`
//! ```

mod manifest;
mod start;

pub use manifest::{parse_size, Manifest, ManifestError};
pub use start::{Graph, RunningGraph, StartError};
