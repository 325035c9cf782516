//! The host: one engine, the components it has loaded, and the workers it spawns.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use wasmtime::Engine;

use crate::accounting::{DropReason, DroppedMessages, Ledger, MessageCounts};
use crate::budget::{self, HostBudget};
use crate::error::{HostError, LoadError, SpawnError};
use crate::event_loop::Patience;
use crate::limits::Limits;
use crate::location;
use crate::messaging::MessagePort;
use crate::stats::WorkerReport;
use crate::threads::Threads;
use crate::worker::{
    self, component, Component, ConnectError, Services, SharedWorkers, Timers, WorkerHandle, WorkerOptions,
};
use wasm_workers_protocol::ErrorEvent;

/// How a [`Host`] is set up.
#[derive(Clone, Debug, Default)]
pub struct HostConfig {
    /// What `hardware-concurrency()` returns to every worker; the host's available
    /// parallelism if `None`.
    pub hardware_concurrency: Option<u32>,
    /// The largest buffer a worker may create, in bytes; 4 GiB if `None`.
    pub max_buffer_len: Option<u64>,
    /// How many workers may run at once in this host, children and shared workers included;
    /// if `None`, as many as the kernel's limit on memory mappings safely allows (each worker
    /// takes about a dozen), at most 100,000. Past it, spawning fails with
    /// [`SpawnError::Limit`] instead of the process running out of mappings.
    pub max_workers: Option<usize>,
    /// Where compiled components are cached on disk; no cache if `None`.
    ///
    /// The cache holds machine code that this process runs: the directory must be writable
    /// only by those trusted to run code as this user (it is created with mode 0700).
    /// Corrupt entries are detected and recompiled; forged ones cannot be.
    pub cache_dir: Option<PathBuf>,
    /// The most bytes the compile cache in [`cache_dir`](Self::cache_dir) holds; past it, the
    /// entries used least recently are removed
    /// ([`DEFAULT_CACHE_MAX_SIZE`](crate::DEFAULT_CACHE_MAX_SIZE) if `None`).
    pub cache_max_size: Option<u64>,
    /// Whether [`Host::load`] accepts precompiled components (`.cwasm` from
    /// `wasm-workers compile`). Their machine code is trusted as it is: enable this only for
    /// files that are yours. Off by default.
    pub allow_precompiled: bool,
    /// How long a worker whose queue has run empty keeps checking for a task before its
    /// thread sleeps. Waking a sleeping thread on another CPU costs tens of microseconds on
    /// a VM; a short spin catches the next message of a conversation or a stream without
    /// it, for the price of that much CPU time after each burst. If `None`:
    /// [`DEFAULT_SPIN`] when this process may run on more than one CPU, else no spin (a
    /// spinning thread would only delay the thread it waits for).
    pub spin: Option<Duration>,
    /// How long a worker sleeps with nothing to do before it gives its thread back
    /// ([`DEFAULT_RELEASE_THREAD_AFTER`] if `None`; `Duration::MAX`: never). The worker stays
    /// as it was (its instance, its memory, its place in every count); its next task starts
    /// it again on a parked thread, or a new one. An idle worker then costs its instance and
    /// memory only, not a thread's stack.
    pub release_thread_after: Option<Duration>,
    /// How long a worker thread whose worker has ended waits to run the next one before it
    /// exits ([`DEFAULT_THREAD_KEEP_ALIVE`] if `None`). Reusing a thread saves most of what
    /// a spawn costs.
    pub thread_keep_alive: Option<Duration>,
    /// How many worker threads may wait for a worker at once ([`DEFAULT_IDLE_THREADS`] if
    /// `None`; 0 turns reuse off).
    pub idle_threads: Option<usize>,
    /// Where the host's worker instances come from: by default the process's shared pool
    /// (see [`Pooling`]).
    pub pooling: Pooling,
    /// The most memory all of this host's workers together may make it hold, in bytes: their
    /// linear memories and everything they cause the host to allocate (buffers, messages on
    /// their way, ports, timers, workers they started; see [`Limits::memory`]). If `None`,
    /// half of the machine's physical memory, so that a host whose workers have no memory
    /// limit of their own is bounded too.
    pub memory_budget: Option<u64>,
    /// The largest component file [`Host::load`] reads, and a worker may spawn, in bytes
    /// ([`DEFAULT_MAX_COMPONENT_SIZE`](crate::DEFAULT_MAX_COMPONENT_SIZE) if `None`).
    pub max_component_size: Option<u64>,
    /// Limits for every worker of this host, where a worker's own
    /// [`WorkerOptions::limits`](crate::WorkerOptions) leave them open (`None`). Unset queue
    /// limits fall back to [`DEFAULT_QUEUED_MESSAGES`](crate::DEFAULT_QUEUED_MESSAGES) and
    /// its siblings.
    pub limits: Limits,
}

/// Where a host's worker instances come from ([`HostConfig::pooling`]).
///
/// A pooling allocator reserves address space once and hands out slots: spawning is then
/// about 2.5 times as fast as mapping a new linear memory and tables for each worker (the
/// kernel maps and unmaps nothing per worker, and a returned slot keeps the pages a Rust
/// guest's stack and data use). The price is the reservation (not commitment) of 4 GiB and
/// a guard of address space per slot — some 22 TiB for 5,460 slots, of the 128 TiB a
/// process has — so a process holds one pool that all its hosts share, not one per host.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Pooling {
    /// The process's pool, reserved when the first host that uses it starts and shared with
    /// every other such host (one engine for them all), sized for the default
    /// [`HostConfig::max_workers`]. A host allowed more workers than it holds, or a process
    /// that cannot reserve it (limited address space), gets instances mapped one by one. The
    /// hosts sharing it run at most that many workers together: past it, a new worker fails
    /// to start with an error event that says so. A component that needs more of a pool slot
    /// than it has (more than 8 core instances, 1 memory, 4 tables or 100,000 table
    /// elements) fails the same way: give its host `Pooling::Off`. The reservation, and the
    /// pages kept resident in returned slots, last as long as the process.
    #[default]
    Shared,
    /// A pool of this host's own, sized for its [`HostConfig::max_workers`] (the CLI's
    /// choice: one host per process).
    Own,
    /// No pool: each instance mapped on its own, the least address space.
    Off,
}

/// The default of [`HostConfig::release_thread_after`].
pub const DEFAULT_RELEASE_THREAD_AFTER: Duration = Duration::from_millis(100);
/// The default of [`HostConfig::thread_keep_alive`].
pub const DEFAULT_THREAD_KEEP_ALIVE: Duration = Duration::from_secs(1);
/// The default of [`HostConfig::idle_threads`].
pub const DEFAULT_IDLE_THREADS: usize = 1024;

/// The default of [`HostConfig::spin`] on more than one CPU.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(20);

/// The default of [`HostConfig::max_buffer_len`].
pub const DEFAULT_MAX_BUFFER_LEN: u64 = 4 << 30;

/// Runs workers: owns the engine, compiles each component once, and spawns workers, each on
/// its own thread. Cheap to clone; clones share everything.
///
/// # Example
///
/// ```no_run
/// use wasm_workers::{Host, Message, WorkerEvent, WorkerOptions};
///
/// # fn main() -> anyhow::Result<()> {
/// let host = Host::new()?;
/// let echo = host.load("guests/echo.wasm")?;
/// let mut worker = host.spawn(&echo, WorkerOptions::named("echo"))?;
/// worker.post_message(Message::json(&"hello")?)?;
/// if let Some(WorkerEvent::Message(reply)) = worker.recv_blocking() {
///     println!("{}", reply.as_json_text().unwrap_or("(not JSON)"));
/// }
/// worker.terminate();
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Host(Arc<Services>);

impl Host {
    /// A host with the default configuration.
    ///
    /// # Errors
    ///
    /// [`HostError`] if the engine cannot be created on this machine.
    pub fn new() -> Result<Host, HostError> {
        Host::with_config(HostConfig::default())
    }

    /// A host with `config`.
    ///
    /// # Errors
    ///
    /// [`HostError`] if the engine cannot be created on this machine.
    pub fn with_config(config: HostConfig) -> Result<Host, HostError> {
        if let Some(dir) = &config.cache_dir {
            component::check_cache_dir(dir).map_err(HostError)?;
        }
        let max_workers = config.max_workers.unwrap_or_else(default_max_workers).max(1);
        let (engine, deadline_ticker) = match config.pooling {
            Pooling::Shared => match shared_engine() {
                Some((engine, slots)) if max_workers <= *slots => (engine.clone(), SHARED_TICKER.clone()),
                _ => (engine(None)?, Arc::new(Once::new())),
            },
            Pooling::Own => (engine(Some(u32::try_from(max_workers).unwrap_or(u32::MAX)))?, Arc::new(Once::new())),
            Pooling::Off => (engine(None)?, Arc::new(Once::new())),
        };
        let linker = component::linker(&engine).map_err(|e| HostError(format!("{e:#}")))?;
        let hardware_concurrency = config
            .hardware_concurrency
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32));
        Ok(Host(Arc::new(Services {
            engine,
            linker,
            components: Mutex::default(),
            hardware_concurrency: hardware_concurrency.max(1),
            live: AtomicUsize::new(0),
            max_workers,
            max_buffer_len: config.max_buffer_len.unwrap_or(DEFAULT_MAX_BUFFER_LEN),
            max_component_size: config.max_component_size.unwrap_or(location::DEFAULT_MAX_COMPONENT_SIZE),
            memory_budget: HostBudget::new(
                config.memory_budget.unwrap_or_else(|| budget::physical_memory().map_or(u64::MAX, |bytes| bytes / 2)),
            ),
            buffer_bytes_copied: AtomicU64::new(0),
            shared: SharedWorkers::default(),
            timers: Timers::new(),
            stats: Mutex::default(),
            cache_dir: config.cache_dir,
            cache_max_size: config.cache_max_size.unwrap_or(component::DEFAULT_CACHE_MAX_SIZE),
            allow_precompiled: config.allow_precompiled,
            compiled: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            quiescence: Arc::default(),
            patience: Patience {
                spin: config.spin.unwrap_or_else(|| {
                    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
                    if cpus > 1 {
                        DEFAULT_SPIN
                    } else {
                        Duration::ZERO
                    }
                }),
                dormant_after: match config.release_thread_after.unwrap_or(DEFAULT_RELEASE_THREAD_AFTER) {
                    Duration::MAX => None,
                    after => Some(after),
                },
            },
            default_limits: config.limits,
            threads: Threads::new(
                config.thread_keep_alive.unwrap_or(DEFAULT_THREAD_KEEP_ALIVE),
                config.idle_threads.unwrap_or(DEFAULT_IDLE_THREADS),
            ),
            ledger: Ledger::default(),
            deadline_ticker,
            shared_failures: tokio::sync::broadcast::Sender::new(64),
            placer: std::sync::OnceLock::new(),
            shared_names: std::sync::OnceLock::new(),
            lattice_quiet: std::sync::OnceLock::new(),
            live_proxies: std::sync::atomic::AtomicUsize::new(0),
        })))
    }

    /// Loads the component at `path`, compiling it the first time this host sees it.
    ///
    /// # Errors
    ///
    /// [`LoadError`] if the file cannot be read, is not a regular file of at most
    /// [`HostConfig::max_component_size`] bytes, is not a valid component, or does not
    /// implement the `worker` world.
    pub fn load(&self, path: impl AsRef<Path>) -> Result<Component, LoadError> {
        self.0.load_path(path.as_ref())
    }

    /// Spawns a worker running `component` on a new thread (`new Worker(url, options)`).
    /// Returns as soon as the thread is started; the component is instantiated on it, and a
    /// failure to instantiate arrives as the worker's [`WorkerEvent::Error`].
    ///
    /// # Errors
    ///
    /// [`SpawnError::Limit`] if the host runs its limit of workers; [`SpawnError::Thread`] if
    /// the operating system cannot start a thread or grant a directory.
    ///
    /// [`WorkerEvent::Error`]: crate::WorkerEvent::Error
    pub fn spawn(&self, component: &Component, options: WorkerOptions) -> Result<WorkerHandle, SpawnError> {
        let name = options.name.clone().unwrap_or_default();
        worker::spawn_root(&self.0, component, options)
            .map_err(|failure| failure.into_error(&name, component.location()))
    }

    /// Connects to the shared worker named `name` (`new SharedWorker(url, name)`), starting it
    /// from the component at `path` if no worker of that name runs. Returns this client's
    /// port; the shared worker's `on-connect` receives the other end.
    ///
    /// # Errors
    ///
    /// [`ConnectError::Mismatch`] if a shared worker of that name runs another component;
    /// [`ConnectError::Load`] if the component cannot be loaded.
    pub fn connect_shared(&self, path: impl AsRef<Path>, name: &str) -> Result<MessagePort, ConnectError> {
        let component = self.load(path)?;
        Ok(self.0.shared.connect(&self.0, &component, name, Limits::default(), None)?.0)
    }

    /// Hands `port` to the shared worker `name` running `component` through its
    /// `on-connect`, starting the worker with `limits` (the host's defaults where they are
    /// open) if none runs (a graph's channel to a shared worker).
    ///
    /// # Errors
    ///
    /// As for [`connect_shared`](Self::connect_shared).
    pub fn connect_shared_with(
        &self,
        component: &Component,
        name: &str,
        port: MessagePort,
        limits: Limits,
    ) -> Result<(), ConnectError> {
        self.0.shared.connect_port(&self.0, component, name, port, limits).map(drop)
    }

    /// The number of bytes guests have copied into or out of buffers (`read`, `write`,
    /// `from-bytes`). Transfers copy none.
    pub fn buffer_bytes_copied(&self) -> u64 {
        self.0.buffer_bytes_copied.load(Ordering::Relaxed)
    }

    /// How many components this host compiled, and how many it took from the on-disk cache
    /// instead.
    pub fn compile_counts(&self) -> (u64, u64) {
        (self.0.compiled.load(Ordering::Relaxed), self.0.cache_hits.load(Ordering::Relaxed))
    }

    /// Compiles a component ahead of time for this host's engine (`wasm-workers compile`):
    /// the result loads without compiling on a host that allows precompiled components.
    ///
    /// # Errors
    ///
    /// [`LoadError`] if the file cannot be read or is not a valid component.
    pub fn precompile(&self, path: impl AsRef<Path>) -> Result<Vec<u8>, LoadError> {
        let path = path.as_ref();
        let bytes = location::open_host_path(path, self.0.max_component_size)?.read()?;
        self.0
            .engine
            .precompile_component(&bytes)
            .map_err(|error| LoadError::Invalid { location: path.display().to_string(), cause: format!("{error:#}") })
    }

    /// Statistics of the workers this host has spawned (children and shared workers
    /// included), in the order they were spawned: every worker still running, and the last
    /// [`KEPT_REPORTS`] or more that have ended (older ones are forgotten, so that a host
    /// that runs for days keeps a bounded record).
    pub fn stats(&self) -> Vec<WorkerReport> {
        self.0.stats.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|s| s.report()).collect()
    }

    /// Resolves once every worker of this host waits for a task, with an empty queue and no
    /// pending timer, and no task is on its way between them (at once if that is so now).
    ///
    /// From then on nothing happens unless the host program posts, connects or terminates: a
    /// program that will do none of that (its input has ended) can end the run. Workers that
    /// hold ports to each other but wait for each other count as quiet. On a lattice,
    /// the workers this host placed elsewhere (and all they reach) count too: it resolves
    /// once they all wait and nothing is on its way between hosts.
    pub async fn quiescent(&self) {
        let Some(lattice) = self.0.lattice_quiet.get() else { return self.0.quiescence.wait().await };
        // Every worker here waits, proxies included (no worker runs elsewhere); or all but the
        // proxies wait and the lattice says the rest is quiet too.
        let here = self.0.quiescence.wait();
        tokio::pin!(here);
        loop {
            tokio::select! {
                () = &mut here => return,
                quiet = lattice.quiet() => if quiet {
                    return;
                },
            }
        }
    }

    /// How many messages were dropped, by reason.
    pub fn dropped_messages(&self) -> DroppedMessages {
        self.0.ledger.counts().dropped
    }

    /// How many messages were posted, delivered and dropped (see [`MessageCounts`]).
    pub fn message_counts(&self) -> MessageCounts {
        self.0.ledger.counts()
    }

    /// The host's memory budget ([`HostConfig::memory_budget`]), in bytes.
    pub fn memory_budget(&self) -> u64 {
        self.0.memory_budget.limit()
    }

    /// The memory charged now to this host's workers, in bytes: their linear memories and
    /// what they make the host hold, counted as the shares of the host's budget that the
    /// workers hold (each takes 64 KiB at a time, and gives back what it does not use: this
    /// is at most about two such chunks per worker above what is charged, and zero once every
    /// worker has ended and its messages are settled). Never more than
    /// [`memory_budget`](Self::memory_budget), but for what the host program sends workers.
    pub fn memory_charged(&self) -> u64 {
        self.0.memory_budget.used()
    }

    /// Counts `n` messages that the host program received from its workers (delivered, for
    /// the ledger) but could not pass on, because its own output was closed: they move from
    /// delivered to dropped ([`DropReason::OutputClosed`](crate::DropReason::OutputClosed)),
    /// so that a run whose reader went away does not report them delivered.
    pub fn count_lost(&self, n: u64) {
        self.0.ledger.undelivered(DropReason::OutputClosed, n);
    }

    /// Subscribes to the failures of shared workers, which have no parent to tell. A failure
    /// is also logged (at `error` level) whether or not anyone listens.
    pub fn watch_shared_failures(&self) -> tokio::sync::broadcast::Receiver<ErrorEvent> {
        self.0.shared_failures.subscribe()
    }

    /// What `hardware-concurrency()` returns to this host's workers.
    pub fn hardware_concurrency(&self) -> u32 {
        self.0.hardware_concurrency
    }

    /// The number of this host's workers whose threads are running, children included.
    ///
    /// A worker counts from its spawn until its thread ends, which is before its parent
    /// receives its last event, and after all of its own children have stopped.
    pub fn live_workers(&self) -> usize {
        self.0.live.load(Ordering::Acquire)
    }

    /// The most workers this host runs at once.
    pub fn max_workers(&self) -> usize {
        self.0.max_workers
    }

    /// The services this host shares with its workers.
    pub(crate) fn services(&self) -> &Arc<Services> {
        &self.0
    }
}

/// A new engine, with a pool of `pool_slots` workers if set.
fn engine(pool_slots: Option<u32>) -> Result<Engine, HostError> {
    Engine::new(&component::config(pool_slots)).map_err(|e| HostError(format!("{e:#}")))
}

/// The engine with the process's shared pool, and its number of slots; `None` if the pool
/// cannot be reserved here (then hosts that would share it map instances one by one).
fn shared_engine() -> Option<&'static (Engine, usize)> {
    static SHARED: std::sync::OnceLock<Option<(Engine, usize)>> = std::sync::OnceLock::new();
    SHARED
        .get_or_init(|| {
            let slots = default_max_workers();
            match engine(Some(u32::try_from(slots).unwrap_or(u32::MAX))) {
                Ok(engine) => Some((engine, slots)),
                Err(error) => {
                    tracing::debug!(
                        "no shared pool of {slots} worker slots ({error}); instances are mapped one by one"
                    );
                    None
                }
            }
        })
        .as_ref()
}

/// The deadline ticker of the shared engine: one for every host that shares it.
static SHARED_TICKER: std::sync::LazyLock<Arc<Once>> = std::sync::LazyLock::new(|| Arc::new(Once::new()));

/// The default of [`HostConfig::max_workers`]: a twelfth of the kernel's limit on memory
/// mappings per process (each worker takes about a dozen: thread stack and guard, signal
/// stack, linear memory and its guard, tables), at most 100,000.
fn default_max_workers() -> usize {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|text| text.trim().parse::<usize>().ok())
        .map_or(4096, |maps| (maps / 12).clamp(64, 100_000))
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host").field("hardware_concurrency", &self.0.hardware_concurrency).finish_non_exhaustive()
    }
}
