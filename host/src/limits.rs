//! Per-worker resource limits: linear memory, table elements, instances, children, the
//! worker's queue, and CPU time per task.
//!
//! Each worker's store has a [`Limiter`] that enforces its [`Limits`], charges its linear
//! memory to the worker's budget, and records the peak linear memory the worker reached (for
//! statistics). A guest whose memory or table would
//! grow past its limit sees the growth fail (`memory.grow` returns -1, which a Rust guest
//! turns into an allocation failure); an instantiation past the instance limit fails.

use std::time::Duration;

use std::sync::Arc;

use wasmtime::ResourceLimiter;

use crate::accounting::DropReason;
use crate::budget::{Budget, OverBudget};

/// Limits of one worker. `None` is no limit beyond the engine's own, except for the queue
/// limits, where it is the default ([`DEFAULT_QUEUED_MESSAGES`], [`DEFAULT_QUEUED_BYTES`],
/// [`DEFAULT_MESSAGE_SIZE`]): a queue is always bounded.
///
/// Children inherit their parent's limits. [`HostConfig::limits`](crate::HostConfig) sets a
/// host-wide default for each; a worker's own `Some` overrides it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// The worker's memory budget, in bytes: its linear memory together with everything it
    /// makes the host hold — buffers, the bytes of its messages until they are delivered,
    /// ports, timers, and the children and shared workers it started (see SECURITY.md). Past
    /// it, memory growth fails and host calls are refused. The host's own budget
    /// ([`HostConfig::memory_budget`](crate::HostConfig::memory_budget)) bounds the sum.
    pub memory: Option<usize>,
    /// Elements per table.
    pub table_elements: Option<usize>,
    /// Core instances in the worker's component.
    pub instances: Option<usize>,
    /// Children running at once (inherited, so it bounds every generation below too).
    pub children: Option<usize>,
    /// Messages waiting in the worker's queue at once. A post past it fails with "queue
    /// full" (the sender sees the error) and the message is counted dropped.
    pub queued_messages: Option<usize>,
    /// Bytes of message data waiting in the worker's queue at once (transferred buffers are
    /// not copied, and count against the memory limit of whoever holds them instead).
    pub queued_bytes: Option<usize>,
    /// The largest message the worker accepts, in bytes of data.
    pub message_size: Option<usize>,
    /// CPU deadline per task: a handler (`on-start`, `on-messages`, a timer...) that runs
    /// longer is stopped, and the worker fails with an error that says so. Checked every
    /// [`DEADLINE_TICK`], so it is exact to within that.
    pub deadline: Option<Duration>,
}

/// The default of [`Limits::queued_messages`].
pub const DEFAULT_QUEUED_MESSAGES: usize = 65_536;
/// The default of [`Limits::queued_bytes`]: 256 MiB.
pub const DEFAULT_QUEUED_BYTES: usize = 256 << 20;
/// The default of [`Limits::message_size`]: 64 MiB.
pub const DEFAULT_MESSAGE_SIZE: usize = 64 << 20;
/// How often a running guest with a [`Limits::deadline`] checks it.
pub const DEADLINE_TICK: Duration = Duration::from_millis(10);

impl Limits {
    /// These limits, with `defaults` for those left open.
    pub fn or(self, defaults: Limits) -> Limits {
        Limits {
            memory: self.memory.or(defaults.memory),
            table_elements: self.table_elements.or(defaults.table_elements),
            instances: self.instances.or(defaults.instances),
            children: self.children.or(defaults.children),
            queued_messages: self.queued_messages.or(defaults.queued_messages),
            queued_bytes: self.queued_bytes.or(defaults.queued_bytes),
            message_size: self.message_size.or(defaults.message_size),
            deadline: self.deadline.or(defaults.deadline),
        }
    }

    /// What the worker's queue accepts.
    pub(crate) fn queue(&self) -> QueueLimits {
        QueueLimits {
            messages: self.queued_messages.unwrap_or(DEFAULT_QUEUED_MESSAGES),
            bytes: self.queued_bytes.unwrap_or(DEFAULT_QUEUED_BYTES),
            message_size: self.message_size.unwrap_or(DEFAULT_MESSAGE_SIZE),
        }
    }
}

/// How much a queue accepts: messages and bytes waiting at once, and the largest message.
#[derive(Clone, Copy, Debug)]
pub(crate) struct QueueLimits {
    pub(crate) messages: usize,
    pub(crate) bytes: usize,
    pub(crate) message_size: usize,
}

impl QueueLimits {
    /// No limits.
    #[cfg(test)]
    pub(crate) const NONE: QueueLimits =
        QueueLimits { messages: usize::MAX, bytes: usize::MAX, message_size: usize::MAX };

    /// Why a message of `len` bytes cannot join a queue holding `messages` messages of
    /// `bytes` bytes, if it cannot.
    pub(crate) fn check(&self, messages: usize, bytes: usize, len: usize) -> Option<DropReason> {
        if len > self.message_size {
            Some(DropReason::TooLarge)
        } else if messages >= self.messages || bytes.saturating_add(len) > self.bytes {
            Some(DropReason::QueueFull)
        } else {
            None
        }
    }

    /// Whether a message of `len` bytes would not be refused as "queue full" by a queue
    /// holding `messages` messages of `bytes` bytes.
    pub(crate) fn has_room(&self, messages: usize, bytes: usize, len: usize) -> bool {
        messages < self.messages && bytes.saturating_add(len.min(self.bytes)) <= self.bytes
    }
}

/// The store's limiter: enforces [`Limits`], charges linear memory to the worker's
/// [`Budget`] (released when the store is dropped), and records the peak memory.
pub(crate) struct Limiter {
    limits: Limits,
    budget: Arc<Budget>,
    /// The worker's linear memory now, over all its memories, in bytes.
    memory: usize,
    /// The largest `memory` has been.
    pub(crate) peak_memory: usize,
    /// The limit that last refused a growth, if one did.
    pub(crate) memory_limit_hit: Option<OverBudget>,
    /// The last growth approved, `(current, desired)`, until it is known to have happened:
    /// wasmtime may still refuse it after asking (`memory_grow_failed`), and then its charge
    /// is undone.
    approved: Option<(usize, usize)>,
}

impl Limiter {
    pub(crate) fn new(limits: Limits, budget: Arc<Budget>) -> Self {
        Limiter { limits, budget, memory: 0, peak_memory: 0, memory_limit_hit: None, approved: None }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        // Past the memory's own maximum the growth fails anyway: never charge for it.
        if maximum.is_some_and(|maximum| desired > maximum) {
            return Ok(false);
        }
        if let Some(limit) = self.limits.memory.filter(|&limit| desired > limit) {
            self.memory_limit_hit = Some(OverBudget::Worker(limit as u64));
            return Ok(false);
        }
        // What it holds besides (buffers, messages on their way, ports...) counts too.
        if let Err(over) = self.budget.reserve(desired.saturating_sub(current) as u64) {
            self.memory_limit_hit = Some(over);
            return Ok(false);
        }
        self.memory = self.memory.saturating_sub(current).saturating_add(desired);
        self.peak_memory = self.peak_memory.max(self.memory);
        self.approved = Some((current, desired));
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        // Approved here, then refused by the engine (it could not map the memory): undo.
        if let Some((current, desired)) = self.approved.take() {
            let grown = desired.saturating_sub(current);
            self.memory = self.memory.saturating_sub(grown);
            self.budget.release(grown as u64);
        }
        tracing::debug!("a memory growth failed: {error:#}");
        Ok(())
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(self.limits.table_elements.is_none_or(|limit| desired <= limit))
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

impl Limiter {
    /// Releases the linear memory's charge (the store is gone, or about to be).
    pub(crate) fn release(&mut self) {
        self.budget.release(std::mem::take(&mut self.memory) as u64);
    }
}

impl Drop for Limiter {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::HostBudget;

    #[test]
    fn a_growth_that_fails_after_all_leaves_no_charge() {
        let host = HostBudget::new(1 << 30);
        let budget = Budget::new(Some(64 << 20), &host);
        let mut limiter = Limiter::new(Limits { memory: Some(64 << 20), ..Limits::default() }, budget.clone());
        // Past the memory's own maximum: refused without a charge.
        assert!(!limiter.memory_growing(1 << 16, 1 << 30, Some(1 << 16)).unwrap());
        assert_eq!(budget.used(), 0);
        // Approved, then refused by the engine: undone.
        assert!(limiter.memory_growing(0, 1 << 20, None).unwrap());
        assert_eq!(budget.used(), 1 << 20);
        limiter.memory_grow_failed(wasmtime::Error::msg("cannot map")).unwrap();
        budget.trim_all();
        assert_eq!((budget.used(), host.used()), (0, 0));
        assert!(limiter.memory_growing(0, 2 << 20, None).unwrap());
        drop(limiter);
        assert_eq!(budget.used(), 0, "the store's end releases its memory");
    }
}
