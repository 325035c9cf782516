//! The engine and the components it runs: one [`wasmtime::Engine`] per host, each component
//! compiled once per host and kept ready to instantiate as an [`InstancePre`].
//!
//! [`InstancePre`]: wasmtime::component::InstancePre

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use wasmtime::component::Linker;
use wasmtime::{Config, Engine};

use crate::bindings;
use crate::error::LoadError;
use crate::location::ComponentDir;

use super::state::WorkerState;

/// The engine configuration every host uses; with `pool_slots`, instances come from a
/// pooling allocator of that many workers.
pub(crate) fn config(pool_slots: Option<u32>) -> Config {
    let mut config = Config::new();
    // `terminate()` must stop a guest that never returns: epoch interruption adds a check at
    // function entries and loop heads, and the epoch is bumped only when a worker is
    // terminated (see `Control::terminate` in the event loop).
    config.epoch_interruption(true);
    // Workers call guests synchronously from their own threads; without the machinery for
    // component-model concurrency a host-to-guest call is ~3x cheaper.
    config.concurrency_support(false);
    if std::env::var_os(PERFMAP_ENV).is_some() {
        // Names compiled guest functions in `/tmp/perf-<pid>.map`, for `perf report`.
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    if let Some(slots) = pool_slots {
        // Instances from a pool reserved once: instantiating takes a slot instead of mapping
        // a new linear memory and tables, and a worker's end returns it instead of unmapping
        // them (unmapping makes every CPU flush its TLB). The reservation is virtual address
        // space only (4 GiB and a guard per slot, what a wasm32 memory may reach anyway);
        // pages are committed as guests touch them, and decommitted when a slot is returned
        // except for its first `KEEP_RESIDENT` bytes, which are reset in place.
        let mut pool = wasmtime::PoolingAllocationConfig::new();
        pool.total_component_instances(slots)
            .total_core_instances(slots.saturating_mul(CORE_INSTANCES_PER_WORKER))
            .total_memories(slots)
            .total_tables(slots.saturating_mul(TABLES_PER_WORKER))
            .max_core_instances_per_component(CORE_INSTANCES_PER_WORKER)
            .max_memories_per_component(1)
            .max_tables_per_component(TABLES_PER_WORKER)
            .table_elements(TABLE_ELEMENTS)
            .total_stacks(0);
        // Keeping pages resident is right only where the kernel says which pages a guest
        // touched (`PAGEMAP_SCAN`, Linux 6.7): then a returned slot resets those pages and no
        // others. Without it, wasmtime resets the whole region, faulting in pages the guest
        // never used: ending 5,460 idle workers at once took RSS from 0.65 to 6.1 GB. So
        // without the scan nothing is kept (each slot is decommitted whole).
        if wasmtime::PoolingAllocationConfig::is_pagemap_scan_available() {
            pool.pagemap_scan(wasmtime::Enabled::Yes)
                .linear_memory_keep_resident(KEEP_RESIDENT)
                .table_keep_resident(TABLE_KEEP_RESIDENT);
        }
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

/// Set (to anything) in the environment, the engine writes a perf map of the guest code it
/// compiles, so that `perf` names guest functions instead of showing bare addresses.
pub const PERFMAP_ENV: &str = "WASM_WORKERS_PERFMAP";

/// Bytes of a returned slot's linear memory that are reset in place (zeroed, or the data
/// image copied back) rather than given back to the kernel, so that the next worker in the
/// slot finds them mapped: no page faults there, and, for a guest that touched nothing beyond
/// them, no TLB shootdown when the slot is reset (pages beyond are still decommitted). It
/// covers a Rust guest's 1 MiB stack and its data (measured: spawn of one worker 66 → 54 µs
/// pinned, 137 → 73 µs unpinned). The cost is that a pooled host keeps this much resident per
/// slot it has used: as many as its most workers alive at once, plus wasmtime's 100 warm
/// unused slots. Linux only (elsewhere wasmtime ignores it).
const KEEP_RESIDENT: usize = 1152 * 1024;
/// The same for a slot's tables (a Rust guest's function table is a few KiB).
const TABLE_KEEP_RESIDENT: usize = 64 * 1024;

/// Core instances one worker's component may have in the pool (a Rust guest has three: its
/// module and two small shims; a JavaScript one from componentize-js 0.23 has 4, a Python
/// one from componentize-py 0.25 has 14). Each is a slot of address space, touched only when
/// used.
const CORE_INSTANCES_PER_WORKER: u32 = 16;
/// Tables one worker's component may have in the pool.
const TABLES_PER_WORKER: u32 = 4;
/// Elements per table in the pool (function tables of large guests).
const TABLE_ELEMENTS: usize = 100_000;

/// A linker with WASI (p2, synchronous) and the worker scope.
pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<WorkerState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    bindings::Worker::add_to_linker::<WorkerState, wasmtime::component::HasSelf<WorkerState>>(&mut linker, |state| {
        state
    })?;
    Ok(linker)
}

/// Compiles a component, through the on-disk cache in `cache` if there is one.
///
/// The cache keeps each compiled component in a file named after the SHA-256 of the
/// component's bytes and of the engine's compatibility hash (wasmtime version and every
/// setting that changes code), so a foreign or outdated entry is never looked up. Each file
/// starts with the SHA-256 of the artifact after it; a file that does not match (corrupt,
/// truncated) is ignored and rewritten. Files are written to a temporary name and renamed,
/// so that concurrent runs never read half a file.
///
/// The cache holds at most `max_size` bytes: after a write, the entries used least recently
/// (an entry's modification time is refreshed when it is used) are removed until it fits.
pub(crate) fn compile(
    engine: &Engine,
    cache: Option<&Path>,
    max_size: u64,
    location: &Path,
    bytes: &[u8],
) -> Result<(wasmtime::component::Component, bool), LoadError> {
    let invalid = |error: wasmtime::Error| LoadError::Invalid {
        location: location.display().to_string(),
        cause: format!("{error:#}"),
    };
    // Checked at every use, not only when the host started: someone else may have made the
    // directory since, or loosened it. A cache that is not safe is not used.
    let cache = cache.filter(|dir| match check_cache_dir(dir) {
        Ok(()) => true,
        Err(why) => {
            tracing::warn!("not using the compile cache: {why}");
            false
        }
    });
    let Some(cache) = cache else {
        return Ok((wasmtime::component::Component::from_binary(engine, bytes).map_err(invalid)?, false));
    };
    let entry = cache.join(format!("{}.cwasm", cache_key(engine, bytes)));
    if let Some(component) = read_cached(engine, &entry) {
        // Used now: the last to be evicted. Best effort, like every write to the cache.
        let _ = std::fs::File::options().write(true).open(&entry).and_then(|f| f.set_modified(SystemTime::now()));
        return Ok((component, true));
    }
    let component = wasmtime::component::Component::from_binary(engine, bytes).map_err(invalid)?;
    if let Err(error) = write_cached(&component, cache, &entry).and_then(|()| evict(cache, max_size)) {
        // A cache that cannot be written costs time, not correctness.
        tracing::warn!("cannot write the compile cache {}: {error}", entry.display());
    }
    Ok((component, false))
}

/// The default bound of the compile cache ([`HostConfig::cache_max_size`]): 2 GiB, some
/// hundreds of compiled components.
///
/// [`HostConfig::cache_max_size`]: crate::HostConfig::cache_max_size
pub const DEFAULT_CACHE_MAX_SIZE: u64 = 2 << 30;

/// Removes the cache's entries used least recently until it holds at most `max_size` bytes
/// of them (the newest entry stays even if it alone is larger).
fn evict(cache: &Path, max_size: u64) -> std::io::Result<()> {
    let mut entries = Vec::new();
    let mut total = 0u64;
    for entry in std::fs::read_dir(cache)? {
        let entry = entry?;
        let metadata = entry.metadata()?;
        if metadata.is_file() && entry.path().extension().is_some_and(|e| e == "cwasm") {
            total += metadata.len();
            entries.push((metadata.modified()?, metadata.len(), entry.path()));
        }
    }
    entries.sort();
    entries.pop();
    for (_, len, path) in entries {
        if total <= max_size {
            break;
        }
        if std::fs::remove_file(&path).is_ok() {
            total -= len;
        }
    }
    Ok(())
}

/// Refuses a cache directory that others could write (its entries become machine code in
/// this process), as ssh refuses a key file others can read. A directory that does not exist
/// yet is created with mode 0700 when the first entry is written.
pub(crate) fn check_cache_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let metadata = match std::fs::metadata(dir) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(format!("cannot use the compile cache {}: {error}", dir.display())),
    };
    let shown = dir.display();
    if !metadata.is_dir() {
        return Err(format!("the compile cache {shown} is not a directory"));
    }
    // SAFETY: `geteuid` has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if metadata.uid() != me {
        return Err(format!(
            "the compile cache {shown} belongs to user {}, not to this user ({me}): its entries would run as \
             machine code here. Use a directory of your own (--cache-dir), or --no-cache",
            metadata.uid()
        ));
    }
    if metadata.mode() & 0o022 != 0 {
        return Err(format!(
            "the compile cache {shown} is writable by others (mode {:o}): its entries would run as machine \
             code here. Fix it with `chmod go-w {shown}`, or use --no-cache",
            metadata.mode() & 0o7777
        ));
    }
    Ok(())
}

fn cache_key(engine: &Engine, bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    use std::hash::Hash;

    /// Feeds `Hash` output into SHA-256: stable across processes, unlike `DefaultHasher`.
    struct ShaHasher(Sha256);
    impl std::hash::Hasher for ShaHasher {
        fn finish(&self) -> u64 {
            0
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut hasher = ShaHasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.0.update(bytes);
    hex(&hasher.0.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn read_cached(engine: &Engine, entry: &Path) -> Option<wasmtime::component::Component> {
    use sha2::{Digest, Sha256};
    let data = std::fs::read(entry).ok()?;
    let (checksum, artifact) = data.split_at_checked(32)?;
    if Sha256::digest(artifact).as_slice() != checksum {
        tracing::warn!("ignoring a corrupt compile cache entry {}", entry.display());
        return None;
    }
    // SAFETY: the cache directory is trusted as the host's own (see `HostConfig::cache_dir`):
    // the entry was written there by `write_cached` with `Component::serialize`, under a name
    // that includes the engine's compatibility hash. The checksum catches corruption (not an
    // attacker who can write the directory, who could run code anyway); wasmtime also checks
    // the header against this engine before using it.
    match unsafe { wasmtime::component::Component::deserialize(engine, artifact) } {
        Ok(component) => Some(component),
        Err(error) => {
            tracing::warn!("ignoring the compile cache entry {}: {error}", entry.display());
            None
        }
    }
}

fn write_cached(component: &wasmtime::component::Component, cache: &Path, entry: &Path) -> std::io::Result<()> {
    use sha2::{Digest, Sha256};
    use std::os::unix::fs::DirBuilderExt;
    use std::sync::atomic::{AtomicU64, Ordering};
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let artifact = component.serialize().map_err(|e| std::io::Error::other(format!("{e:#}")))?;
    // Only this user may write the cache: its entries become machine code in this process.
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(cache)?;
    // It may have been made by someone else between the check and the creation.
    check_cache_dir(cache).map_err(std::io::Error::other)?;
    let unique = WRITES.fetch_add(1, Ordering::Relaxed);
    let temp = entry.with_extension(format!("tmp{}-{unique}", std::process::id()));
    let mut data = Sha256::digest(&artifact).to_vec();
    data.extend_from_slice(&artifact);
    std::fs::write(&temp, &data)?;
    std::fs::rename(&temp, entry)
}

/// Loads a precompiled component (`.cwasm`, from `wasm-workers compile`).
///
/// # Safety
///
/// `bytes` must come from `wasm-workers compile` or `Component::serialize` of a compatible
/// engine: wasmtime checks the header, but cannot check the machine code.
pub(crate) unsafe fn deserialize(
    engine: &Engine,
    location: &Path,
    bytes: &[u8],
) -> Result<wasmtime::component::Component, LoadError> {
    // SAFETY: the caller's.
    unsafe { wasmtime::component::Component::deserialize(engine, bytes) }
        .map_err(|error| LoadError::Invalid { location: location.display().to_string(), cause: format!("{error:#}") })
}

/// A component compiled and linked as a worker, ready to be instantiated on any thread.
/// Cheap to clone.
#[derive(Clone)]
pub struct Component(Arc<ComponentInner>);

struct ComponentInner {
    /// The compiled component, linked: shared by every name of one file.
    pre: Arc<bindings::WorkerPre<WorkerState>>,
    location: String,
    /// The canonical path: what identifies the component (for shared workers, the cache).
    key: PathBuf,
    /// Its directory, open: what its workers' locations are resolved beneath.
    dir: ComponentDir,
}

impl Component {
    /// Links a compiled component (read from `location`) as a worker.
    pub(crate) fn link(
        linker: &Linker<WorkerState>,
        location: &Path,
        key: PathBuf,
        dir: ComponentDir,
        component: wasmtime::component::Component,
    ) -> Result<Self, LoadError> {
        let location_text = location.display().to_string();
        let not_a_worker = |error: wasmtime::Error| LoadError::NotAWorker {
            location: location_text.clone(),
            cause: format!("{error:#}"),
        };
        let pre = linker.instantiate_pre(&component).map_err(not_a_worker)?;
        let pre = bindings::WorkerPre::new(pre).map_err(not_a_worker)?;
        Ok(Component(Arc::new(ComponentInner { pre: Arc::new(pre), location: location_text, key, dir })))
    }

    /// The same compiled component, loaded under another name (a hard link of its file).
    pub(crate) fn relocated(&self, location: &Path, key: PathBuf, dir: ComponentDir) -> Self {
        Component(Arc::new(ComponentInner {
            pre: self.0.pre.clone(),
            location: location.display().to_string(),
            key,
            dir,
        }))
    }

    /// Whether `self` and `other` are the same compilation under the same name (one
    /// [`Host::load`] result, or two loads of one path by one host).
    ///
    /// [`Host::load`]: crate::Host::load
    pub fn ptr_eq(&self, other: &Component) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Whether `self` and `other` share one compilation: they are [`ptr_eq`](Self::ptr_eq),
    /// or two names (hard links) of one file, loaded by one host.
    pub fn same_compilation(&self, other: &Component) -> bool {
        Arc::ptr_eq(&self.0.pre, &other.0.pre)
    }

    /// Where the component was loaded from, as given.
    pub fn location(&self) -> &str {
        &self.0.location
    }

    /// The canonical path of the component's file.
    pub fn key(&self) -> &Path {
        &self.0.key
    }

    /// The directory its workers' locations are resolved beneath.
    pub(crate) fn dir(&self) -> &ComponentDir {
        &self.0.dir
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn eviction_removes_the_entries_used_least_recently_until_the_cache_fits() {
        let cache = tempfile::tempdir().unwrap();
        let epoch = SystemTime::UNIX_EPOCH;
        for (name, age) in [("old", 1), ("newer", 2), ("newest", 3)] {
            let path = cache.path().join(format!("{name}.cwasm"));
            std::fs::write(&path, [0u8; 100]).unwrap();
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(epoch + Duration::from_secs(age))
                .unwrap();
        }
        std::fs::write(cache.path().join("other.txt"), [0u8; 1000]).unwrap();
        evict(cache.path(), 250).unwrap();
        let mut left: Vec<_> = std::fs::read_dir(cache.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        left.sort();
        assert_eq!(left, ["newer.cwasm", "newest.cwasm", "other.txt"]);
        evict(cache.path(), 0).unwrap();
        assert!(cache.path().join("newest.cwasm").exists(), "the newest entry stays");
        assert!(!cache.path().join("newer.cwasm").exists());
    }
}
