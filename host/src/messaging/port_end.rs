//! One end of a message channel as the host keeps it (a [`PortCore`]): its queue of arriving
//! messages, who holds it, and its entangled end.
//!
//! Lock order: a port's lock may be held while scheduling it on a worker's task queue, never
//! the other way round; the two ends of a channel are never locked at the same time. A
//! port's lock may be held while taking the lock of a port in transit in one of its queued
//! messages, never the other way round.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::sync::mpsc;

use crate::accounting::{DropReason, Ledger};
use crate::limits::{Limits, QueueLimits};

use super::delivery::Deliver;
use super::message::Message;
use super::port::PortEvent;

/// The shared state of one end of a channel.
pub(crate) struct PortCore {
    pub(super) state: Mutex<PortState>,
}

pub(super) struct PortState {
    /// Messages that arrived and are not yet delivered.
    pub(super) queue: VecDeque<Message>,
    pub(super) owner: Owner,
    /// Delivery to the owner is enabled (`start()`).
    pub(super) started: bool,
    /// A `PortReady` task is queued at the owning worker.
    pub(super) scheduled: bool,
    /// This end was closed by its holder: nothing more goes in or out.
    pub(super) closed: bool,
    /// The entangled end; `None` once either end is closed.
    pub(super) peer: Option<Arc<PortCore>>,
    /// This end counts toward its owning worker's keepalive.
    pub(super) counted: bool,
    /// The entangled end was closed: once the queued messages are delivered, the owning
    /// worker gets `on-close` (through `PortReady`, so the close never overtakes them).
    pub(super) close_pending: bool,
    /// The ledger of the host whose workers' messages this end carries; set by the first
    /// counted message or worker that reaches it.
    pub(super) ledger: Option<Ledger>,
    /// What this end's queue accepts: its holder's limits (the defaults until a worker holds
    /// it).
    pub(super) limits: QueueLimits,
    /// Bytes of data in `queue`.
    pub(super) queued_bytes: usize,
    /// While this end is in transit inside a message waiting at another port: that port.
    pub(super) container: Option<Weak<PortCore>>,
    /// Messages (and their bytes) handed to the host program's channel and not read yet:
    /// they count against the queue limits as if still queued.
    pub(super) host_unread: (usize, usize),
    /// Told when this end's queue has room again (a message left it, or the end closed), for
    /// a sender waiting for room ([`PortRoom`](super::PortRoom)); made by the first such sender.
    pub(super) room: Option<Arc<tokio::sync::Notify>>,
}

/// What a port needs of the worker that holds it: a way to be scheduled on the worker's event
/// loop, and a count of what keeps the worker alive. The worker's task queue implements it;
/// the port knows nothing else of the queue.
pub(crate) trait PortHolder: Send + Sync {
    /// Queues a task that delivers what waits at `port` (by [`PortCore::next_for`]). Returns
    /// false if the holder's event loop has closed.
    fn port_ready(&self, port: Arc<PortCore>) -> bool;
    /// Counts one more reason for the holder to stay alive (an entangled port it holds).
    fn acquire_keepalive(&self);
    /// Releases a reason counted by [`acquire_keepalive`](Self::acquire_keepalive).
    fn release_keepalive(&self);
}

/// Whether `owner` is `holder` (the same object, whatever the vtable).
fn is_holder(owner: &Arc<dyn PortHolder>, holder: &dyn PortHolder) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(owner), holder as *const dyn PortHolder)
}

/// A worker to schedule a port at, once the port's lock is released (see
/// [`PortCore::flush_locked`]).
pub(super) struct Wake(Option<Arc<dyn PortHolder>>);

/// Who holds a port end.
pub(super) enum Owner {
    /// Nobody yet, or it is inside a message on its way.
    Transit,
    /// A worker, which knows it as `id`.
    Worker { holder: Arc<dyn PortHolder>, id: u32 },
    /// The host program, which reads `PortEvent`s.
    Host(mpsc::UnboundedSender<PortEvent>),
}

impl PortState {
    /// Tells a sender waiting for room, if there is one, that some may have come.
    pub(super) fn notify_room(&self) {
        if let Some(room) = &self.room {
            room.notify_one();
        }
    }

    /// Whether a message of `len` bytes would be taken into this end's queue now; also true
    /// if the end is closed (a post then fails for that), and if its queue is empty (a message
    /// larger than the byte limit never fits: waiting longer would not help).
    pub(super) fn has_room(&self, len: usize) -> bool {
        let (unread, unread_bytes) = self.host_unread;
        let (messages, bytes) = (self.queue.len() + unread, self.queued_bytes + unread_bytes);
        self.closed || messages == 0 || self.limits.check(messages, bytes, len).is_none()
    }

    pub(super) fn release_keepalive(&mut self) {
        if std::mem::take(&mut self.counted) {
            if let Owner::Worker { holder, .. } = &self.owner {
                holder.release_keepalive();
            }
        }
    }
}

/// What a worker should do for a `PortReady` task.
pub(crate) enum Ready {
    /// Deliver this message with `source::port(id)`.
    Message(u32, Message),
    /// The entangled port was closed, and every message before that is delivered: call
    /// `on-close` with `source::port(id)`.
    Closed(u32),
    /// Nothing (more) to deliver to this worker now.
    Done,
}

impl PortCore {
    pub(super) fn new() -> Self {
        PortCore {
            state: Mutex::new(PortState {
                queue: VecDeque::new(),
                owner: Owner::Transit,
                started: false,
                scheduled: false,
                closed: false,
                peer: None,
                counted: false,
                close_pending: false,
                ledger: None,
                limits: Limits::default().queue(),
                queued_bytes: 0,
                container: None,
                host_unread: (0, 0),
                room: None,
            }),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, PortState> {
        // Every update of the state is a plain assignment or a queue operation, so a panic
        // elsewhere cannot leave it inconsistent.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Posts `message` from this end to the entangled one. If it is refused, it is settled
    /// as dropped (unless `count_full` is false and the entangled end's queue is full: it is
    /// then taken back as never posted), and returned unless the entangled port was closed
    /// (the chapter then discards it without an error).
    pub(super) fn post(
        &self,
        mut message: Message,
        ledger: Option<&Ledger>,
        count_full: bool,
    ) -> Result<(), (DropReason, Option<Message>)> {
        let peer = {
            let state = self.lock();
            if state.closed {
                if let Some(ledger) = ledger {
                    message.settle(ledger, Some(DropReason::PortClosed));
                }
                return Err((DropReason::PortClosed, Some(message)));
            }
            state.peer.clone()
        };
        let refused = match peer {
            Some(peer) => match peer.deliver(message, ledger) {
                Ok(()) => return Ok(()),
                Err(refused) => refused,
            },
            None => (DropReason::PortClosed, message),
        };
        let (refusal, mut message) = refused;
        if let Some(ledger) = ledger {
            if refusal == DropReason::QueueFull && !count_full {
                message.uncount_posted(ledger);
            } else {
                message.settle(ledger, Some(refusal));
            }
        }
        Err((refusal, (refusal != DropReason::PortClosed).then_some(message)))
    }

    /// The largest message the entangled end accepts now (`usize::MAX` if there is none: a
    /// post is then discarded anyway).
    pub(crate) fn peer_message_size(&self) -> usize {
        let peer = self.lock().peer.clone();
        peer.map_or(usize::MAX, |peer| peer.message_size())
    }

    /// Starts delivery to the owning worker (`port.start()`).
    pub(crate) fn start(self: &Arc<Self>) {
        let mut state = self.lock();
        state.started = true;
        let wake = self.flush_locked(&mut state);
        drop(state);
        self.wake(wake);
    }

    /// Tells the owner there is something to deliver, if it is started: the host program at
    /// once; a worker by the [`Wake`] returned, which the caller passes to
    /// [`wake`](Self::wake) once it has let go of this port's lock (a worker woken while the
    /// lock is held would wake only to block on it: two more context switches per message
    /// when both threads share a CPU).
    #[must_use = "a worker to be scheduled must be woken"]
    pub(super) fn flush_locked(self: &Arc<Self>, state: &mut PortState) -> Wake {
        if !state.started || (state.queue.is_empty() && !state.close_pending) {
            return Wake(None);
        }
        match &state.owner {
            Owner::Transit => {}
            Owner::Worker { holder, .. } => {
                if !state.scheduled {
                    // Marked now, so that other senders do not schedule it again meanwhile.
                    state.scheduled = true;
                    return Wake(Some(holder.clone()));
                }
            }
            Owner::Host(events) => {
                // Settled as delivered when the host program reads them.
                state.host_unread.0 += state.queue.len();
                state.host_unread.1 += std::mem::take(&mut state.queued_bytes);
                for message in state.queue.drain(..) {
                    for port in &message.ports {
                        port.core.lock().container = None;
                    }
                    let _ = events.send(PortEvent::Message(message));
                }
            }
        }
        Wake(None)
    }

    /// Schedules this port at the worker [`flush_locked`](Self::flush_locked) named, without
    /// this port's lock. If that worker's loop has closed, the mark is cleared again (a
    /// second task for one port is harmless: it finds nothing and clears the mark).
    pub(super) fn wake(self: &Arc<Self>, wake: Wake) {
        if let Wake(Some(holder)) = wake {
            if !holder.port_ready(self.clone()) {
                self.lock().scheduled = false;
            }
        }
    }

    /// The next message to deliver to `holder`, for the task [`PortHolder::port_ready`]
    /// queued. Returns `Done` (and clears the task's mark) when there is none, when the port
    /// is not started, or when it has moved to another owner since the task was queued.
    pub(crate) fn next_for(&self, holder: &dyn PortHolder) -> Ready {
        let mut state = self.lock();
        let id = match &state.owner {
            Owner::Worker { holder: owner, id } if is_holder(owner, holder) => *id,
            _ => return Ready::Done,
        };
        if state.started {
            if let Some(message) = state.queue.pop_front() {
                state.queued_bytes = state.queued_bytes.saturating_sub(message.data.len());
                state.notify_room();
                for port in &message.ports {
                    port.core.lock().container = None;
                }
                return Ready::Message(id, message);
            }
            if std::mem::take(&mut state.close_pending) {
                return Ready::Closed(id);
            }
        }
        state.scheduled = false;
        Ready::Done
    }

    /// After a worker delivered a bounded batch from this port: schedules it again if
    /// messages still wait (so that other tasks get their turn), or clears the mark.
    pub(crate) fn yield_to(self: &Arc<Self>, holder: &dyn PortHolder) {
        let mut state = self.lock();
        let held_here = matches!(&state.owner, Owner::Worker { holder: owner, .. } if is_holder(owner, holder));
        let more = !state.queue.is_empty() || state.close_pending;
        if !(held_here && state.started && more && holder.port_ready(self.clone())) {
            state.scheduled = false;
        }
    }

    /// The id of this end in `holder`, if that worker holds it.
    pub(crate) fn id_in(&self, holder: &dyn PortHolder) -> Option<u32> {
        match &self.lock().owner {
            Owner::Worker { holder: owner, id } if is_holder(owner, holder) => Some(*id),
            _ => None,
        }
    }

    /// Closes this end and disentangles the other, whose owner is told.
    pub(super) fn close(&self) {
        let (peer, dropped, ledger) = {
            let mut state = self.lock();
            if state.closed {
                return;
            }
            state.closed = true;
            state.queued_bytes = 0;
            state.notify_room();
            let dropped = std::mem::take(&mut state.queue);
            state.release_keepalive();
            // Ends the host program's event stream, if it was listening.
            state.owner = Owner::Transit;
            (state.peer.take(), dropped, state.ledger.clone())
        };
        // Dropped without the lock: the ports they carry close in turn, and one of them may
        // be this port's own peer.
        for mut message in dropped {
            if let Some(ledger) = &ledger {
                message.settle(ledger, Some(DropReason::PortClosed));
            }
        }
        if let Some(peer) = peer {
            peer.disentangle();
        }
    }

    /// After a message carrying `contained` was queued here: if that closed a cycle of ports
    /// in transit, each waiting in the queue of the next (a port posted to its own entangled
    /// port is the shortest), nobody can ever receive any of them, so they are closed and
    /// their messages dropped (the chapter's "doomed" message). Without this, the cycle
    /// would hold itself alive: reference counting cannot free it.
    fn collect_if_cycle(self: &Arc<Self>, contained: &[Arc<PortCore>]) {
        let mut current = self.clone();
        // Each step follows "is waiting in the queue of"; a chain longer than this is not
        // worth the walk.
        for _ in 0..1024 {
            if contained.iter().any(|port| Arc::ptr_eq(port, &current)) {
                self.close();
                return;
            }
            let next = {
                let state = current.lock();
                if state.closed || !matches!(state.owner, Owner::Transit) {
                    return;
                }
                state.container.as_ref().and_then(Weak::upgrade)
            };
            match next {
                Some(next) => current = next,
                None => return,
            }
        }
    }

    /// The entangled end was closed: nothing more can arrive here. Messages already queued
    /// stay deliverable; the owner learns of the close after them.
    fn disentangle(self: &Arc<Self>) {
        let mut state = self.lock();
        state.peer = None;
        match &state.owner {
            Owner::Host(events) => {
                // A host-held port is started: its messages are in the channel already.
                let _ = events.send(PortEvent::Closed);
            }
            Owner::Transit | Owner::Worker { .. } => {
                state.close_pending = true;
                let wake = self.flush_locked(&mut state);
                drop(state);
                // The task that delivers the close is queued before the port stops keeping its
                // worker alive: else the worker could end idle in between, never told.
                self.wake(wake);
                self.lock().release_keepalive();
                return;
            }
        }
        state.release_keepalive();
    }
}

/// A port end is a receiver of the delivery seam: a message posted on the entangled end
/// arrives in this end's queue, within its limits, wherever this end is held.
impl Deliver for Arc<PortCore> {
    fn deliver(&self, message: Message, ledger: Option<&Ledger>) -> Result<(), (DropReason, Message)> {
        // The ports it carries wait in this queue now (set before taking this port's lock: a
        // port's lock is never held while taking another's, but in `flush_locked`).
        let contained: Vec<Arc<PortCore>> = message.ports.iter().map(|port| port.core.clone()).collect();
        for port in &contained {
            port.lock().container = Some(Arc::downgrade(self));
        }
        let refused = |refusal, message| {
            for port in &contained {
                port.lock().container = None;
            }
            Err((refusal, message))
        };
        let mut state = self.lock();
        if state.closed {
            drop(state);
            return refused(DropReason::PortClosed, message);
        }
        let (unread, unread_bytes) = state.host_unread;
        if let Some(refusal) =
            state.limits.check(state.queue.len() + unread, state.queued_bytes + unread_bytes, message.data.len())
        {
            drop(state);
            return refused(refusal, message);
        }
        if state.ledger.is_none() {
            state.ledger = ledger.cloned();
        }
        state.queued_bytes += message.data.len();
        state.queue.push_back(message);
        let wake = self.flush_locked(&mut state);
        drop(state);
        self.wake(wake);
        if !contained.is_empty() {
            self.collect_if_cycle(&contained);
        }
        Ok(())
    }

    fn message_size(&self) -> usize {
        self.lock().limits.message_size
    }
}
