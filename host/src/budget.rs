//! Memory budgets: what each worker makes the host hold, charged to the worker and to its
//! host, and refused past either limit.
//!
//! A worker's [`Budget`] is charged for its linear memory (by the store's limiter) and for
//! every host-side allocation it causes: the buffers it holds (however they were made), the
//! bytes of the messages it posted until they are delivered (wherever they wait: a worker's
//! queue, a port it holds itself and never starts, the host program's side of a handle), the
//! ports it holds, its pending timers, and the children and shared workers it started. Its
//! limit is the worker's memory limit ([`Limits::memory`](crate::Limits::memory)).
//!
//! Every budget of a host also charges the host's [`HostBudget`], so that the sum over all
//! workers is bounded even when no worker has a limit of its own
//! ([`HostConfig::memory_budget`](crate::HostConfig::memory_budget); by default half of the
//! machine's physical memory).
//!
//! A [`Charge`] is one such allocation's share: it is released when dropped, and a
//! transferred buffer or port moves its charge to the worker that receives it. A receiver
//! may thereby go over its limit (it did not ask for what it was sent); its own allocations
//! then fail until it lets some go. The host's total does not change by a move.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_utils::CachePadded;

/// What charging a budget may run into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OverBudget {
    /// The worker's own memory limit, in bytes.
    Worker(u64),
    /// The host's memory budget, in bytes.
    Host(u64),
}

impl std::fmt::Display for OverBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OverBudget::Worker(limit) => write!(f, "its memory limit of {limit} bytes"),
            OverBudget::Host(limit) => write!(f, "the host's memory budget of {limit} bytes"),
        }
    }
}

/// The host's budget: the sum of its workers' budgets.
#[derive(Debug)]
pub(crate) struct HostBudget {
    /// On a cache line of its own: every worker's budget takes its share here.
    used: CachePadded<AtomicU64>,
    limit: u64,
}

impl HostBudget {
    pub(crate) fn new(limit: u64) -> Arc<HostBudget> {
        Arc::new(HostBudget { used: CachePadded::new(AtomicU64::new(0)), limit })
    }

    /// Bytes charged now, over all workers.
    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }
}

/// One worker's budget. Shared (by `Arc`) with the charges made against it, which may be
/// released on any thread; it is charged only on its worker's own thread.
///
/// It holds a *share* of the host's budget, taken in chunks of [`SHARE_CHUNK`] as its use
/// grows and given back as it shrinks (past two chunks of slack), so that a charge or a
/// release touches this budget's cache line only, not the host's, which every worker
/// shares. The host's count is the sum of the shares: never less than what is charged, at
/// most about two chunks more per worker.
///
/// Aligned to a cache line, so that in its `Arc` the reference counts, `used` and `share`
/// are on one: a message's charge and its release each touch that line once.
#[derive(Debug)]
#[repr(align(64))]
pub(crate) struct Budget {
    used: AtomicU64,
    /// Bytes of the host's budget held for this one.
    share: AtomicU64,
    /// Its worker has ended: from then on, what is released is given back at once.
    ended: AtomicBool,
    limit: u64,
    host: Arc<HostBudget>,
}

/// The unit in which a budget takes its share of the host's.
pub(crate) const SHARE_CHUNK: u64 = 64 << 10;

impl Budget {
    /// A budget of `limit` bytes (`None`: only the host's) within `host`.
    pub(crate) fn new(limit: Option<usize>, host: &Arc<HostBudget>) -> Arc<Budget> {
        Arc::new(Budget {
            used: AtomicU64::new(0),
            share: AtomicU64::new(0),
            ended: AtomicBool::new(false),
            limit: limit.map_or(u64::MAX, |l| l as u64),
            host: host.clone(),
        })
    }

    /// Bytes charged now.
    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    /// Bytes that can still be charged.
    pub(crate) fn room(&self) -> u64 {
        let used = self.used();
        let own = self.limit.saturating_sub(used);
        let spare = self.share.load(Ordering::Acquire).saturating_sub(used);
        let host = self.host.limit.saturating_sub(self.host.used()).saturating_add(spare);
        own.min(host)
    }

    /// Charges `bytes` without a [`Charge`] (the caller releases them with
    /// [`release`](Self::release)), unless that would pass this budget's limit or the host's.
    pub(crate) fn reserve(&self, bytes: u64) -> Result<(), OverBudget> {
        // One read-modify-write, undone if it went too far (only this budget's worker
        // charges it, so nothing is refused for another's passing excess).
        let used = self.used.fetch_add(bytes, Ordering::AcqRel).saturating_add(bytes);
        if used > self.limit {
            self.used.fetch_sub(bytes, Ordering::AcqRel);
            return Err(OverBudget::Worker(self.limit));
        }
        if !self.cover(used, true) {
            self.used.fetch_sub(bytes, Ordering::AcqRel);
            return Err(OverBudget::Host(self.host.limit));
        }
        Ok(())
    }

    /// Makes this budget's share of the host's cover `used`, taking a chunk more when it must
    /// (or, near the host's limit, just what it needs). With `checked`, not past the host's
    /// limit: returns false if it cannot.
    fn cover(&self, used: u64, checked: bool) -> bool {
        let share = self.share.load(Ordering::Acquire);
        if share >= used {
            return true;
        }
        let need = used - share;
        let chunk = need.div_ceil(SHARE_CHUNK).saturating_mul(SHARE_CHUNK);
        let host = &self.host;
        let take = |amount: u64| {
            if !checked {
                host.used.fetch_add(amount, Ordering::AcqRel);
                return true;
            }
            host.used
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |total| {
                    total.checked_add(amount).filter(|&total| total <= host.limit)
                })
                .is_ok()
        };
        let taken = if take(chunk) {
            chunk
        } else if take(need) {
            need
        } else {
            return false;
        };
        self.share.fetch_add(taken, Ordering::AcqRel);
        true
    }

    /// Gives back the share beyond `slack` over what is used (any thread may: the share
    /// only changes by compare-and-swap on fresh values).
    fn trim(&self, slack: u64) {
        let mut kept = 0;
        let given = self.share.fetch_update(Ordering::AcqRel, Ordering::Acquire, |share| {
            kept = self.used.load(Ordering::Acquire).saturating_add(slack);
            (share > kept).then_some(kept)
        });
        if let Ok(before) = given {
            self.host.used.fetch_sub(before - kept, Ordering::AcqRel);
        }
    }

    /// Releases what [`reserve`](Self::reserve) charged.
    pub(crate) fn release(&self, bytes: u64) {
        let used = self.used.fetch_sub(bytes, Ordering::AcqRel) - bytes;
        if self.ended.load(Ordering::Acquire) {
            self.trim(0);
        } else if self.share.load(Ordering::Relaxed) > used.saturating_add(2 * SHARE_CHUNK) {
            self.trim(SHARE_CHUNK);
        }
    }

    /// Marks the worker ended and gives back the whole unused share: what it still has on
    /// its way keeps its part until it is released.
    pub(crate) fn end(&self) {
        self.ended.store(true, Ordering::Release);
        self.trim(0);
    }

    /// Gives back the whole unused share now.
    #[cfg(test)]
    pub(crate) fn trim_all(&self) {
        self.trim(0);
    }

    /// Charges `bytes`, unless that would pass a limit.
    pub(crate) fn charge(self: &Arc<Self>, bytes: u64) -> Result<Charge, OverBudget> {
        self.reserve(bytes)?;
        Ok(Charge { budget: Some(self.clone()), bytes })
    }

    /// Charges `bytes` whatever the limits (what a worker is sent: see the module's docs),
    /// with `share` of the host's budget that came with them.
    fn force(&self, bytes: u64, share: u64) {
        let used = self.used.fetch_add(bytes, Ordering::AcqRel) + bytes;
        if share > 0 {
            self.share.fetch_add(share, Ordering::AcqRel);
        }
        self.cover(used, false);
    }

    /// Takes up to `bytes` of this budget's share, to move with `bytes` charged elsewhere.
    fn take_share(&self, bytes: u64) -> u64 {
        let before = self
            .share
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |share| Some(share - share.min(bytes)))
            .unwrap_or(0);
        before.min(bytes)
    }
}

impl Drop for Budget {
    fn drop(&mut self) {
        // Nothing is charged any more (every charge holds the budget): the share goes back.
        self.host.used.fetch_sub(*self.share.get_mut(), Ordering::AcqRel);
    }
}

/// One allocation's share of a budget, released when dropped.
#[derive(Debug, Default)]
pub(crate) struct Charge {
    budget: Option<Arc<Budget>>,
    bytes: u64,
}

impl Charge {
    /// Moves the charge to `to` (a transferred buffer or port arriving at its new holder).
    /// The host's total is unchanged; `to` may go over its own limit.
    pub(crate) fn move_to(&mut self, to: &Arc<Budget>) {
        if self.bytes == 0 || self.budget.as_ref().is_some_and(|from| Arc::ptr_eq(from, to)) {
            return;
        }
        // Its share of the host's budget moves with it; one made by the host program was
        // charged to nobody, and counts from now on.
        let share = self.budget.as_ref().map_or(0, |from| from.take_share(self.bytes));
        to.force(self.bytes, share);
        if let Some(from) = self.budget.replace(to.clone()) {
            from.release(self.bytes);
        }
    }

    /// A charge of `bytes` to nobody yet, for [`move_to`](Self::move_to) to place.
    pub(crate) fn unplaced(bytes: u64) -> Charge {
        Charge { budget: None, bytes }
    }

    /// Releases the charge now (the allocation has left every worker: the host program
    /// received it).
    pub(crate) fn release(&mut self) {
        if let Some(budget) = self.budget.take() {
            budget.release(self.bytes);
        }
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.release();
    }
}

/// The machine's physical memory in bytes, if it can be read.
pub(crate) fn physical_memory() -> Option<u64> {
    // SAFETY: `sysconf` has no preconditions.
    let (pages, page) = unsafe { (libc::sysconf(libc::_SC_PHYS_PAGES), libc::sysconf(libc::_SC_PAGESIZE)) };
    (pages > 0 && page > 0).then(|| pages as u64 * page as u64)
}

/// What a port costs its holder (its shared state and queue, at rest).
pub(crate) const PORT_COST: u64 = 512;
/// What a pending timer costs its worker (its entry in the timer heap and map).
pub(crate) const TIMER_COST: u64 = 128;
/// What a message costs its sender beyond its bytes, until it is delivered.
pub(crate) const MESSAGE_COST: u64 = 64;
/// What a running child or shared worker costs the worker that started it, beyond its own
/// budget: its thread, store and queue at rest (an idle worker measured ~62 KiB resident).
pub(crate) const WORKER_COST: u64 = 64 << 10;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_are_bounded_by_the_worker_and_the_host_and_released_on_drop() {
        let host = HostBudget::new(1000);
        let a = Budget::new(Some(600), &host);
        let b = Budget::new(None, &host);
        let one = a.charge(500).unwrap();
        assert_eq!(a.charge(200).unwrap_err(), OverBudget::Worker(600));
        assert_eq!(b.charge(600).unwrap_err(), OverBudget::Host(1000));
        let mut two = b.charge(400).unwrap();
        // Near its limit the host gives each just what it needs.
        assert_eq!(host.used(), 900);
        // A move keeps the host's total and may put the receiver over its limit.
        two.move_to(&a);
        assert_eq!((a.used(), b.used(), host.used()), (900, 0, 900));
        assert_eq!(a.room(), 0);
        drop(one);
        drop(two);
        assert_eq!((a.used(), b.used()), (0, 0));
        drop((a, b));
        assert_eq!(host.used(), 0, "a budget's share goes back when it goes");
    }

    #[test]
    fn a_budget_takes_its_share_of_the_host_in_chunks_and_gives_back_what_it_does_not_use() {
        let host = HostBudget::new(1 << 30);
        let budget = Budget::new(None, &host);
        let charges: Vec<Charge> = (0..1000).map(|_| budget.charge(100).unwrap()).collect();
        assert_eq!(budget.used(), 100_000);
        assert!(host.used() >= 100_000 && host.used() <= 100_000 + SHARE_CHUNK, "{}", host.used());
        drop(charges);
        assert!(host.used() <= 2 * SHARE_CHUNK, "{}", host.used());
        budget.trim_all();
        assert_eq!(host.used(), 0);
    }
}
