//! Whether a whole host has gone quiet: no worker has anything to do.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Whether a whole host has gone quiet: the number of its workers that are *busy* — running,
/// with tasks queued, or waiting for a timer. A worker that waits for a task with an empty
/// queue and no pending timer is counted out; whatever wakes it counts it in again before it
/// lets go of its own lock, so the count reaches zero only when every worker waits and no
/// task is on its way between them. From then on only the host program can make anything
/// happen.
#[derive(Debug, Default)]
pub(crate) struct Quiescence {
    busy: AtomicUsize,
    quiet: tokio::sync::Notify,
}

impl Quiescence {
    pub(super) fn enter(&self) {
        self.busy.fetch_add(1, Ordering::AcqRel);
    }

    pub(super) fn leave(&self) {
        if self.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.quiet.notify_waiters();
        }
    }

    /// How many workers are busy now.
    pub(crate) fn busy(&self) -> usize {
        self.busy.load(Ordering::Acquire)
    }

    /// Whether every worker waits.
    pub(crate) fn is_quiet(&self) -> bool {
        self.busy.load(Ordering::Acquire) == 0
    }

    /// Resolves once every worker waits (at once if they do now).
    pub(crate) async fn wait(&self) {
        loop {
            let quiet = self.quiet.notified();
            tokio::pin!(quiet);
            quiet.as_mut().enable();
            if self.is_quiet() {
                return;
            }
            quiet.await;
        }
    }
}
