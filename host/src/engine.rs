//! The engine and the components it runs: one [`wasmtime::Engine`] per host, each component
//! compiled once per host and kept ready to instantiate as an [`InstancePre`].
//!
//! [`InstancePre`]: wasmtime::component::InstancePre

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::component::Linker;
use wasmtime::{Config, Engine};

use crate::bindings;
use crate::error::LoadError;
use crate::scope::WorkerState;

/// The engine configuration every host uses.
pub(crate) fn config() -> Config {
    let mut config = Config::new();
    // `terminate()` must stop a guest that never returns: epoch interruption adds a check at
    // function entries and loop heads, and the epoch is bumped only when a worker is
    // terminated (see `worker::Control::terminate`).
    config.epoch_interruption(true);
    // Workers call guests synchronously from their own threads; without the machinery for
    // component-model concurrency a host-to-guest call is ~3x cheaper.
    config.concurrency_support(false);
    config
}

/// A linker with WASI (p2, synchronous) and the worker scope.
pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<WorkerState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    bindings::Worker::add_to_linker::<WorkerState, wasmtime::component::HasSelf<WorkerState>>(
        &mut linker,
        |state| state,
    )?;
    Ok(linker)
}

/// A component compiled and linked as a worker, ready to be instantiated on any thread.
/// Cheap to clone.
#[derive(Clone)]
pub struct Component(Arc<ComponentInner>);

struct ComponentInner {
    pre: bindings::WorkerPre<WorkerState>,
    location: String,
    /// The canonical path: what identifies the component (for shared workers, the cache).
    key: PathBuf,
}

impl Component {
    /// Compiles `bytes` (read from `location`) and links it as a worker.
    pub(crate) fn new(
        engine: &Engine,
        linker: &Linker<WorkerState>,
        location: &Path,
        key: PathBuf,
        bytes: &[u8],
    ) -> Result<Self, LoadError> {
        let location_text = location.display().to_string();
        let component = wasmtime::component::Component::from_binary(engine, bytes).map_err(|error| {
            LoadError::Invalid { location: location_text.clone(), cause: format!("{error:#}") }
        })?;
        let not_a_worker = |error: wasmtime::Error| LoadError::NotAWorker {
            location: location_text.clone(),
            cause: format!("{error:#}"),
        };
        let pre = linker.instantiate_pre(&component).map_err(not_a_worker)?;
        let pre = bindings::WorkerPre::new(pre).map_err(not_a_worker)?;
        Ok(Component(Arc::new(ComponentInner { pre, location: location_text, key })))
    }

    /// Whether `self` and `other` are the same compilation (one [`Host::load`] result, or
    /// two loads of one file by one host).
    ///
    /// [`Host::load`]: crate::Host::load
    pub fn ptr_eq(&self, other: &Component) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Where the component was loaded from, as given.
    pub fn location(&self) -> &str {
        &self.0.location
    }

    /// The canonical path of the component's file.
    pub fn key(&self) -> &Path {
        &self.0.key
    }

    pub(crate) fn pre(&self) -> &bindings::WorkerPre<WorkerState> {
        &self.0.pre
    }

    pub(crate) fn engine(&self) -> &Engine {
        self.0.pre.engine()
    }
}

impl fmt::Debug for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Component").field(&self.0.location).finish()
    }
}
