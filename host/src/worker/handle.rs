//! The host program's side of a worker it spawned (a `Worker` object): posting, events, end.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::accounting::{DropReason, Ledger};
use crate::event_loop::{Control, WorkerQueue, WorkerSender};
use crate::limits::{Limits, QueueLimits};
use crate::messaging::{Deliver, Message};
use wasm_workers_protocol::ErrorEvent;

use super::component::Component;
use super::options::WorkerOptions;
use super::parent::{EventSink, HostInbox, ParentLink};
use super::remote::{spawn_anywhere, RemoteWorker, Started};
use super::services::Services;
use super::spawn::SpawnFailure;

/// How a worker ended without failing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// It called `close()`.
    Closed,
    /// It had nothing left to do: its queue was empty and nothing could post to it any more.
    Idle,
    /// It was terminated, by [`WorkerHandle::terminate`] or because its parent ended.
    Terminated,
}

/// What a worker tells its creator, in the order it happened.
#[derive(Debug)]
pub enum WorkerEvent {
    /// The worker posted a message to its parent.
    Message(Message),
    /// The worker failed; it has ended. This is the last event.
    Error(ErrorEvent),
    /// The worker ended without failing. This is the last event.
    Closed(CloseReason),
}

/// The error of posting a message that the worker does not take. The message is counted
/// as dropped (see [`MessageCounts`](crate::MessageCounts)), and comes back in the error.
#[derive(Debug, thiserror::Error)]
#[error("cannot post to worker `{worker}`: {reason}")]
pub struct PostError {
    /// The worker's name.
    pub worker: String,
    /// Why: [`DropReason::ReceiverGone`] (it has ended), [`DropReason::InputEnded`],
    /// [`DropReason::QueueFull`] ([`Limits::queued_messages`], [`Limits::queued_bytes`]: try
    /// again once it has caught up) or [`DropReason::TooLarge`] ([`Limits::message_size`]).
    pub reason: DropReason,
    /// The message that was not posted.
    pub message: Message,
}

/// The host program's handle on a worker it spawned (a `Worker` object).
///
/// Dropping the handle does not terminate the worker: it ends its input, and the worker runs
/// until it closes, fails, or has nothing left to do. Events it sends after that are lost.
pub struct WorkerHandle {
    name: String,
    sender: Option<WorkerSender>,
    /// Boxed in the channel: its first block holds 32 events, which would cost an idle
    /// worker 3 KiB unboxed.
    events: mpsc::UnboundedReceiver<Box<WorkerEvent>>,
    control: Arc<Control>,
    ledger: Ledger,
    unread: Arc<Unread>,
    /// How long `recv_blocking` spins before it sleeps.
    spin: std::time::Duration,
    /// The worker's limits, the host's defaults filled in.
    limits: Limits,
    queue: Arc<WorkerQueue>,
    /// For a worker on another host: where its messages go, straight from the poster's
    /// thread (its `sender` then only keeps the proxy alive).
    remote: Option<Arc<dyn RemoteWorker>>,
}

/// A way to wait for room in a worker's queue, for a host program that would rather wait
/// than have its posts refused as "queue full" (backpressure): see [`WorkerHandle::room`].
/// It does not keep the worker alive.
#[derive(Clone)]
pub struct QueueRoom(Room);

#[derive(Clone)]
enum Room {
    Queue(Arc<WorkerQueue>),
    /// A worker on another host: room is what its host has granted.
    Remote(Arc<dyn RemoteWorker>),
}

impl QueueRoom {
    /// Resolves once a message of `len` bytes would find room in the worker's queue (the
    /// worker has taken what was waiting), or the worker has ended (a post then fails for
    /// that). Another sender may take the room first: a post after it can still be refused
    /// as full, and the caller waits again. A message larger than the queue's byte limit
    /// never fits: resolving says only that the queue is empty.
    pub async fn wait(&self, len: usize) {
        match &self.0 {
            Room::Queue(queue) => queue.wait_for_room(len).await,
            Room::Remote(remote) => remote.room().await,
        }
    }

    /// Whether a message of `len` bytes would find room in the worker's queue now (or the
    /// worker has ended).
    pub fn has_room(&self, len: usize) -> bool {
        match &self.0 {
            Room::Queue(queue) => queue.has_room(len),
            Room::Remote(remote) => remote.has_room(),
        }
    }
}

impl WorkerHandle {
    /// Drops messages that arrive after `terminate()`: the chapter's terminate empties the
    /// queue of the worker's messages to its owner.
    /// Those are dropped (discarded), not delivered: they were counted delivered when they
    /// reached the handle's channel.
    fn filter(&self, event: Option<WorkerEvent>) -> Option<Option<WorkerEvent>> {
        match event {
            Some(WorkerEvent::Message(_)) if self.control.is_terminated() => {
                self.ledger.undelivered(DropReason::Discarded, 1);
                None
            }
            event => Some(event),
        }
    }
}

impl WorkerHandle {
    /// The worker's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many events have arrived and wait to be received.
    pub fn pending_events(&self) -> usize {
        self.events.len()
    }

    /// The worker's limits, with the host's defaults where its own left them open.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// A way to wait until the worker's queue has room again, after a post was refused
    /// with [`DropReason::QueueFull`].
    pub fn room(&self) -> QueueRoom {
        match &self.remote {
            Some(remote) => QueueRoom(Room::Remote(remote.clone())),
            None => QueueRoom(Room::Queue(self.queue.clone())),
        }
    }

    /// Whether events the worker sent wait here, not received yet (for the lattice's
    /// quiescence: a handle the lattice holds is a link's end).
    pub(crate) fn unread_events(&self) -> impl Fn() -> bool + Send + Sync + 'static {
        let unread = self.unread.clone();
        move || unread.events.load(Ordering::Acquire) > 0
    }

    /// The id of the lattice host the worker runs on; `None` for this host.
    pub fn host(&self) -> Option<String> {
        self.remote.as_ref().map(|remote| remote.host().to_string())
    }

    /// Posts a message to the worker (`worker.postMessage`). Messages arrive in the order
    /// posted. Never blocks.
    ///
    /// # Errors
    ///
    /// [`PostError`] if the worker has ended (closed, failed, terminated), if
    /// [`end_input`](Self::end_input) was called, if its queue is full, or if the message is
    /// larger than it accepts; the message comes back in the error.
    #[allow(clippy::result_large_err, reason = "the refused message comes back whole, as the error's point")]
    pub fn post_message(&self, message: Message) -> Result<(), PostError> {
        self.post(message, true)
    }

    /// [`post_message`](Self::post_message) for a caller that waits for room rather than
    /// lose a message (see [`room`](Self::room)): a message refused because the worker's
    /// queue is full comes back as if it had never been posted — not counted posted, nor
    /// dropped — to be posted again. Other refusals are counted as `post_message` counts them.
    ///
    /// # Errors
    ///
    /// As for [`post_message`](Self::post_message).
    #[allow(clippy::result_large_err, reason = "the refused message comes back whole, as the error's point")]
    pub fn try_post_message(&self, message: Message) -> Result<(), PostError> {
        self.post(message, false)
    }

    #[allow(clippy::result_large_err, reason = "the refused message comes back whole, as the error's point")]
    fn post(&self, mut message: Message, count_full: bool) -> Result<(), PostError> {
        message.detach_ports();
        message.count_posted(&self.ledger);
        let to: Option<&dyn Deliver> = match (&self.sender, &self.remote) {
            (None, _) => None,
            (Some(_), Some(remote)) => Some(&**remote),
            (Some(sender), None) => Some(sender),
        };
        let refused = match to {
            None => (DropReason::InputEnded, message),
            Some(to) => match to.deliver(message, Some(&self.ledger)) {
                Ok(()) => return Ok(()),
                Err(refused) => refused,
            },
        };
        let (reason, mut message) = refused;
        if reason == DropReason::QueueFull && !count_full {
            message.uncount_posted(&self.ledger);
        } else {
            message.settle(&self.ledger, Some(reason));
        }
        Err(PostError { worker: self.name.clone(), reason, message })
    }

    /// Says that the host will post no more messages. A worker with an empty queue and
    /// nothing else that can post to it then ends with [`CloseReason::Idle`].
    pub fn end_input(&mut self) {
        if self.sender.take().is_some() {
            if let Some(remote) = &self.remote {
                remote.release();
            }
        }
    }

    /// The worker's next event; `None` once the last event ([`WorkerEvent::Error`] or
    /// [`WorkerEvent::Closed`]) has been received.
    pub async fn recv(&mut self) -> Option<WorkerEvent> {
        loop {
            let mut event = self.events.recv().await.map(|event| *event);
            self.unread.read(&mut event);
            if let Some(event) = self.filter(event) {
                return event;
            }
        }
    }

    /// The next event if one arrives within the spin time, without sleeping.
    fn spin_recv(&mut self) -> Option<WorkerEvent> {
        if self.spin.is_zero() {
            return None;
        }
        let start = std::time::Instant::now();
        loop {
            match self.events.try_recv() {
                Ok(event) => return Some(*event),
                Err(mpsc::error::TryRecvError::Disconnected) => return None,
                Err(mpsc::error::TryRecvError::Empty) if start.elapsed() < self.spin => std::hint::spin_loop(),
                Err(mpsc::error::TryRecvError::Empty) => return None,
            }
        }
    }

    /// The next event if one has arrived, without waiting.
    pub fn try_recv(&mut self) -> Option<WorkerEvent> {
        loop {
            let mut event = self.events.try_recv().ok().map(|event| *event);
            event.as_ref()?;
            self.unread.read(&mut event);
            if let Some(event) = self.filter(event) {
                return event;
            }
        }
    }

    /// [`recv`](Self::recv) for code that is not async: blocks the calling thread. Like a
    /// worker's own loop, it checks for an event for up to [`HostConfig::spin`] before the
    /// thread sleeps.
    ///
    /// [`HostConfig::spin`]: crate::HostConfig::spin
    ///
    /// # Panics
    ///
    /// If called from within an asynchronous execution context (a tokio runtime).
    pub fn recv_blocking(&mut self) -> Option<WorkerEvent> {
        loop {
            let mut event = self.spin_recv().or_else(|| self.events.blocking_recv().map(|event| *event));
            self.unread.read(&mut event);
            if let Some(event) = self.filter(event) {
                return event;
            }
        }
    }

    /// Terminates the worker (`worker.terminate()`): queued messages are discarded both ways
    /// (messages it posted that were not received yet are dropped too), running guest code
    /// is interrupted even in a loop that never returns, and its children are terminated.
    /// The last event is then [`WorkerEvent::Closed`] with [`CloseReason::Terminated`] (unless
    /// it had already ended with another). Never blocks.
    pub fn terminate(&self) {
        self.control.terminate();
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.end_input();
    }
}

impl fmt::Debug for WorkerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerHandle").field("name", &self.name).finish_non_exhaustive()
    }
}

/// Spawns a worker whose messages and end go to the host program.
pub(crate) fn spawn_root(
    services: &Arc<Services>,
    component: &Component,
    mut options: WorkerOptions,
) -> Result<WorkerHandle, SpawnFailure> {
    options.limits = options.limits.or(services.default_limits);
    let (events_tx, events) = mpsc::unbounded_channel();
    let name = options.name.clone().unwrap_or_default();
    // The host program's side of the worker is bounded like the worker's own queue: messages
    // it has not read count against the worker's queue limits.
    let limits = options.limits.queue();
    let unread = Arc::new(Unread::default());
    let counter = unread.clone();
    let sink: EventSink = Box::new(move |event| {
        if let WorkerEvent::Message(message) = &event {
            if let Some(refusal) = counter.admit(&limits, message) {
                return Err((refusal, event));
            }
        }
        // Counted before it can be received (received, it is counted out).
        counter.events.fetch_add(1, Ordering::AcqRel);
        events_tx.send(Box::new(event)).map_err(|refused| {
            counter.events.fetch_sub(1, Ordering::AcqRel);
            (DropReason::ReceiverGone, *refused.0)
        })
    });
    let worker_limits = options.limits;
    let mut inbox = HostInbox::new(sink);
    if options.placement.is_some() {
        // Bounded like a worker's own queue, whichever host it runs on.
        inbox.message_size = limits.message_size;
    }
    let Started { sender, control, queue, remote } =
        spawn_anywhere(services, component, options, ParentLink::Host(inbox))?;
    Ok(WorkerHandle {
        name,
        sender: Some(sender),
        events,
        control,
        ledger: services.ledger.clone(),
        unread,
        spin: services.patience.spin,
        limits: worker_limits,
        queue,
        remote,
    })
}

/// Messages a worker sent to the host program that it has not read yet.
#[derive(Default)]
struct Unread {
    messages: AtomicUsize,
    bytes: AtomicUsize,
    /// Events of any kind sent to the handle and not received yet.
    events: AtomicUsize,
}

impl Unread {
    /// Counts `message` in, unless it does not fit `limits` (only the worker's thread adds,
    /// so checking and adding need not be one step).
    fn admit(&self, limits: &QueueLimits, message: &Message) -> Option<DropReason> {
        let (messages, bytes) = (self.messages.load(Ordering::Acquire), self.bytes.load(Ordering::Acquire));
        let refusal = limits.check(messages, bytes, message.data.len());
        if refusal.is_none() {
            self.messages.fetch_add(1, Ordering::AcqRel);
            self.bytes.fetch_add(message.data.len(), Ordering::AcqRel);
        }
        refusal
    }

    /// Counts a message out as read; it leaves its sender's budget.
    fn read(&self, event: &mut Option<WorkerEvent>) {
        if event.is_some() {
            self.events.fetch_sub(1, Ordering::AcqRel);
        }
        if let Some(WorkerEvent::Message(message)) = event {
            message.release_charges();
            self.messages.fetch_sub(1, Ordering::AcqRel);
            self.bytes.fetch_sub(message.data.len(), Ordering::AcqRel);
        }
    }
}
