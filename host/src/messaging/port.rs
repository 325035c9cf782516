//! Channel messaging (10.2.4): message channels and their entangled ports.
//!
//! Each end of a channel is a [`PortCore`] with its own queue of arriving messages. Posting on
//! one end appends to the other end's queue, wherever that end is: held by a worker, held by
//! the host program, or in transit inside a message. The end's owner is told when there is
//! something to deliver (through [`PortHolder::port_ready`] for a worker, an event for the
//! host program),
//! so messages on one port arrive in the order posted, across any number of transfers.
//!
//! Lock order: a port's lock may be held while pushing to a worker's task queue, never the
//! other way round; the two ends of a channel are never locked at the same time. A port's
//! lock may be held while taking the lock of a port in transit in one of its queued messages,
//! never the other way round.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::sync::mpsc;

use crate::accounting::{DropReason, Ledger};
use crate::budget::{Charge, PORT_COST};
use crate::limits::{Limits, QueueLimits};

use super::delivery::Deliver;
use super::message::Message;

/// One end of a message channel (a `MessagePort`), as the host program holds it.
///
/// Put it in a [`Message`]'s `ports` to transfer it to a worker. Dropping it closes it.
pub struct MessagePort {
    core: Arc<PortCore>,
    /// Events for the host program, once it has started receiving on this port.
    events: Option<mpsc::UnboundedReceiver<PortEvent>>,
    /// Its share of its holder's budget (nobody's while the host program holds it).
    pub(crate) charge: Charge,
}

/// What arrives at a port the host program holds.
#[derive(Debug)]
pub enum PortEvent {
    /// A message posted on the entangled port.
    Message(Message),
    /// The entangled port was closed; nothing more will arrive. This is the last event.
    Closed,
}

/// The error of posting on a port that does not take the message: the message comes back.
#[derive(Debug, thiserror::Error)]
#[error("cannot post on the port: {reason}")]
pub struct PortPostError {
    /// Why: [`DropReason::PortClosed`] (this port was closed), [`DropReason::QueueFull`]
    /// (the entangled port's queue) or [`DropReason::TooLarge`].
    pub reason: DropReason,
    /// The message that was not posted.
    pub message: Message,
}

/// A new message channel (`new MessageChannel()`): two entangled ports.
pub fn channel() -> (MessagePort, MessagePort) {
    let one = Arc::new(PortCore::new());
    let two = Arc::new(PortCore::new());
    one.lock().peer = Some(two.clone());
    two.lock().peer = Some(one.clone());
    (
        MessagePort { core: one, events: None, charge: Charge::unplaced(PORT_COST) },
        MessagePort { core: two, events: None, charge: Charge::unplaced(PORT_COST) },
    )
}

impl MessagePort {
    /// Posts `message` to the entangled port (`port.postMessage`). If the entangled port has
    /// been closed, the message is discarded. Never blocks.
    ///
    /// # Errors
    ///
    /// [`PortPostError`] if this port was closed, if the entangled port's queue is full, or
    /// if the message is larger than it accepts; the message comes back in the error.
    pub fn post_message(&self, mut message: Message) -> Result<(), PortPostError> {
        message.detach_ports();
        let ledger = self.core.lock().ledger.clone();
        if let Some(ledger) = &ledger {
            message.count_posted(ledger);
        }
        let (reason, message) = match self.core.post(message, ledger.as_ref()) {
            Ok(()) => return Ok(()),
            Err(refused) => refused,
        };
        match message {
            Some(message) => Err(PortPostError { reason, message }),
            // The entangled port was closed: discarded, as the chapter does.
            None => Ok(()),
        }
    }

    /// Posts a message a worker posted (counted as posted in `ledger`): settled as dropped
    /// if refused, and why returned.
    pub(crate) fn post_counted(&self, message: Message, ledger: &Ledger) -> Result<(), DropReason> {
        self.core.post(message, Some(ledger)).map_err(|(refusal, _)| refusal)
    }

    /// The next event on this port; `None` after [`PortEvent::Closed`] or once this port is
    /// closed. The first call starts the port (`port.start()`): messages that arrived before
    /// are delivered first, in order.
    pub async fn recv(&mut self) -> Option<PortEvent> {
        let event = self.start_host().recv().await;
        self.received(event)
    }

    /// Settles a message the host program receives as delivered.
    fn received(&self, mut event: Option<PortEvent>) -> Option<PortEvent> {
        if let Some(PortEvent::Message(message)) = &mut event {
            message.release_charges();
            let mut state = self.core.lock();
            state.host_unread.0 = state.host_unread.0.saturating_sub(1);
            state.host_unread.1 = state.host_unread.1.saturating_sub(message.data.len());
            if let Some(ledger) = &state.ledger {
                message.settle(ledger, None);
            }
        }
        event
    }

    /// [`recv`](Self::recv) for code that is not async.
    ///
    /// # Panics
    ///
    /// If called from within an asynchronous execution context (a tokio runtime).
    pub fn recv_blocking(&mut self) -> Option<PortEvent> {
        let event = self.start_host().blocking_recv();
        self.received(event)
    }

    fn start_host(&mut self) -> &mut mpsc::UnboundedReceiver<PortEvent> {
        let core = &self.core;
        self.events.get_or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let mut state = core.lock();
            if state.peer.is_none() && !state.closed {
                // Disentangled while nobody was listening: the close comes after the messages.
                state.started = true;
                state.owner = Owner::Host(tx.clone());
                core.flush_locked(&mut state);
                state.close_pending = false;
                let _ = tx.send(PortEvent::Closed);
                state.owner = Owner::Transit;
            } else if !state.closed {
                state.owner = Owner::Host(tx);
                state.started = true;
                core.flush_locked(&mut state);
            }
            rx
        })
    }

    /// Closes the port (`port.close()`): the entangled port's owner learns it, and nothing
    /// more is sent or received on either end.
    pub fn close(&self) {
        self.core.close();
    }

    pub(crate) fn core(&self) -> &Arc<PortCore> {
        &self.core
    }

    /// Takes the port out of its current owner: it is in transit until attached again.
    /// Messages the host program had not read yet go back to the front of the port's queue,
    /// so that they travel with it, in order.
    pub(crate) fn detach(&mut self) {
        let mut state = self.core.lock();
        // Release while the owner is still known: the keepalive belongs to it.
        state.release_keepalive();
        state.owner = Owner::Transit;
        state.started = false;
        state.scheduled = false;
        if let Some(mut events) = self.events.take() {
            let mut unread = Vec::new();
            while let Ok(event) = events.try_recv() {
                if let PortEvent::Message(message) = event {
                    unread.push(message);
                }
            }
            state.host_unread = (0, 0);
            for message in unread.into_iter().rev() {
                for port in &message.ports {
                    port.core.lock().container = Some(Arc::downgrade(&self.core));
                }
                state.queued_bytes += message.data.len();
                state.queue.push_front(message);
            }
        }
    }

    /// Makes the port held by a worker, known there as `id`, with the worker's queue limits
    /// and its host's ledger. It is not started.
    pub(crate) fn attach_to_worker(
        &mut self,
        holder: Arc<dyn PortHolder>,
        id: u32,
        limits: QueueLimits,
        ledger: &Ledger,
    ) {
        self.events = None;
        let mut state = self.core.lock();
        state.limits = limits;
        state.container = None;
        if state.ledger.is_none() {
            state.ledger = Some(ledger.clone());
        }
        state.release_keepalive();
        state.started = false;
        state.scheduled = false;
        // An entangled port keeps its worker from ending idle: something may still arrive.
        if state.peer.is_some() && !state.closed {
            holder.acquire_keepalive();
            state.counted = true;
        }
        // If it was disentangled in transit, `close_pending` is set: the new holder learns it
        // after the messages, once it starts the port.
        state.owner = Owner::Worker { holder, id };
    }
}

impl Drop for MessagePort {
    fn drop(&mut self) {
        // Messages the host program did not read are dropped with the port.
        if let Some(mut events) = self.events.take() {
            events.close();
            let ledger = self.core.lock().ledger.clone();
            while let Ok(event) = events.try_recv() {
                if let (PortEvent::Message(mut message), Some(ledger)) = (event, &ledger) {
                    message.settle(ledger, Some(DropReason::PortClosed));
                }
            }
        }
        self.core.close();
    }
}

impl fmt::Debug for MessagePort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessagePort").finish_non_exhaustive()
    }
}

/// The shared state of one end of a channel.
pub(crate) struct PortCore {
    state: Mutex<PortState>,
}

struct PortState {
    /// Messages that arrived and are not yet delivered.
    queue: VecDeque<Message>,
    owner: Owner,
    /// Delivery to the owner is enabled (`start()`).
    started: bool,
    /// A `PortReady` task is queued at the owning worker.
    scheduled: bool,
    /// This end was closed by its holder: nothing more goes in or out.
    closed: bool,
    /// The entangled end; `None` once either end is closed.
    peer: Option<Arc<PortCore>>,
    /// This end counts toward its owning worker's keepalive.
    counted: bool,
    /// The entangled end was closed: once the queued messages are delivered, the owning
    /// worker gets `on-close` (through `PortReady`, so the close never overtakes them).
    close_pending: bool,
    /// The ledger of the host whose workers' messages this end carries; set by the first
    /// counted message or worker that reaches it.
    ledger: Option<Ledger>,
    /// What this end's queue accepts: its holder's limits (the defaults until a worker holds
    /// it).
    limits: QueueLimits,
    /// Bytes of data in `queue`.
    queued_bytes: usize,
    /// While this end is in transit inside a message waiting at another port: that port.
    container: Option<Weak<PortCore>>,
    /// Messages (and their bytes) handed to the host program's channel and not read yet:
    /// they count against the queue limits as if still queued.
    host_unread: (usize, usize),
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

/// Who holds a port end.
enum Owner {
    /// Nobody yet, or it is inside a message on its way.
    Transit,
    /// A worker, which knows it as `id`.
    Worker { holder: Arc<dyn PortHolder>, id: u32 },
    /// The host program, which reads `PortEvent`s.
    Host(mpsc::UnboundedSender<PortEvent>),
}

impl PortState {
    fn release_keepalive(&mut self) {
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
    fn new() -> Self {
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
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, PortState> {
        // Every update of the state is a plain assignment or a queue operation, so a panic
        // elsewhere cannot leave it inconsistent.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Posts `message` from this end to the entangled one. If it is refused, it is settled
    /// as dropped, and returned unless the entangled port was closed (the chapter then
    /// discards it without an error).
    fn post(&self, mut message: Message, ledger: Option<&Ledger>) -> Result<(), (DropReason, Option<Message>)> {
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
            message.settle(ledger, Some(refusal));
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
        self.flush_locked(&mut state);
    }

    /// Tells the owner there is something to deliver, if it is started.
    fn flush_locked(self: &Arc<Self>, state: &mut PortState) {
        if !state.started || (state.queue.is_empty() && !state.close_pending) {
            return;
        }
        match &state.owner {
            Owner::Transit => {}
            Owner::Worker { holder, .. } => {
                if !state.scheduled && holder.port_ready(self.clone()) {
                    state.scheduled = true;
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
    fn close(&self) {
        let (peer, dropped, ledger) = {
            let mut state = self.lock();
            if state.closed {
                return;
            }
            state.closed = true;
            state.queued_bytes = 0;
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
                self.flush_locked(&mut state);
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
        self.flush_locked(&mut state);
        drop(state);
        if !contained.is_empty() {
            self.collect_if_cycle(&contained);
        }
        Ok(())
    }

    fn message_size(&self) -> usize {
        self.lock().limits.message_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messaging::Codec;

    fn message() -> Message {
        Message::new(Codec::Raw, vec![1])
    }

    #[test]
    fn messages_the_host_program_has_not_read_count_against_the_queue_limit() {
        let (one, mut two) = channel();
        two.core.lock().limits = QueueLimits { messages: 2, bytes: usize::MAX, message_size: usize::MAX };
        one.post_message(message()).unwrap();
        assert!(matches!(two.recv_blocking(), Some(PortEvent::Message(_))));
        // Now held by the host program: what it has not read is still queued, as it were.
        one.post_message(message()).unwrap();
        one.post_message(message()).unwrap();
        let refused = one.post_message(message()).unwrap_err();
        assert_eq!(refused.reason, DropReason::QueueFull);
        assert!(matches!(two.recv_blocking(), Some(PortEvent::Message(_))));
        one.post_message(message()).unwrap();
    }

    #[test]
    fn a_port_posted_to_its_own_entangled_port_is_doomed_and_the_channel_lost() {
        let (mut one, two) = channel();
        one.post_message(message().with_port(two)).unwrap();
        assert!(matches!(one.recv_blocking(), Some(PortEvent::Closed)));
    }

    #[test]
    fn ports_in_transit_waiting_in_each_others_queues_are_collected() {
        let (mut a, b) = channel();
        let (mut c, d) = channel();
        // `d` waits in `b`'s queue, then `b` in `d`'s: nobody can ever receive either.
        a.post_message(message().with_port(d)).unwrap();
        c.post_message(message().with_port(b)).unwrap();
        assert!(matches!(a.recv_blocking(), Some(PortEvent::Closed)));
        assert!(matches!(c.recv_blocking(), Some(PortEvent::Closed)));
    }

    #[test]
    fn a_port_in_transit_that_can_still_be_received_is_kept() {
        let (a, b) = channel();
        let (c, mut d) = channel();
        // `b` waits in `d`'s queue, and `d` is held here: it can be received.
        c.post_message(message().with_port(b)).unwrap();
        match d.recv_blocking() {
            Some(PortEvent::Message(mut message)) => {
                let mut b = message.ports.pop().expect("the port came along");
                a.post_message(message).unwrap();
                assert!(matches!(b.recv_blocking(), Some(PortEvent::Message(_))));
            }
            other => panic!("expected the message carrying the port, got {other:?}"),
        }
    }
}
