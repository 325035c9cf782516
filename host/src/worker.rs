//! Dedicated workers (10.2.6.3): a component instance on its own thread, and the handle its
//! creator holds.
//!
//! Each worker owns one OS thread (named after the worker), one [`Store`] and one task
//! queue. The thread instantiates the component, then runs the event loop until the worker
//! closes, is terminated, fails, or is idle for good; then it terminates the worker's
//! children and tells the parent how it ended.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use wasmtime::{Store, UpdateDeadline};

use crate::accounting::{DropReason, Ledger};
use crate::bindings;
use crate::burst::Burst;
use crate::engine::Component;
use crate::event_loop::{Next, QueueLimits, Task, TaskQueue, TaskSender};
use crate::host::Host;
use crate::limits::Limits;
use crate::message::{check_json, Codec, Message};
use crate::port::MessagePort;
use crate::port::Ready;
use crate::scope::WorkerState;
use crate::stats::thread_cpu_time;

/// Options for a new worker (`WorkerOptions`, and what a graph grants it).
#[derive(Debug, Default)]
pub struct WorkerOptions {
    /// The worker's name (`self.name` in the worker); empty if `None`. It also names the
    /// worker's thread and prefixes its stdout and stderr lines.
    pub name: Option<String>,
    /// What the worker may reach through WASI; nothing by default.
    pub capabilities: Capabilities,
    /// Its resource limits.
    pub limits: Limits,
    /// Ports handed to the worker at start, by label (`take-channel`).
    pub channels: Vec<(String, MessagePort)>,
}

impl WorkerOptions {
    /// Options with the given name.
    pub fn named(name: impl Into<String>) -> Self {
        WorkerOptions { name: Some(name.into()), ..WorkerOptions::default() }
    }
}

/// What a worker may reach through WASI. A worker gets no files, environment, arguments or
/// time of day unless granted here; its stdout and stderr always go to the host's stderr,
/// prefixed with its name, and it never gets the host's stdin. What the world itself needs
/// is always there: a monotonic clock (for measuring time and for timers) and random bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Whether it may read the time of day (`wasi:clocks/wall-clock`). Without it, the wall
    /// clock reads the Unix epoch, always.
    pub wall_clock: bool,
    /// Its command-line arguments.
    pub args: Vec<String>,
    /// Its environment variables.
    pub env: Vec<(String, String)>,
    /// Host directories it may open, and where it sees them.
    pub dirs: Vec<Preopen>,
}

/// A host directory granted to a worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preopen {
    /// The directory on the host.
    pub host: std::path::PathBuf,
    /// The path the guest opens it by.
    pub guest: String,
    /// Whether the guest may only read.
    pub read_only: bool,
}

/// Where a task came from, as the guest's event handlers see it (shared with the SDK).
pub(crate) use wasm_workers_protocol::Source;

/// A worker's runtime error (the chapter's `ErrorEvent`): it trapped, or could not start.
/// Shared with the guest SDK.
pub use wasm_workers_protocol::ErrorEvent;

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
/// as dropped (see [`crate::accounting`]), and comes back in the error.
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

/// The state a worker shares with those who may terminate it.
pub(crate) struct Control {
    terminated: AtomicBool,
    queue: Arc<TaskQueue>,
    engine: wasmtime::Engine,
    /// Set when the worker's thread has finished with it (the thread itself may go on to run
    /// another worker); its parent waits for it when the parent ends.
    stopped: Mutex<bool>,
    stopped_changed: std::sync::Condvar,
}

impl Control {
    pub(crate) fn is_terminated(&self) -> bool {
        self.terminated.load(Ordering::Acquire)
    }

    /// Whether the worker's thread has finished with it.
    pub(crate) fn has_stopped(&self) -> bool {
        *self.stopped.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_stopped(&self) {
        *self.stopped.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.stopped_changed.notify_all();
    }

    /// Blocks until the worker's thread has finished with it.
    fn wait_stopped(&self) {
        let mut stopped = self.stopped.lock().unwrap_or_else(|p| p.into_inner());
        while !*stopped {
            stopped = self.stopped_changed.wait(stopped).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Terminates the worker: an idle loop wakes and ends; running guest code is interrupted
    /// at its next epoch check. Idempotent.
    pub(crate) fn terminate(&self) {
        if !self.terminated.swap(true, Ordering::AcqRel) {
            self.queue.interrupt();
            // Only a terminate bumps the epoch, so guests pay for the check (a load and a
            // compare at loop heads and function entries) but never for a callback otherwise.
            self.engine.increment_epoch();
        }
    }
}

/// Receives a host-parented worker's events, on the worker's thread; returns false if the
/// receiving side is gone (the event is dropped).
pub(crate) type EventSink = Box<dyn Fn(WorkerEvent) -> Result<(), DropReason> + Send + Sync>;

/// Where a worker's messages and its end go.
pub(crate) enum ParentLink {
    /// The host program: a [`WorkerHandle`]'s channel, or a pool's dispatcher. Called on the
    /// worker's thread for each event; it must not block.
    Host(EventSink),
    /// A parent worker, which knows this worker as `child`. Not a sender: while this worker
    /// is active it counts as a keepalive of the parent's queue instead.
    Worker { queue: Arc<TaskQueue>, child: u32 },
    /// No parent: a shared worker. What it posts to its parent goes nowhere.
    None,
}

impl ParentLink {
    /// Delivers a message to the parent. Returns false if it was dropped: the parent has
    /// ended (or there is none).
    /// Posts `message` (counted as posted) to the parent, settling it in `ledger` if it is
    /// refused or handed to the host program. Returns why it was refused, if it was.
    pub(crate) fn post(&self, mut message: Message, ledger: &Ledger) -> Result<(), DropReason> {
        match self {
            ParentLink::Host(sink) => {
                // Handed to the host program's channel: delivered.
                let counted = std::mem::take(&mut message.counted);
                let sent = sink(WorkerEvent::Message(message));
                if counted {
                    match sent {
                        Ok(()) => ledger.delivered(1),
                        Err(reason) => ledger.dropped(reason, 1),
                    }
                }
                sent
            }
            ParentLink::Worker { queue, child } => {
                queue.push_message(Source::Child(*child), message).map_err(|(refusal, mut message)| {
                    message.settle(ledger, Some(refusal));
                    refusal
                })
            }
            ParentLink::None => {
                message.settle(ledger, Some(DropReason::ReceiverGone));
                Err(DropReason::ReceiverGone)
            }
        }
    }

    /// The largest message the parent accepts; `None` for the host program, whose side of
    /// the worker has the worker's own queue limits.
    pub(crate) fn message_size(&self) -> Option<usize> {
        match self {
            ParentLink::Worker { queue, .. } => Some(queue.message_size()),
            ParentLink::Host(_) => None,
            ParentLink::None => Some(usize::MAX),
        }
    }

    /// Tells the parent how the worker ended. A worker parent is not told of a terminate:
    /// it terminated the child itself, or has ended itself.
    fn exit(self, exit: Exit, host: &Host) {
        match self {
            ParentLink::Host(sink) => {
                let _ = sink(match exit {
                    Exit::Failed(error) => WorkerEvent::Error(error),
                    Exit::Closed(reason) => WorkerEvent::Closed(reason),
                });
            }
            ParentLink::Worker { queue, child } => {
                let _ = match exit {
                    Exit::Failed(error) => queue.push(Task::ChildError { child, error }),
                    // Not an event: it tells the parent it may forget the child.
                    Exit::Closed(CloseReason::Terminated) => queue.push(Task::ChildTerminated { child }),
                    Exit::Closed(_) => queue.push(Task::ChildClosed { child }),
                };
            }
            ParentLink::None => match exit {
                // No parent to tell: the host's watchers of shared workers hear of it (the
                // chapter reports a shared worker's errors to the console).
                Exit::Failed(error) => host.shared_worker_failed(error),
                Exit::Closed(reason) => tracing::debug!(?reason, "shared worker ended"),
            },
        }
    }
}

enum Exit {
    Closed(CloseReason),
    Failed(ErrorEvent),
}

/// The host program's handle on a worker it spawned (a `Worker` object).
///
/// Dropping the handle does not terminate the worker: it ends its input, and the worker runs
/// until it closes, fails, or has nothing left to do. Events it sends after that are lost.
pub struct WorkerHandle {
    name: String,
    sender: Option<TaskSender>,
    events: mpsc::UnboundedReceiver<WorkerEvent>,
    control: Arc<Control>,
    ledger: Ledger,
    unread: Arc<Unread>,
    /// How long `recv_blocking` spins before it sleeps.
    spin: std::time::Duration,
    /// The worker's limits, the host's defaults filled in.
    limits: Limits,
    queue: Arc<TaskQueue>,
}

/// A way to wait for room in a worker's queue, for a host program that would rather wait
/// than have its posts refused as "queue full" (backpressure): see [`WorkerHandle::room`].
/// It does not keep the worker alive.
#[derive(Clone)]
pub struct QueueRoom(Arc<TaskQueue>);

impl QueueRoom {
    /// Resolves once a message of `len` bytes would find room in the worker's queue (the
    /// worker has taken what was waiting), or the worker has ended (a post then fails for
    /// that). Another sender may take the room first: a post after it can still be refused
    /// as full, and the caller waits again. A message larger than the queue's byte limit
    /// never fits: resolving says only that the queue is empty.
    pub async fn wait(&self, len: usize) {
        self.0.wait_for_room(len).await;
    }

    /// Whether a message of `len` bytes would find room in the worker's queue now (or the
    /// worker has ended).
    pub fn has_room(&self, len: usize) -> bool {
        self.0.has_room(len)
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
        QueueRoom(self.queue.clone())
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
        let refused = match &self.sender {
            None => (DropReason::InputEnded, message),
            Some(sender) => match sender.send_message(message) {
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
        self.sender = None;
    }

    /// The worker's next event; `None` once the last event ([`WorkerEvent::Error`] or
    /// [`WorkerEvent::Closed`]) has been received.
    pub async fn recv(&mut self) -> Option<WorkerEvent> {
        loop {
            let mut event = self.events.recv().await;
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
                Ok(event) => return Some(event),
                Err(mpsc::error::TryRecvError::Disconnected) => return None,
                Err(mpsc::error::TryRecvError::Empty) if start.elapsed() < self.spin => std::hint::spin_loop(),
                Err(mpsc::error::TryRecvError::Empty) => return None,
            }
        }
    }

    /// The next event if one has arrived, without waiting.
    pub fn try_recv(&mut self) -> Option<WorkerEvent> {
        loop {
            let mut event = self.events.try_recv().ok();
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
            let mut event = self.spin_recv().or_else(|| self.events.blocking_recv());
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

impl fmt::Debug for WorkerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerHandle").field("name", &self.name).finish_non_exhaustive()
    }
}

/// A child worker as its parent holds it: the `worker` resource of the WIT `scope`.
pub struct ChildWorker {
    pub(crate) id: u32,
    pub(crate) sender: TaskSender,
    pub(crate) control: Arc<Control>,
}

/// Why a worker could not be started.
pub(crate) enum SpawnFailure {
    /// A worker-count limit.
    Limit(String),
    /// The operating system.
    Os(std::io::Error),
}

impl From<std::io::Error> for SpawnFailure {
    fn from(error: std::io::Error) -> Self {
        SpawnFailure::Os(error)
    }
}

impl SpawnFailure {
    pub(crate) fn into_error(self, worker: &str, location: &str) -> crate::SpawnError {
        let (worker, location) = (worker.to_string(), location.to_string());
        match self {
            SpawnFailure::Limit(limit) => crate::SpawnError::Limit { worker, location, limit },
            SpawnFailure::Os(source) => crate::SpawnError::Thread { worker, location, source },
        }
    }
}

impl fmt::Display for SpawnFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnFailure::Limit(limit) => f.write_str(limit),
            SpawnFailure::Os(error) => write!(f, "{error}"),
        }
    }
}

/// Spawns a worker whose messages and end go to the host program.
pub(crate) fn spawn_root(
    host: &Host,
    component: &Component,
    mut options: WorkerOptions,
) -> Result<WorkerHandle, SpawnFailure> {
    options.limits = options.limits.or(host.default_limits());
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
                return Err(refusal);
            }
        }
        events_tx.send(event).map_err(|_| DropReason::ReceiverGone)
    });
    let worker_limits = options.limits;
    let (sender, control, queue) = spawn(host, component, options, ParentLink::Host(sink), None)?;
    Ok(WorkerHandle {
        name,
        sender: Some(sender),
        events,
        control,
        ledger: host.ledger().clone(),
        unread,
        spin: host.spin(),
        limits: worker_limits,
        queue,
    })
}

/// Messages a worker sent to the host program that it has not read yet.
#[derive(Default)]
struct Unread {
    messages: AtomicUsize,
    bytes: AtomicUsize,
}

impl Unread {
    /// Counts `message` in, unless it does not fit `limits` (only the worker's thread adds,
    /// so checking and adding need not be one step).
    fn admit(&self, limits: &QueueLimits, message: &Message) -> Option<DropReason> {
        let (messages, bytes) = (self.messages.load(Ordering::Acquire), self.bytes.load(Ordering::Acquire));
        let refusal = limits.check(messages, bytes, message);
        if refusal.is_none() {
            self.messages.fetch_add(1, Ordering::AcqRel);
            self.bytes.fetch_add(message.data.len(), Ordering::AcqRel);
        }
        refusal
    }

    /// Counts a message out as read; it leaves its sender's budget.
    fn read(&self, event: &mut Option<WorkerEvent>) {
        if let Some(WorkerEvent::Message(message)) = event {
            message.release_charges();
            self.messages.fetch_sub(1, Ordering::AcqRel);
            self.bytes.fetch_sub(message.data.len(), Ordering::AcqRel);
        }
    }
}

/// Spawns a worker thread; `shared` is its name if it is a shared worker. Returns the first
/// sender to the worker, its control and its queue.
pub(crate) fn spawn(
    host: &Host,
    component: &Component,
    mut options: WorkerOptions,
    parent: ParentLink,
    shared: Option<String>,
) -> Result<(TaskSender, Arc<Control>, Arc<TaskQueue>), SpawnFailure> {
    // The host's defaults fill in what the worker's own limits leave open.
    options.limits = options.limits.or(host.default_limits());
    // Counted in before anything is made, and out again on every failure below.
    if !host.reserve_worker() {
        return Err(SpawnFailure::Limit(format!("this host runs its limit of {} workers", host.max_workers())));
    }
    let parent_queue = match &parent {
        ParentLink::Worker { queue, .. } => Some(queue.clone()),
        ParentLink::Host(_) | ParentLink::None => None,
    };
    let (queue, sender) = TaskQueue::new(parent_queue, host.quiescence().clone(), host.spin(), options.limits.queue());
    let control = Arc::new(Control {
        terminated: AtomicBool::new(false),
        queue: queue.clone(),
        // The engine whose epoch the worker's store watches: the component's.
        engine: component.engine().clone(),
        stopped: Mutex::new(false),
        stopped_changed: std::sync::Condvar::new(),
    });
    let name = options.name.clone().unwrap_or_default();
    // Until the thread runs, a failure must undo what the new queue counted (the parent's
    // keepalive, the host's busy workers).
    let state = match WorkerState::new(host.clone(), component, options, queue.clone(), control.clone(), parent, shared)
    {
        Ok(state) => state,
        Err(error) => {
            host.worker_stopped();
            queue.close();
            queue.finish();
            return Err(error.into());
        }
    };
    let component = component.clone();
    let thread_name = if name.is_empty() { format!("worker {}", component.location()) } else { name };
    // A thread name cannot hold NUL, and the name may come from a guest.
    let thread_name = thread_name.replace('\0', "\u{FFFD}");
    let stopped = Stopped(control.clone());
    let job = Box::new(move || {
        // Marked stopped however `run` ends, after everything it does.
        let _stopped = stopped;
        run(component, state);
    });
    match host.threads().run(thread_name, job) {
        Ok(()) => {}
        Err(error) => {
            host.worker_stopped();
            queue.close();
            queue.finish();
            return Err(error.into());
        }
    }
    Ok((sender, control, queue))
}

/// Marks a worker's thread finished with it when dropped.
struct Stopped(Arc<Control>);

impl Drop for Stopped {
    fn drop(&mut self) {
        self.0.set_stopped();
    }
}

/// Closes a worker's queue and counts it out, however its thread ends (even by a panic of
/// the host's own code, which is a bug, but must not leave its parent or the host waiting).
struct Finish(Arc<TaskQueue>);

impl Drop for Finish {
    fn drop(&mut self) {
        self.0.close();
        self.0.finish();
    }
}

/// Notes the start of a task, for the CPU deadline.
fn start_task(store: &mut Store<WorkerState>) -> wasmtime::Result<()> {
    if store.data().limits.deadline.is_some() {
        store.data_mut().task_started = Some(thread_cpu_time());
    }
    Ok(())
}

/// The body of a worker's thread.
fn run(component: Component, state: WorkerState) {
    state.stats().started();
    let queue = state.queue.clone();
    let _finish = Finish(queue.clone());
    let control = state.control.clone();
    let mut store = Store::new(component.engine(), state);
    store.limiter(|state| state.limiter());
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|store| {
        let state = store.data();
        if state.control.is_terminated() {
            return Err(wasmtime::Trap::Interrupt.into());
        }
        if let (Some(deadline), Some(started)) = (state.limits.deadline, state.task_started) {
            let used = thread_cpu_time().saturating_sub(started);
            if used > deadline {
                return Err(wasmtime::Error::msg(format!(
                    "exceeded its CPU deadline of {} ms (ran {} ms)",
                    deadline.as_millis(),
                    used.as_millis()
                )));
            }
        }
        Ok(UpdateDeadline::Continue(1))
    });
    if store.data().limits.deadline.is_some() {
        store.data().host().start_deadline_ticker();
    }
    // What a guest's host call may make the host allocate (lifting its arguments): as much as
    // its memory may hold, so that an oversized post is refused as too large by the host
    // instead of trapping in the lift (wasmtime's default is 128 MiB). A copy of the guest's
    // own memory at most, for the length of one call.
    store.set_hostcall_fuel(store.data().limits.memory.unwrap_or(MAX_GUEST_MEMORY));

    // A terminate that came before the deadline was set bumped the epoch too early to count.
    let exit = if control.is_terminated() {
        Exit::Closed(CloseReason::Terminated)
    } else {
        // Instantiation (the component's start functions) is a task too, under the deadline.
        let _ = start_task(&mut store);
        match component.pre().instantiate(&mut store) {
            Ok(guest) => match start_task(&mut store)
                .and_then(|()| guest.wasm_workers_worker_handlers().call_on_start(&mut store))
            {
                Ok(()) if store.data().closing => Exit::Closed(CloseReason::Closed),
                Ok(()) => event_loop(&mut store, &guest, &queue),
                Err(error) => failure(&store, "trapped", &error),
            },
            Err(error) => failure(&store, "cannot start", &error),
        }
    };
    let exit = match exit {
        Exit::Failed(_) if control.is_terminated() => Exit::Closed(CloseReason::Terminated),
        exit => exit,
    };
    let discarded = queue.close();
    let count = discarded.len();
    crate::event_loop::discard(discarded, store.data().host().ledger());
    let state = store.into_data();
    tracing::debug!(worker = %state.name, discarded = count, "worker ended");
    state.record_end(match &exit {
        Exit::Closed(CloseReason::Closed) => "closed".to_string(),
        Exit::Closed(CloseReason::Idle) => "idle".to_string(),
        Exit::Closed(CloseReason::Terminated) => "terminated".to_string(),
        Exit::Failed(error) => format!("failed: {}", error.message),
    });
    let host = state.host().clone();
    state.end(|parent| {
        // Counted out before the parent hears of it, so that the count is exact for anyone
        // who has received the last event.
        host.worker_stopped();
        parent.exit(exit, &host);
    });
    // `_finish` counts the worker out only now, after the last event is queued at the parent,
    // so that the parent cannot end idle before it has heard how this worker ended.
}

/// Runs tasks until the worker closes, is terminated, fails or is idle for good.
fn event_loop(store: &mut Store<WorkerState>, guest: &bindings::Worker, queue: &TaskQueue) -> Exit {
    let mut batch = VecDeque::new();
    let mut messages = Vec::new();
    let mut burst = Burst::new();
    loop {
        match queue.next(&mut batch) {
            Next::Tasks => {}
            Next::Interrupted => return Exit::Closed(CloseReason::Terminated),
            Next::Idle => return Exit::Closed(CloseReason::Idle),
        }
        while let Some(task) = batch.pop_front() {
            if store.data().control.is_terminated() {
                batch.push_front(task);
                discard(store, &mut batch);
                return Exit::Closed(CloseReason::Terminated);
            }
            let _ = start_task(store);
            let result = match task {
                Task::Message { source, message } => {
                    // The messages queued behind this one go in the same call; one at a time
                    // under a CPU deadline, which counts per event, as the chapter's tasks do.
                    messages.push((source, message));
                    let burst_max = if store.data().limits.deadline.is_some() { 1 } else { BURST };
                    while messages.len() < burst_max && matches!(batch.front(), Some(Task::Message { .. })) {
                        if let Some(Task::Message { source, message }) = batch.pop_front() {
                            messages.push((source, message));
                        }
                    }
                    deliver(store, guest, &mut messages, &mut burst)
                }
                task => run_task(store, guest, task, &mut burst),
            };
            if let Err(error) = result {
                discard(store, &mut batch);
                return failure(store, "trapped", &error);
            }
            // `report-error` describes only a trap of the task that called it.
            store.data_mut().reported_error = None;
            if store.data().closing {
                // The closing flag: tasks still queued (here and in the queue) are discarded.
                discard(store, &mut batch);
                return Exit::Closed(CloseReason::Closed);
            }
        }
    }
}

/// Settles the messages left in `batch` as discarded.
fn discard(store: &Store<WorkerState>, batch: &mut VecDeque<Task>) {
    crate::event_loop::discard(batch.drain(..), store.data().host().ledger());
}

/// The most linear memory a wasm32 guest can have: 4 GiB.
const MAX_GUEST_MEMORY: usize = 1 << 32;

/// The most messages one `on-messages` call delivers: a burst costs one call into the guest,
/// not one per message, yet stays bounded in the guest's memory.
const BURST: usize = 256;

/// How many messages one `PortReady` task delivers before yielding to other tasks.
const PORT_BATCH: usize = 64;

/// One task other than a message from the parent or a child: one call into the guest, or one
/// per message waiting at a port.
fn run_task(
    store: &mut Store<WorkerState>,
    guest: &bindings::Worker,
    task: Task,
    burst: &mut Burst,
) -> wasmtime::Result<()> {
    let handlers = guest.wasm_workers_worker_handlers();
    match task {
        // A child this worker terminated delivers nothing more, even what was in flight.
        Task::ChildError { child, .. } | Task::ChildClosed { child } if store.data().terminated_child(child) => {
            // It ended by itself before the terminate reached it.
            store.data_mut().forget_terminated_child(child);
            Ok(())
        }
        Task::ChildTerminated { child } => {
            // The last thing the child's thread queued: its messages before it were dropped.
            store.data_mut().forget_terminated_child(child);
            Ok(())
        }
        Task::Message { source, message } => deliver(store, guest, &mut vec![(source, message)], burst),
        Task::ChildError { child, error } => {
            store.data_mut().forget_child(child);
            handlers.call_on_error(store, bindings::types::Source::Child(child), &error.into())
        }
        Task::ChildClosed { child } => {
            store.data_mut().forget_child(child);
            handlers.call_on_close(store, bindings::types::Source::Child(child))
        }
        Task::PortReady(port) => {
            // A bounded batch, then the port queues itself again: a peer that never stops
            // posting cannot keep the worker's other tasks waiting. One message per call:
            // the guest may transfer the port while handling any of them, and the messages
            // behind it must then travel with the port.
            let queue = store.data().queue.clone();
            let mut one = Vec::with_capacity(1);
            for _ in 0..PORT_BATCH {
                match port.next_for(&queue) {
                    Ready::Message(id, message) => {
                        one.push((Source::Port(id), message));
                        start_task(store)?;
                        deliver(store, guest, &mut one, burst)?;
                    }
                    Ready::Closed(id) => return handlers.call_on_close(store, bindings::types::Source::Port(id)),
                    Ready::Done => return Ok(()),
                }
                if store.data().closing || store.data().control.is_terminated() {
                    return Ok(());
                }
            }
            port.yield_to(&queue);
            Ok(())
        }
        Task::Connect(port) => {
            let port = store.data_mut().adopt_port(port)?;
            handlers.call_on_connect(store, port)
        }
        Task::Timeout { id } => {
            if store.data_mut().timer_fired(id) {
                handlers.call_on_timeout(store, id)
            } else {
                // Cleared after it was queued.
                Ok(())
            }
        }
    }
}

/// Delivers `messages` (drained) in one `on-messages` call, assembled in `burst` (empty
/// before, and after unless lowering a transferred object fails, which fails the worker):
/// each as a `message` event, or a `messageerror` event if its JSON is
/// malformed. Messages from a child this worker has terminated are dropped (counted as
/// discarded), as are those the guest reports discarded.
fn deliver(
    store: &mut Store<WorkerState>,
    guest: &bindings::Worker,
    messages: &mut Vec<(Source, Message)>,
    burst: &mut Burst,
) -> wasmtime::Result<()> {
    let ledger = store.data().host().ledger().clone();
    // The senders wrote these bytes on other CPUs: ask for all of them at once, so that their
    // cache misses overlap instead of each copy below waiting for its own.
    for (_, message) in messages.iter() {
        crate::burst::prefetch(&message.data);
    }
    for (source, mut message) in messages.drain(..) {
        if let Source::Child(child) = source {
            if store.data().terminated_child(child) {
                message.settle(&ledger, Some(DropReason::Discarded));
                continue;
            }
        }
        if u32::try_from(message.data.len()).is_err() {
            // Beyond what a 32-bit guest can hold: refused like a message over its size limit.
            message.settle(&ledger, Some(DropReason::TooLarge));
            continue;
        }
        let error = match message.codec {
            Codec::Json => check_json(&message.data).err().map(|error| format!("malformed JSON: {error}")),
            _ => None,
        };
        let counted = std::mem::take(&mut message.counted);
        let transferred = store.data_mut().lower_transfer(&mut message, burst.transfer())?;
        burst.push(source, message.codec, message.data, transferred, error, counted);
    }
    if burst.len() == 0 {
        return Ok(());
    }
    // Those the guest discarded are the last ones after a `close`, or messages from a child
    // or port it let go of. If the call fails (a trap, or `terminate`), every message was
    // handed over: delivered.
    let count = burst.len();
    // Counted received before the call, so that whoever hears from the guest sees them.
    store.data().stats().received(count, burst.wire().data.len());
    let (handled, result) = match guest.wasm_workers_worker_handlers().call_on_messages(&mut *store, burst.wire()) {
        Ok(discarded) => (count - (discarded as usize).min(count), Ok(())),
        Err(error) => (count, Err(error)),
    };
    if handled < count {
        store.data().stats().unreceived(count - handled, burst.bytes_from(handled));
    }
    ledger.delivered(burst.counted_before(handled));
    ledger.dropped(DropReason::Discarded, burst.counted_from(handled));
    burst.clear();
    result
}

/// The runtime error of a worker whose guest trapped or could not start.
fn failure(store: &Store<WorkerState>, what: &str, error: &wasmtime::Error) -> Exit {
    let state = store.data();
    let cause = match error.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => format!("{what}: {error:#}"),
    };
    let mut message = match &state.reported_error {
        Some(reported) => format!("{reported} ({cause})"),
        None => cause,
    };
    if let Some(limit) = state.memory_limit_hit() {
        message.push_str(&format!(" after reaching {limit}"));
    }
    if let Some(backtrace) = error.downcast_ref::<wasmtime::WasmBacktrace>() {
        tracing::debug!(worker = %state.name, "{message}\n{backtrace}");
    }
    Exit::Failed(ErrorEvent { message, worker: state.name.clone(), location: state.location.clone() })
}

/// Terminates `children` and waits for their threads to end; used when their parent ends.
/// Terminated guests stop at their next epoch check, so this waits only for a guest blocked
/// in a host call.
pub(crate) fn terminate_all(children: Vec<Arc<Control>>) {
    for control in &children {
        control.terminate();
    }
    for control in children {
        control.wait_stopped();
    }
}
