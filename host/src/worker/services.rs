//! What a worker needs of its host: the engine and the components it has loaded, the ledger,
//! the budget, the counters, the timer thread, the shared-worker registry and the threads
//! workers run on. The public [`Host`](crate::Host) wraps one `Services`; a worker holds it
//! too, and nothing else of the host.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};

use wasmtime::component::Linker;
use wasmtime::Engine;

use crate::accounting::Ledger;
use crate::budget::HostBudget;
use crate::error::LoadError;
use crate::event_loop::{Patience, Quiescence};
use crate::limits::{Limits, DEADLINE_TICK};
use crate::location::{self, ComponentDir};
use crate::stats::WorkerStats;
use crate::threads::Threads;
use wasm_workers_protocol::ErrorEvent;

use super::component::{self, Component};
use super::remote::Placer;
use super::shared_workers::SharedWorkers;
use super::state::WorkerState;
use super::timers::Timers;

/// How many reports of ended workers a host keeps at least.
pub const KEPT_REPORTS: usize = 4096;

/// A host's services, shared by the host program's [`Host`](crate::Host) and its workers.
/// A lattice as a host's quiescence asks it: whether every side its links reach is quiet,
/// with nothing on its way (when the answer is no, it comes after a short pause).
pub(crate) trait LatticeQuiet: Send + Sync {
    fn quiet(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>;
}

impl Services {
    /// Whether every worker here waits but for the proxies of workers on other hosts.
    pub(crate) fn quiet_but_proxies(&self) -> bool {
        // Proxies count busy before they are counted live, and out of live before they stop
        // counting busy: read in this order, a proxy coming or going shows as busy.
        let proxies = self.live_proxies.load(std::sync::atomic::Ordering::Acquire);
        self.quiescence.busy() <= proxies
    }
}

pub(crate) struct Services {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<WorkerState>,
    /// Loaded components by file identity: one compilation per file, and a component for each
    /// of its names (hard links; the first compiled it), empty until it has loaded. Each entry
    /// has its own lock, so that two workers asking for one component compile it once, and
    /// different components compile in parallel.
    pub(crate) components: Mutex<HashMap<location::FileId, Arc<Mutex<Vec<Component>>>>>,
    pub(crate) hardware_concurrency: u32,
    /// Workers whose threads are running (or are being started).
    pub(crate) live: AtomicUsize,
    pub(crate) max_workers: usize,
    pub(crate) max_buffer_len: u64,
    pub(crate) max_component_size: u64,
    pub(crate) memory_budget: Arc<HostBudget>,
    /// Bytes copied into or out of buffers by guests.
    pub(crate) buffer_bytes_copied: AtomicU64,
    pub(crate) shared: SharedWorkers,
    pub(crate) timers: Timers,
    /// Every worker's statistics, in the order they were spawned.
    pub(crate) stats: Mutex<Vec<Arc<WorkerStats>>>,
    pub(crate) cache_dir: Option<PathBuf>,
    /// The most bytes the compile cache holds.
    pub(crate) cache_max_size: u64,
    pub(crate) allow_precompiled: bool,
    pub(crate) compiled: AtomicU64,
    pub(crate) cache_hits: AtomicU64,
    pub(crate) quiescence: Arc<Quiescence>,
    /// How an idle worker waits: how long it spins before it sleeps, and sleeps before it
    /// gives its thread back.
    pub(crate) patience: Patience,
    pub(crate) default_limits: Limits,
    pub(crate) threads: Threads,
    pub(crate) ledger: Ledger,
    /// Started once per engine: a host that shares the process's engine shares its ticker.
    pub(crate) deadline_ticker: Arc<Once>,
    /// Failures of workers that have no parent to tell (shared workers).
    pub(crate) shared_failures: tokio::sync::broadcast::Sender<ErrorEvent>,
    /// How workers are placed on other hosts, once this host has joined a lattice.
    pub(crate) placer: std::sync::OnceLock<Arc<dyn Placer>>,
    /// Proxies of workers placed on other hosts that are running (each counts as busy in
    /// `quiescence`).
    pub(crate) live_proxies: std::sync::atomic::AtomicUsize,
    /// Whether the workers this host placed on other hosts, and what they reach, are quiet;
    /// set when the host joins a lattice.
    pub(crate) lattice_quiet: std::sync::OnceLock<Arc<dyn LatticeQuiet>>,
    /// Shared-worker names across hosts, set when the host joins a lattice.
    pub(crate) shared_names: std::sync::OnceLock<Arc<dyn super::shared_workers::SharedNames>>,
}

impl Services {
    /// Loads the component a worker names by `relative`, beneath `dir` (the worker's own
    /// component's directory), as a capability: nothing outside `dir` can be reached.
    pub(crate) fn load_beneath(
        &self,
        dir: &ComponentDir,
        relative: &str,
        location: &str,
    ) -> Result<Component, LoadError> {
        let opened = dir.open_component(relative, location, self.max_component_size)?;
        self.load_opened(opened, location, |key| dir.open_parent_of(key))
    }

    /// Loads the component at the host path `path` (the host program's own choice).
    pub(crate) fn load_path(&self, path: &Path) -> Result<Component, LoadError> {
        let opened = location::open_host_path(path, self.max_component_size)?;
        let location = path.display().to_string();
        self.load_opened(opened, &location, |key| ComponentDir::open(key.parent().unwrap_or(Path::new("/"))))
    }

    /// Compiles (or finds) an opened component; `dir_of` opens its directory, given its key.
    fn load_opened(
        &self,
        opened: location::Opened,
        location: &str,
        dir_of: impl FnOnce(&Path) -> std::io::Result<ComponentDir>,
    ) -> Result<Component, LoadError> {
        let path = Path::new(location);
        let (key, id) = (opened.key.clone(), opened.id);
        let entry = {
            let mut components = self.components.lock().unwrap_or_else(|p| p.into_inner());
            components.entry(id).or_default().clone()
        };
        let mut names = entry.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(component) = names.iter().find(|component| component.key() == key) {
            return Ok(component.clone());
        }
        if let Some(compiled) = names.first() {
            // Another name of the same file (a hard link, as a bundle of scripts has one per
            // script): compiled once, but its workers are where this name is, and called by it.
            let dir = dir_of(&key).map_err(|source| LoadError::Read { location: location.to_string(), source })?;
            let component = compiled.relocated(path, key, dir);
            names.push(component.clone());
            return Ok(component);
        }
        let loaded = self.compile_opened(opened, location, path, key, dir_of);
        match &loaded {
            Ok(component) => names.push(component.clone()),
            // A file that does not load leaves no entry behind.
            Err(_) => {
                drop(names);
                let mut components = self.components.lock().unwrap_or_else(|p| p.into_inner());
                if components.get(&id).is_some_and(|e| Arc::ptr_eq(e, &entry)) && Arc::strong_count(&entry) <= 2 {
                    components.remove(&id);
                }
            }
        }
        loaded
    }

    fn compile_opened(
        &self,
        opened: location::Opened,
        location: &str,
        path: &Path,
        key: PathBuf,
        dir_of: impl FnOnce(&Path) -> std::io::Result<ComponentDir>,
    ) -> Result<Component, LoadError> {
        let dir = dir_of(&key).map_err(|source| LoadError::Read { location: location.to_string(), source })?;
        let bytes = opened.read()?;
        let compiled = match Engine::detect_precompiled(&bytes) {
            Some(_) if !self.allow_precompiled => {
                return Err(LoadError::Invalid {
                    location: location.to_string(),
                    cause: "it is precompiled, and this host does not accept precompiled components \
                            (allow them only for files that are yours: `--allow-precompiled`)"
                        .to_string(),
                });
            }
            // SAFETY: the host was configured to trust precompiled files (`allow_precompiled`).
            Some(_) => unsafe { component::deserialize(&self.engine, path, &bytes)? },
            None => {
                let (compiled, hit) =
                    component::compile(&self.engine, self.cache_dir.as_deref(), self.cache_max_size, path, &bytes)?;
                let counter = if hit { &self.cache_hits } else { &self.compiled };
                counter.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(location = %location, from_cache = hit, "loaded component");
                compiled
            }
        };
        Component::link(&self.linker, path, key, dir, compiled)
    }

    /// Registers the statistics of a new worker, forgetting the oldest ended ones beyond
    /// twice [`KEPT_REPORTS`].
    pub(crate) fn register_stats(&self, name: &str, location: &str) -> Arc<WorkerStats> {
        let stats = Arc::new(WorkerStats::new(name.to_string(), location.to_string()));
        let mut all = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        if all.len() >= 2 * KEPT_REPORTS {
            // Forget the oldest ended workers, keeping the last `KEPT_REPORTS` of them.
            let ended = all.iter().filter(|s| s.has_ended()).count();
            let mut forget = ended.saturating_sub(KEPT_REPORTS);
            all.retain(|s| {
                let drop = forget > 0 && s.has_ended();
                forget -= usize::from(drop);
                !drop
            });
        }
        all.push(stats.clone());
        stats
    }

    pub(crate) fn count_copied(&self, bytes: usize) {
        self.buffer_bytes_copied.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Starts the thread that advances the engine's epoch every [`DEADLINE_TICK`], so that
    /// running guests check their CPU deadline; once, when the first worker with a deadline
    /// starts. It ends when the engine is dropped: never, for the process's shared engine,
    /// whose hosts share one ticker.
    pub(crate) fn start_deadline_ticker(&self) {
        self.deadline_ticker.call_once(|| {
            let engine = self.engine.weak();
            let started = std::thread::Builder::new().name("wasm-workers deadline ticker".into()).spawn(move || {
                while let Some(engine) = engine.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(DEADLINE_TICK);
                }
            });
            if let Err(error) = started {
                tracing::error!("cannot start the deadline ticker; CPU deadlines are not enforced: {error}");
            }
        });
    }

    /// A shared worker failed: it has no parent to tell, so the host's watchers hear of it
    /// (the chapter reports a shared worker's errors to the console).
    pub(crate) fn shared_worker_failed(&self, error: ErrorEvent) {
        tracing::error!("{error}");
        let _ = self.shared_failures.send(error);
    }

    /// Counts a worker in, unless the host runs its limit already.
    pub(crate) fn reserve_worker(&self) -> bool {
        let max = self.max_workers;
        self.live.fetch_update(Ordering::AcqRel, Ordering::Acquire, |live| (live < max).then_some(live + 1)).is_ok()
    }

    /// Counts a worker out.
    pub(crate) fn worker_stopped(&self) {
        self.live.fetch_sub(1, Ordering::AcqRel);
    }
}
