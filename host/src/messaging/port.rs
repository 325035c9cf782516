//! Channel messaging (10.2.4): message channels and their entangled ports.
//!
//! Each end of a channel is a [`PortCore`](super::port_end::PortCore) with its own queue of arriving messages. Posting on
//! one end appends to the other end's queue, wherever that end is: held by a worker, held by
//! the host program, or in transit inside a message. The end's owner is told when there is
//! something to deliver (through [`PortHolder::port_ready`](super::PortHolder::port_ready)
//! for a worker, an event for the host program), so messages on one port arrive in the order
//! posted, across any number of transfers.
//!
//! The lock order is in [`super::port_end`].

use std::fmt;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::accounting::{DropReason, Ledger};
use crate::budget::{Charge, PORT_COST};
use crate::limits::QueueLimits;

use super::message::Message;
use super::port_end::{Owner, PortCore, PortHolder};

/// One end of a message channel (a `MessagePort`), as the host program holds it.
///
/// Put it in a [`Message`]'s `ports` to transfer it to a worker. Dropping it closes it.
pub struct MessagePort {
    pub(super) core: Arc<PortCore>,
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
        let (reason, message) = match self.core.post(message, ledger.as_ref(), true) {
            Ok(()) => return Ok(()),
            Err(refused) => refused,
        };
        match message {
            Some(message) => Err(PortPostError { reason, message }),
            // The entangled port was closed: discarded, as the chapter does.
            None => Ok(()),
        }
    }

    /// [`post_message`](Self::post_message) for a caller that waits for room rather than
    /// lose a message (see [`room`](Self::room)): a message refused because the entangled
    /// port's queue is full comes back as if it had never been posted (not counted posted,
    /// nor dropped), to be posted again. Other refusals are counted as `post_message` counts
    /// them.
    ///
    /// # Errors
    ///
    /// As for [`post_message`](Self::post_message).
    pub fn try_post_message(&self, mut message: Message) -> Result<(), PortPostError> {
        message.detach_ports();
        let ledger = self.core.lock().ledger.clone();
        if let Some(ledger) = &ledger {
            message.count_posted(ledger);
        }
        match self.core.post(message, ledger.as_ref(), false) {
            Ok(()) | Err((_, None)) => Ok(()),
            Err((reason, Some(message))) => Err(PortPostError { reason, message }),
        }
    }

    /// A way to wait until the entangled port's queue has room again, after a post was
    /// refused with [`DropReason::QueueFull`].
    pub fn room(&self) -> PortRoom {
        let peer = self.core.lock().peer.clone();
        let notify = peer.as_ref().map(|peer| peer.lock().room.get_or_insert_with(Default::default).clone());
        PortRoom { peer, notify }
    }

    /// Posts a message a worker posted (counted as posted in `ledger`): settled as dropped
    /// if refused, and why returned.
    pub(crate) fn post_counted(&self, message: Message, ledger: &Ledger) -> Result<(), DropReason> {
        self.core.post(message, Some(ledger), true).map_err(|(refusal, _)| refusal)
    }

    /// Counts the messages posted on this port, and the ones that reach it, in `ledger`
    /// (a port the host program made, when its messages are the host's own to account for:
    /// a port's relay across hosts).
    pub(crate) fn count_in(&self, ledger: &Ledger) {
        let peer = {
            let mut state = self.core.lock();
            state.ledger.get_or_insert_with(|| ledger.clone());
            state.peer.clone()
        };
        if let Some(peer) = peer {
            peer.lock().ledger.get_or_insert_with(|| ledger.clone());
        }
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
            state.notify_room();
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
                // Held by the host program: it gets the messages at once, nobody is woken.
                let _ = core.flush_locked(&mut state);
                state.close_pending = false;
                let _ = tx.send(PortEvent::Closed);
                state.owner = Owner::Transit;
            } else if !state.closed {
                state.owner = Owner::Host(tx);
                state.started = true;
                let _ = core.flush_locked(&mut state);
            }
            rx
        })
    }

    /// Closes the port (`port.close()`): the entangled port's owner learns it, and nothing
    /// more is sent or received on either end.
    pub fn close(&self) {
        self.core.close();
    }

    /// Whether messages wait at this port, queued or handed to the host program and not read
    /// (for the lattice's quiescence: a port a link holds).
    pub(crate) fn unread_probe(&self) -> impl Fn() -> bool + Send + Sync + 'static {
        let core = self.core.clone();
        move || {
            let state = core.lock();
            state.host_unread.0 > 0 || !state.queue.is_empty()
        }
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

/// A way to wait for room in the queue of a port's entangled end, for a sender that would
/// rather wait than have its posts refused as "queue full" (see [`MessagePort::room`]).
pub struct PortRoom {
    peer: Option<Arc<PortCore>>,
    notify: Option<Arc<tokio::sync::Notify>>,
}

impl PortRoom {
    /// Resolves once a message of `len` bytes would find room in the entangled port's queue,
    /// or that port has closed (a post then fails for that). Another sender may take the room
    /// first: a post after it can still be refused as full, and the caller waits again. A
    /// message larger than the queue's byte limit never fits: resolving says only that the
    /// queue is empty.
    pub async fn wait(&self, len: usize) {
        let (Some(peer), Some(notify)) = (&self.peer, &self.notify) else { return };
        loop {
            // A notice between the check and the wait is kept for the wait: none is missed.
            if peer.lock().has_room(len) {
                return;
            }
            notify.notified().await;
        }
    }

    /// Whether a message of `len` bytes would find room in the entangled port's queue now.
    pub fn has_room(&self, len: usize) -> bool {
        self.peer.as_ref().is_none_or(|peer| peer.lock().has_room(len))
    }
}

impl fmt::Debug for PortRoom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortRoom").finish_non_exhaustive()
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
    fn a_post_refused_for_want_of_room_comes_back_uncounted_and_the_room_is_announced() {
        let ledger = Ledger::default();
        let (one, mut two) = channel();
        one.count_in(&ledger);
        two.core.lock().limits = QueueLimits { messages: 1, bytes: usize::MAX, message_size: usize::MAX };
        one.try_post_message(message()).unwrap();
        let refused = one.try_post_message(message()).unwrap_err();
        assert_eq!(refused.reason, DropReason::QueueFull);
        let counts = ledger.counts();
        assert_eq!((counts.posted, counts.dropped.total()), (1, 0), "the refused one was never posted");
        let room = one.room();
        assert!(!room.has_room(1));
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        // Read on another thread: the waiter here is told.
        let reader = std::thread::spawn(move || {
            assert!(matches!(two.recv_blocking(), Some(PortEvent::Message(_))));
            two
        });
        runtime.block_on(room.wait(1));
        let _two = reader.join().unwrap();
        one.try_post_message(refused.message).unwrap();
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
