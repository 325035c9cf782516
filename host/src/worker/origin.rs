//! Where a worker placed here by another host finds the components it names.
//!
//! A worker names other components by location, relative to its own (`spawn("core.wasm")`).
//! A worker placed here from another host has no directory here: its component was sent by
//! hash. As a browser fetches a worker's scripts from the origin it was loaded from, such a
//! worker's locations are resolved at its *origin*, the side that placed the first worker
//! of its graph, beneath the directory of the component that names them, with the same
//! rules as there; the component found travels by hash, as the first did. The lattice sets
//! a placed worker's origin; nothing else does.

use std::fmt;
use std::sync::Arc;

use super::component::Component;

/// Where a placed worker's locations are resolved (see the module). Made by the lattice for
/// the workers it places; a host program leaves [`WorkerOptions::origin`] `None`.
///
/// [`WorkerOptions::origin`]: super::WorkerOptions::origin
#[derive(Clone)]
pub struct Origin(pub(crate) Arc<dyn Fetch>);

/// How an [`Origin`] is reached.
pub(crate) trait Fetch: Send + Sync {
    /// The component at `location`, relative to the worker's own, from the origin, and the
    /// origin of a worker that runs it (its locations resolve beside it).
    ///
    /// # Errors
    ///
    /// Why it cannot be had, in one line.
    fn fetch(&self, location: &str) -> Result<(Component, Origin), String>;

    /// The origin's id on the lattice, and the hash of the component whose directory its
    /// locations resolve beneath: a worker placed further carries these.
    fn reference(&self) -> (String, String);
}

impl Origin {
    /// See [`Fetch::fetch`].
    pub(crate) fn fetch(&self, location: &str) -> Result<(Component, Origin), String> {
        self.0.fetch(location)
    }

    /// See [`Fetch::reference`].
    pub(crate) fn reference(&self) -> (String, String) {
        self.0.reference()
    }
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (id, base) = self.reference();
        f.debug_struct("Origin").field("id", &id).field("base", &base).finish()
    }
}
