//! Message accounting: every message posted is, in the end, delivered or dropped with a
//! reason, and the host counts which.
//!
//! A message is *posted* when the host program or a guest hands it to the host to send
//! (`postMessage`), whether or not it can be sent. From then on it carries its host's
//! [`Ledger`], and it is settled exactly once, where it leaves the host's hands:
//!
//! - *delivered*: handed to the receiving guest's `on-messages`, or received by the host
//!   program from a [`WorkerHandle`](crate::WorkerHandle) or a port it holds;
//! - *dropped*, with a [`DropReason`]: refused at the post (queue full, too large, receiver
//!   gone, port closed), or discarded from a queue that will never run (the receiver closed
//!   or was terminated, a port was closed with messages waiting, a handle was dropped with
//!   messages unread).
//!
//! So when nothing is in flight, `posted == delivered + dropped` exactly
//! ([`MessageCounts::in_flight`] is zero). Messages the host program posts on ports of its own
//! that are not held by a worker of this host are not counted (no host has seen them).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_utils::CachePadded;

/// Why a message was not delivered: the one vocabulary of refusals, used by the ledger, the
/// host API's errors ([`PostError`](crate::PostError), [`PortPostError`](crate::PortPostError))
/// and the CLI's report, and mapped once to the WIT `post-error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DropReason {
    /// Posted to a worker that had ended (closed, failed, terminated), to no parent (from a
    /// shared worker), or to a handle the host program had dropped.
    #[error("the receiver has ended")]
    ReceiverGone,
    /// Posted by the host program after [`WorkerHandle::end_input`](crate::WorkerHandle::end_input)
    /// (counted with [`ReceiverGone`](Self::ReceiverGone)).
    #[error("its input was ended")]
    InputEnded,
    /// Queued at a worker that closed or was terminated before handling it (the closing
    /// flag discards queued tasks).
    #[error("it was discarded unread")]
    Discarded,
    /// The receiver's queue held as many messages, or bytes, as its limits allow; try again
    /// once it has caught up.
    #[error("the receiver's queue is full")]
    QueueFull,
    /// Larger than the receiver's message size limit.
    #[error("the message is larger than the receiver accepts")]
    TooLarge,
    /// Posted on a closed port, or to one whose entangled port was closed, or waiting at a
    /// port when it was closed.
    #[error("the port is closed")]
    PortClosed,
    /// Received by the host program, which could not pass it on: its output was closed
    /// (see [`Host::count_lost`](crate::Host::count_lost)).
    #[error("the output was closed")]
    OutputClosed,
    /// Lost between two hosts of a lattice: the link to the receiver's host broke (its host
    /// died, or the messaging server lost it in flight), or a gap in a link's sequence numbers
    /// showed that it was lost.
    #[error("the link to its host was lost")]
    LinkLost,
}

/// How many messages were dropped, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DroppedMessages {
    /// See [`DropReason::ReceiverGone`].
    pub receiver_gone: u64,
    /// See [`DropReason::Discarded`].
    pub discarded: u64,
    /// See [`DropReason::QueueFull`].
    pub queue_full: u64,
    /// See [`DropReason::TooLarge`].
    pub too_large: u64,
    /// See [`DropReason::PortClosed`].
    pub port_closed: u64,
    /// See [`DropReason::OutputClosed`].
    pub output_closed: u64,
    /// See [`DropReason::LinkLost`].
    pub link_lost: u64,
}

impl DroppedMessages {
    /// All dropped messages, whatever the reason.
    pub fn total(&self) -> u64 {
        self.receiver_gone
            + self.discarded
            + self.queue_full
            + self.too_large
            + self.port_closed
            + self.output_closed
            + self.link_lost
    }
}

impl fmt::Display for DroppedMessages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} receiver gone, {} discarded, {} queue full, {} too large, {} port closed",
            self.receiver_gone, self.discarded, self.queue_full, self.too_large, self.port_closed
        )?;
        if self.output_closed > 0 {
            write!(f, ", {} not written (output closed)", self.output_closed)?;
        }
        if self.link_lost > 0 {
            write!(f, ", {} link lost", self.link_lost)?;
        }
        Ok(())
    }
}

/// A snapshot of a host's message accounting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessageCounts {
    /// Messages posted.
    pub posted: u64,
    /// Messages delivered.
    pub delivered: u64,
    /// Messages dropped, by reason.
    pub dropped: DroppedMessages,
}

impl MessageCounts {
    /// Messages posted and not yet settled: queued somewhere, or being handed over. Zero
    /// once every worker has ended and the host program has read or dropped every handle.
    pub fn in_flight(&self) -> u64 {
        self.posted.saturating_sub(self.delivered + self.dropped.total())
    }
}

/// A host's counters. Cheap to clone; clones count together.
#[derive(Clone, Default)]
pub(crate) struct Ledger(Arc<Counters>);

/// Senders count `posted` and receivers `delivered`, from different threads: each on a cache
/// line of its own, so that they do not contend.
type Padded = CachePadded<AtomicU64>;

#[derive(Default)]
struct Counters {
    posted: Padded,
    delivered: Padded,
    receiver_gone: AtomicU64,
    discarded: AtomicU64,
    queue_full: AtomicU64,
    too_large: AtomicU64,
    port_closed: AtomicU64,
    output_closed: AtomicU64,
    link_lost: AtomicU64,
}

impl Ledger {
    /// Counts `n` messages posted.
    pub(crate) fn posted(&self, n: usize) {
        self.0.posted.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Takes back `n` messages counted posted that were never sent (refused as full, to be
    /// posted again: [`WorkerHandle::try_post_message`](crate::WorkerHandle::try_post_message)).
    pub(crate) fn unposted(&self, n: usize) {
        self.0.posted.fetch_sub(n as u64, Ordering::AcqRel);
    }

    /// Counts `n` messages delivered.
    pub(crate) fn delivered(&self, n: usize) {
        self.0.delivered.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts `n` messages dropped for `reason`.
    pub(crate) fn dropped(&self, reason: DropReason, n: usize) {
        let counter = match reason {
            DropReason::ReceiverGone | DropReason::InputEnded => &self.0.receiver_gone,
            DropReason::Discarded => &self.0.discarded,
            DropReason::QueueFull => &self.0.queue_full,
            DropReason::TooLarge => &self.0.too_large,
            DropReason::PortClosed => &self.0.port_closed,
            DropReason::OutputClosed => &self.0.output_closed,
            DropReason::LinkLost => &self.0.link_lost,
        };
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Moves `n` messages counted delivered to dropped for `reason` (the host program lost
    /// what it had received). Counted dropped before they leave delivered, so that a reader
    /// never sees them unsettled (at worst, for an instant, in both).
    pub(crate) fn undelivered(&self, reason: DropReason, n: u64) {
        let n = n.min(self.0.delivered.load(Ordering::Acquire));
        self.dropped(reason, n as usize);
        self.0.delivered.fetch_sub(n, Ordering::AcqRel);
    }

    pub(crate) fn counts(&self) -> MessageCounts {
        let c = &self.0;
        // Settled counters are read before `posted`, so that a message settled between the
        // reads is never counted settled without being counted posted.
        let dropped = DroppedMessages {
            receiver_gone: c.receiver_gone.load(Ordering::Acquire),
            discarded: c.discarded.load(Ordering::Acquire),
            queue_full: c.queue_full.load(Ordering::Acquire),
            too_large: c.too_large.load(Ordering::Acquire),
            port_closed: c.port_closed.load(Ordering::Acquire),
            output_closed: c.output_closed.load(Ordering::Acquire),
            link_lost: c.link_lost.load(Ordering::Acquire),
        };
        let delivered = c.delivered.load(Ordering::Acquire);
        MessageCounts { posted: c.posted.load(Ordering::Acquire), delivered, dropped }
    }
}

impl fmt::Debug for Ledger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.counts(), f)
    }
}
