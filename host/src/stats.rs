//! What each worker did: messages and bytes in and out, CPU time, peak memory, how it ended.
//! Counted by the worker's own thread as it runs; read at any time with [`Host::stats`].
//!
//! [`Host::stats`]: crate::Host::stats

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// One worker's counters, shared between its thread and the host.
#[derive(Debug, Default)]
pub(crate) struct WorkerStats {
    pub(crate) name: String,
    pub(crate) location: String,
    messages_in: AtomicU64,
    bytes_in: AtomicU64,
    messages_out: AtomicU64,
    bytes_out: AtomicU64,
    cpu_nanos: AtomicU64,
    peak_memory: AtomicU64,
    ended: Mutex<Option<String>>,
    /// The lattice host it runs on, if not this one.
    host: Mutex<Option<String>>,
}

/// A snapshot of one worker's statistics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerReport {
    /// The worker's name.
    pub name: String,
    /// Its component's location.
    pub location: String,
    /// Messages delivered to it.
    pub messages_in: u64,
    /// Data bytes of the messages delivered to it.
    pub bytes_in: u64,
    /// Messages it posted (to its parent, children or ports).
    pub messages_out: u64,
    /// Data bytes of the messages it posted.
    pub bytes_out: u64,
    /// CPU time its thread used; known once it has ended.
    pub cpu_time: Duration,
    /// The largest linear memory it had, in bytes.
    pub peak_memory: u64,
    /// How it ended (`closed`, `idle`, `terminated`, `failed: ...`); `None` while it runs.
    pub ended: Option<String>,
    /// The id of the lattice host it ran on; `None` for this host. The counters of a worker
    /// on another host are what crossed to and from it here.
    pub host: Option<String>,
}

impl WorkerStats {
    pub(crate) fn new(name: String, location: String) -> Self {
        WorkerStats { name, location, ..WorkerStats::default() }
    }

    pub(crate) fn received(&self, messages: usize, bytes: usize) {
        self.messages_in.fetch_add(messages as u64, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Takes back messages counted received that the guest discarded.
    pub(crate) fn unreceived(&self, messages: usize, bytes: usize) {
        self.messages_in.fetch_sub(messages as u64, Ordering::Relaxed);
        self.bytes_in.fetch_sub(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn posted(&self, bytes: usize) {
        self.messages_out.fetch_add(1, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Records the end: how, the thread's CPU time, and the peak memory.
    /// Marks the start of the worker on the calling thread (which may have run others before).
    /// Records that the worker runs on lattice host `host`.
    pub(crate) fn set_host(&self, host: &str) {
        *self.host.lock().unwrap_or_else(|p| p.into_inner()) = Some(host.to_string());
    }

    /// Adds CPU time the worker used, on whichever thread ran it.
    pub(crate) fn ran(&self, cpu: Duration) {
        self.cpu_nanos.fetch_add(cpu.as_nanos() as u64, Ordering::Relaxed);
    }

    pub(crate) fn ended(&self, how: String, peak_memory: usize) {
        self.peak_memory.store(peak_memory as u64, Ordering::Relaxed);
        *self.ended.lock().unwrap_or_else(|p| p.into_inner()) = Some(how);
    }

    /// Records how a worker on another host ended (its CPU time and memory are that host's).
    pub(crate) fn ended_elsewhere(&self, how: String) {
        *self.ended.lock().unwrap_or_else(|p| p.into_inner()) = Some(how);
    }

    pub(crate) fn has_ended(&self) -> bool {
        self.ended.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    pub(crate) fn report(&self) -> WorkerReport {
        let ended = self.ended.lock().unwrap_or_else(|p| p.into_inner()).clone();
        // Until the end, the counter holds the thread's CPU time at the start.
        let cpu_nanos = if ended.is_some() { self.cpu_nanos.load(Ordering::Relaxed) } else { 0 };
        WorkerReport {
            name: self.name.clone(),
            location: self.location.clone(),
            messages_in: self.messages_in.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            messages_out: self.messages_out.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            cpu_time: Duration::from_nanos(cpu_nanos),
            peak_memory: self.peak_memory.load(Ordering::Relaxed),
            ended,
            host: self.host.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }
}

/// The CPU time the calling thread has used.
/// The CPU time the calling thread has used.
pub(crate) fn thread_cpu_time() -> Duration {
    let mut time = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `time` is a valid, writable timespec; the clock id is a constant the OS knows.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut time) } == 0;
    if ok {
        Duration::new(time.tv_sec as u64, time.tv_nsec as u32)
    } else {
        Duration::ZERO
    }
}
