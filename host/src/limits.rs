//! Per-worker resource limits: linear memory, table elements, instances.
//!
//! Each worker's store has a [`Limiter`] that enforces its [`Limits`] and records the peak
//! linear memory the worker reached (for statistics). A guest whose memory or table would
//! grow past its limit sees the growth fail (`memory.grow` returns -1, which a Rust guest
//! turns into an allocation failure); an instantiation past the instance limit fails.

use wasmtime::ResourceLimiter;

/// Limits of one worker. `None` is no limit beyond the engine's own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory per memory, in bytes.
    pub memory: Option<usize>,
    /// Elements per table.
    pub table_elements: Option<usize>,
    /// Core instances in the worker's component.
    pub instances: Option<usize>,
    /// Children running at once (inherited, so it bounds every generation below too).
    pub children: Option<usize>,
}

/// The store's limiter: enforces [`Limits`] and records the peak memory.
pub(crate) struct Limiter {
    limits: Limits,
    /// The worker's linear memory now, over all its memories, in bytes.
    memory: usize,
    /// The largest `memory` has been.
    pub(crate) peak_memory: usize,
}

impl Limiter {
    pub(crate) fn new(limits: Limits) -> Self {
        Limiter { limits, memory: 0, peak_memory: 0 }
    }

    /// The worker's linear memory now, in bytes.
    pub(crate) fn memory(&self) -> usize {
        self.memory
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if self.limits.memory.is_some_and(|limit| desired > limit) {
            return Ok(false);
        }
        self.memory = self.memory.saturating_sub(current).saturating_add(desired);
        self.peak_memory = self.peak_memory.max(self.memory);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(!self.limits.table_elements.is_some_and(|limit| desired > limit))
    }

    fn instances(&self) -> usize {
        self.limits.instances.unwrap_or(10_000)
    }

    fn tables(&self) -> usize {
        10_000
    }

    fn memories(&self) -> usize {
        10_000
    }
}
