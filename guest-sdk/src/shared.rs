//! Shared workers (`SharedWorker`): one instance per name, reached through a port.

#[allow(unused_imports)]
use crate::*;

/// Shared workers (`SharedWorker`): one instance per name, reached through a port.
pub struct SharedWorker;

impl SharedWorker {
    /// Connects to the shared worker `name` running the component at `location` (relative to
    /// this worker's location), starting it if none runs; returns this worker's port to it
    /// (`new SharedWorker(url, name).port`).
    ///
    /// # Errors
    ///
    /// If a shared worker of that name runs another component, or the component cannot be
    /// loaded.
    pub fn connect(location: &str, name: &str) -> Result<Port, String> {
        scope::connect_shared_worker(location, name).map(Port::from_handle)
    }
}
