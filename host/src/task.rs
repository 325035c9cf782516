//! Typed tasks on pools of workers, streams, and join/scope — what the Rust worker libraries
//! give their users (worker functions, reactors, thread pools, `par_map`), without their
//! failures: a task whose worker dies, panics or is terminated is answered with an error
//! naming the cause, never left waiting.
//!
//! The wire protocol (JSON, spoken by the guest SDK's `TaskWorker`):
//! a task is `{"task": id, "input": I}`, answered `{"task": id, "output": O}` or
//! `{"task": id, "error": "why"}`; a stream is opened by `{"stream": label}` with one port, on
//! which `{"item": T}` messages flow both ways until either side sends `{"end": true}` or
//! closes the port.
//!
//! A [`Pool`] keeps up to `size` workers of one component, started on demand. Each task goes
//! to one worker, picked round-robin or least-loaded among those under the per-worker limit
//! ([`TaskError::Full`] if none is). A worker answers its tasks in order, so when one fails the
//! task it was running (its oldest unanswered one) fails with the worker's error, and the
//! tasks queued behind it go to a fresh worker. Idle workers are terminated after
//! `idle_timeout` and started again on demand.

use std::collections::HashSet;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle as ThreadHandle;
use std::time::{Duration, Instant};
use wasm_workers_protocol::task as protocol;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::engine::Component;
use crate::event_loop::{Task, TaskSender};
use crate::host::Host;
use crate::message::Message;
use crate::port::{self, MessagePort, PortEvent};
use crate::worker::{self, Control, ParentLink, PostError, Source, WorkerEvent, WorkerHandle, WorkerOptions};

/// Why a task has no result.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    /// The task itself reported a failure.
    #[error("{}{}", protocol::TASK_FAILED, .0)]
    Failed(String),
    /// The worker running it failed (a trap, a panic); the worker's error message.
    #[error("{}{}", protocol::WORKER_FAILED, .0)]
    WorkerFailed(String),
    /// The worker ended (closed itself, or was terminated) before answering.
    #[error("the worker running the task ended before answering: {0}")]
    WorkerEnded(String),
    /// Every worker has as many tasks in flight as the pool's limit allows.
    #[error("every worker of the pool has as many tasks as it may take")]
    Full,
    /// The input does not encode, or the answer does not decode.
    #[error("the task's input or answer does not fit its type: {0}")]
    Codec(String),
    /// A worker could not be started.
    #[error("cannot start a worker: {0}")]
    Spawn(String),
    /// The pool was terminated.
    #[error("the pool was terminated")]
    Terminated,
}

/// How a [`Pool`] picks a worker for a task (shared with the guest SDK's pools).
pub use wasm_workers_protocol::task::Schedule;

/// How a [`Pool`] behaves.
#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// How many workers at most; the host's `hardware_concurrency` if `None`.
    pub size: Option<usize>,
    /// How a task's worker is picked by `run`. `par_map` always picks the least loaded
    /// worker, so that each answer brings the next input to the worker that gave it.
    pub schedule: Schedule,
    /// Tasks in flight per worker before it counts as full.
    pub max_in_flight: usize,
    /// A worker with nothing to do for this long is terminated, and started again on demand.
    pub idle_timeout: Option<Duration>,
    /// The workers are named `name-0`, `name-1`, ...
    pub name: String,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            size: None,
            schedule: Schedule::RoundRobin,
            max_in_flight: 64,
            idle_timeout: None,
            name: "pool".to_string(),
        }
    }
}

/// Where a task's answer goes.
enum Reply {
    Once(oneshot::Sender<Result<Value, TaskError>>),
    Indexed(mpsc::UnboundedSender<(usize, Result<Value, TaskError>)>, usize),
}

impl Reply {
    fn send(self, result: Result<Value, TaskError>) {
        match self {
            Reply::Once(tx) => {
                let _ = tx.send(result);
            }
            Reply::Indexed(tx, index) => {
                let _ = tx.send((index, result));
            }
        }
    }
}

struct Pending {
    input: Value,
    reply: Reply,
}

struct SlotWorker {
    sender: TaskSender,
    control: Arc<Control>,
}

struct Slot {
    worker: Option<SlotWorker>,
    /// Incremented for each worker started in this slot; events of older ones are ignored.
    generation: u64,
    /// Tasks sent and not answered, oldest first.
    in_flight: VecDeque<u64>,
    idle_since: Option<Instant>,
}

enum Event {
    Worker { slot: usize, generation: u64, event: WorkerEvent },
    Shutdown,
}

struct State {
    slots: Vec<Slot>,
    next_slot: usize,
    next_task: u64,
    pending: HashMap<u64, Pending>,
    terminated: bool,
    /// Workers (slot, generation) whose last event has not arrived yet.
    live: HashSet<(usize, u64)>,
}

struct Shared {
    host: Host,
    component: Component,
    config: PoolConfig,
    state: Mutex<State>,
    events: std_mpsc::Sender<Event>,
    /// The number of running workers, for those who watch it.
    running: tokio::sync::watch::Sender<usize>,
    /// Notified whenever a task is answered (a place is free again).
    capacity: tokio::sync::Notify,
}

/// A pool of task workers of one component. Cheap to clone; clones share the pool. When the
/// last clone is dropped, the workers are terminated and every unanswered task fails with
/// [`TaskError::Terminated`]; the drop waits until they have stopped.
#[derive(Clone)]
pub struct Pool {
    handle: Arc<PoolHandle>,
}

struct PoolHandle {
    shared: Arc<Shared>,
    dispatcher: Mutex<Option<ThreadHandle<()>>>,
}

impl Pool {
    /// A pool of workers running `component`. Workers start on demand.
    ///
    /// # Errors
    ///
    /// If the pool's dispatcher thread cannot be started.
    pub fn new(host: &Host, component: &Component, config: PoolConfig) -> std::io::Result<Pool> {
        let size = config.size.unwrap_or(host.hardware_concurrency() as usize).max(1);
        let slots = (0..size)
            .map(|_| Slot { worker: None, generation: 0, in_flight: VecDeque::new(), idle_since: None })
            .collect();
        let (events, receiver) = std_mpsc::channel();
        let shared = Arc::new(Shared {
            host: host.clone(),
            component: component.clone(),
            config,
            state: Mutex::new(State {
                slots,
                next_slot: 0,
                next_task: 0,
                pending: HashMap::new(),
                terminated: false,
                live: HashSet::new(),
            }),
            events,
            running: tokio::sync::watch::Sender::new(0),
            capacity: tokio::sync::Notify::new(),
        });
        let dispatcher_shared = shared.clone();
        let dispatcher = std::thread::Builder::new()
            .name(format!("{} dispatcher", shared.config.name))
            .spawn(move || dispatcher_shared.dispatch(receiver))?;
        Ok(Pool { handle: Arc::new(PoolHandle { shared, dispatcher: Mutex::new(Some(dispatcher)) }) })
    }

    /// How many workers the pool has room for.
    pub fn size(&self) -> usize {
        self.handle.shared.lock().slots.len()
    }

    /// How many of its workers are running now.
    pub fn running_workers(&self) -> usize {
        self.handle.shared.lock().slots.iter().filter(|s| s.worker.is_some()).count()
    }

    /// Watches the number of running workers: it changes as workers start on demand, end,
    /// or are terminated when idle.
    pub fn watch_running_workers(&self) -> tokio::sync::watch::Receiver<usize> {
        self.handle.shared.running.subscribe()
    }

    /// Runs one task on a worker of the pool. The task is sent at once; the future resolves
    /// to its answer.
    ///
    /// # Errors
    ///
    /// [`TaskError::Full`] at once if every worker is at the limit; otherwise whatever
    /// answers the task (see [`TaskError`]).
    pub fn run<I: Serialize, O: DeserializeOwned>(
        &self,
        input: &I,
    ) -> impl Future<Output = Result<O, TaskError>> + use<I, O> {
        let (tx, rx) = oneshot::channel();
        let submitted = serde_json::to_value(input)
            .map_err(|e| TaskError::Codec(e.to_string()))
            .and_then(|input| self.handle.shared.submit(input, Reply::Once(tx), self.handle.shared.config.schedule));
        async move {
            submitted?;
            let answer = rx.await.unwrap_or(Err(TaskError::Terminated))?;
            serde_json::from_value(answer).map_err(|e| TaskError::Codec(e.to_string()))
        }
    }

    /// Runs a task for each input and returns the results in input order. Each worker gets a
    /// couple of inputs at a time and the next one as soon as it answers one, so uneven work
    /// spreads evenly; a full pool makes it wait, not fail. One failing input fails only its
    /// own result.
    pub async fn par_map<I: Serialize, O: DeserializeOwned>(
        &self,
        inputs: impl IntoIterator<Item = I>,
    ) -> Vec<Result<O, TaskError>> {
        let mut queue: VecDeque<(usize, Result<Value, TaskError>)> = inputs
            .into_iter()
            .enumerate()
            .map(|(i, input)| (i, serde_json::to_value(input).map_err(|e| TaskError::Codec(e.to_string()))))
            .collect();
        let total = queue.len();
        let mut results: Vec<Option<Result<O, TaskError>>> = (0..total).map(|_| None).collect();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let window = (self.size() * 2).max(1);
        let mut in_flight = 0usize;
        let mut done = 0usize;
        while done < total {
            // Registered before trying, so that an answer between the try and the wait is seen.
            let capacity = self.handle.shared.capacity.notified();
            tokio::pin!(capacity);
            capacity.as_mut().enable();
            let mut full = false;
            while in_flight < window {
                let Some((index, input)) = queue.pop_front() else { break };
                let input = match input {
                    Ok(input) => input,
                    Err(error) => {
                        results[index] = Some(Err(error));
                        done += 1;
                        continue;
                    }
                };
                // The least loaded worker, whatever the pool's schedule: when an answer makes
                // room, that is the worker that answered (a round robin would queue the input
                // behind a slower worker's task while the faster one runs dry).
                match self.handle.shared.submit(input.clone(), Reply::Indexed(tx.clone(), index), Schedule::LeastLoaded)
                {
                    Ok(()) => in_flight += 1,
                    Err(TaskError::Full) => {
                        // Wait for an answer, then try again.
                        queue.push_front((index, Ok(input)));
                        full = true;
                        break;
                    }
                    Err(error) => {
                        results[index] = Some(Err(error));
                        done += 1;
                    }
                }
            }
            if done == total {
                break;
            }
            if in_flight == 0 {
                if full {
                    // Other callers fill the pool: wait until any task is answered.
                    capacity.await;
                }
                continue;
            }
            let Some((index, result)) = rx.recv().await else { break };
            in_flight -= 1;
            done += 1;
            results[index] =
                Some(result.and_then(|v| serde_json::from_value(v).map_err(|e| TaskError::Codec(e.to_string()))));
        }
        results.into_iter().map(|r| r.unwrap_or(Err(TaskError::Terminated))).collect()
    }

    /// Terminates every worker; every unanswered task fails with [`TaskError::Terminated`],
    /// and later tasks too.
    pub fn terminate(&self) {
        self.handle.shared.terminate();
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool").field("name", &self.handle.shared.config.name).field("size", &self.size()).finish()
    }
}

impl Drop for PoolHandle {
    fn drop(&mut self) {
        self.shared.terminate();
        let _ = self.shared.events.send(Event::Shutdown);
        if let Some(dispatcher) = self.dispatcher.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = dispatcher.join();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes the number of running workers.
    fn count_running(&self, state: &State) {
        let running = state.slots.iter().filter(|s| s.worker.is_some()).count();
        self.running.send_if_modified(|count| std::mem::replace(count, running) != running);
    }

    /// Sends a task to a worker with room, picked by `schedule`; [`TaskError::Full`] if there
    /// is none (the caller decides whether that is a failure or a reason to wait).
    fn submit(&self, input: Value, reply: Reply, schedule: Schedule) -> Result<(), TaskError> {
        let mut state = self.lock();
        if state.terminated {
            return Err(TaskError::Terminated);
        }
        let size = state.slots.len();
        let limit = self.config.max_in_flight.max(1);
        let room = |s: &Slot| s.in_flight.len() < limit;
        let slot = match schedule {
            Schedule::RoundRobin => (0..size).map(|k| (state.next_slot + k) % size).find(|&i| room(&state.slots[i])),
            Schedule::LeastLoaded => {
                (0..size).filter(|&i| room(&state.slots[i])).min_by_key(|&i| state.slots[i].in_flight.len())
            }
        }
        .ok_or(TaskError::Full)?;
        state.next_slot = (slot + 1) % size;
        state.next_task += 1;
        let id = state.next_task;
        state.pending.insert(id, Pending { input: input.clone(), reply });
        if let Err(error) = self.send(&mut state, slot, id, input) {
            let pending = state.pending.remove(&id).expect("just inserted");
            drop(state);
            // The caller learns through the reply as with every other answer.
            pending.reply.send(Err(error));
        }
        Ok(())
    }

    /// Sends task `id` to the worker of `slot`, starting one if the slot has none.
    fn send(&self, state: &mut State, slot: usize, id: u64, input: Value) -> Result<(), TaskError> {
        if state.slots[slot].worker.is_none() {
            let generation = state.slots[slot].generation + 1;
            let events = self.events.clone();
            let sink: worker::EventSink = Box::new(move |event| {
                events.send(Event::Worker { slot, generation, event }).map_err(|_| crate::DropReason::ReceiverGone)
            });
            let options = WorkerOptions::named(format!("{}-{slot}", self.config.name));
            let (sender, control, _) =
                worker::spawn(&self.host, &self.component, options, ParentLink::Host(sink), None)
                    .map_err(|failure| TaskError::Spawn(failure.to_string()))?;
            state.slots[slot].generation = generation;
            state.slots[slot].worker = Some(SlotWorker { sender, control });
            state.live.insert((slot, generation));
            self.count_running(state);
        }
        let slot_state = &mut state.slots[slot];
        slot_state.idle_since = None;
        slot_state.in_flight.push_back(id);
        let message =
            Message::json(&protocol::Request { task: id, input }).map_err(|e| TaskError::Codec(e.to_string()))?;
        let worker = slot_state.worker.as_ref().expect("started above");
        // A worker that has just ended refuses the task; its end event requeues it. Queued
        // without the queue limits: `max_in_flight` bounds a worker's requests already, and a
        // request refused for a full queue would leave its caller waiting.
        let _ = worker.sender.send(Task::Message { source: Source::Parent, message });
        Ok(())
    }

    fn terminate(&self) {
        let (pending, workers) = {
            let mut state = self.lock();
            state.terminated = true;
            let workers: Vec<_> = state.slots.iter_mut().filter_map(|s| s.worker.take()).collect();
            for slot in &mut state.slots {
                slot.in_flight.clear();
            }
            self.count_running(&state);
            (std::mem::take(&mut state.pending), workers)
        };
        for worker in &workers {
            worker.control.terminate();
        }
        for (_, pending) in pending {
            pending.reply.send(Err(TaskError::Terminated));
        }
    }

    /// The dispatcher thread: answers tasks from the workers' events, replaces failed
    /// workers, and terminates idle ones.
    fn dispatch(&self, events: std_mpsc::Receiver<Event>) {
        loop {
            let timeout = self.next_idle_deadline().map(|at| at.saturating_duration_since(Instant::now()));
            let event = match timeout {
                Some(timeout) => match events.recv_timeout(timeout) {
                    Ok(event) => Some(event),
                    Err(std_mpsc::RecvTimeoutError::Timeout) => None,
                    Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
                },
                None => match events.recv() {
                    Ok(event) => Some(event),
                    Err(_) => return,
                },
            };
            match event {
                Some(Event::Shutdown) => {
                    // Wait for the terminated workers' last events, so that none outlives the
                    // pool.
                    while !self.lock().live.is_empty() {
                        match events.recv() {
                            Ok(Event::Worker { slot, generation, event }) => self.on_event(slot, generation, event),
                            Ok(Event::Shutdown) => {}
                            Err(_) => return,
                        }
                    }
                    return;
                }
                Some(Event::Worker { slot, generation, event }) => self.on_event(slot, generation, event),
                None => {}
            }
            self.reap_idle();
        }
    }

    fn next_idle_deadline(&self) -> Option<Instant> {
        let timeout = self.config.idle_timeout?;
        let state = self.lock();
        state
            .slots
            .iter()
            .filter(|s| s.worker.is_some())
            .filter_map(|s| s.idle_since)
            .min()
            .map(|since| since + timeout)
    }

    fn reap_idle(&self) {
        let Some(timeout) = self.config.idle_timeout else { return };
        let now = Instant::now();
        let mut state = self.lock();
        for slot in &mut state.slots {
            if slot.in_flight.is_empty() && slot.idle_since.is_some_and(|since| now >= since + timeout) {
                if let Some(worker) = slot.worker.take() {
                    tracing::debug!(pool = %self.config.name, "terminating an idle worker");
                    worker.control.terminate();
                }
                slot.idle_since = None;
            }
        }
        self.count_running(&state);
    }

    fn on_event(&self, slot: usize, generation: u64, event: WorkerEvent) {
        let mut state = self.lock();
        if matches!(event, WorkerEvent::Error(_) | WorkerEvent::Closed(_)) {
            state.live.remove(&(slot, generation));
        }
        // An event of a worker this slot no longer has (terminated when idle, or replaced).
        if state.slots[slot].generation != generation || state.slots[slot].worker.is_none() {
            return;
        }
        match event {
            WorkerEvent::Message(message) => {
                let answer: Value = match message.decode_json() {
                    Ok(answer) => answer,
                    Err(error) => {
                        tracing::warn!(pool = %self.config.name, "a worker answered with something that is not JSON: {error}");
                        return;
                    }
                };
                let Some((id, said)) = protocol::answer(&answer) else { return };
                state.slots[slot].in_flight.retain(|&t| t != id);
                if state.slots[slot].in_flight.is_empty() {
                    state.slots[slot].idle_since = Some(Instant::now());
                }
                let Some(pending) = state.pending.remove(&id) else { return };
                drop(state);
                self.capacity.notify_waiters();
                let result = match said {
                    protocol::Answer::Output(output) => Ok(output.clone()),
                    protocol::Answer::Failure(error) => Err(TaskError::Failed(error)),
                    protocol::Answer::Malformed => Err(TaskError::Codec(format!("not a task answer: {answer}"))),
                };
                pending.reply.send(result);
            }
            WorkerEvent::Error(error) => self.worker_gone(state, slot, TaskError::WorkerFailed(error.message)),
            WorkerEvent::Closed(reason) => self.worker_gone(state, slot, TaskError::WorkerEnded(format!("{reason:?}"))),
        }
    }

    /// The worker of `slot` has ended: the task it was running fails with `cause`, and the
    /// ones queued behind it go to a fresh worker.
    fn worker_gone(&self, mut state: MutexGuard<'_, State>, slot: usize, cause: TaskError) {
        state.slots[slot].worker = None;
        state.slots[slot].idle_since = None;
        self.count_running(&state);
        let mut in_flight = std::mem::take(&mut state.slots[slot].in_flight);
        let culprit = in_flight.pop_front().and_then(|id| state.pending.remove(&id));
        let mut failed = Vec::new();
        if !state.terminated {
            for id in in_flight {
                let Some(input) = state.pending.get(&id).map(|p| p.input.clone()) else { continue };
                if let Err(error) = self.send(&mut state, slot, id, input) {
                    if let Some(pending) = state.pending.remove(&id) {
                        failed.push((pending, error));
                    }
                }
            }
        }
        drop(state);
        if let Some(pending) = culprit {
            pending.reply.send(Err(cause));
        }
        for (pending, error) in failed {
            pending.reply.send(Err(error));
        }
    }
}

/// One end of a typed two-way stream with a worker, over a port.
#[derive(Debug)]
pub struct Stream {
    port: MessagePort,
    ended: bool,
}

impl Stream {
    /// Opens a stream to `worker`: sends it one end of a new channel with `{"stream": label}`
    /// (its `TaskWorker::on_stream` gets it) and keeps the other.
    ///
    /// # Errors
    ///
    /// If the worker no longer receives messages.
    #[allow(clippy::result_large_err, reason = "the refused message comes back whole, as the error's point")]
    pub fn open(worker: &WorkerHandle, label: &str) -> Result<Stream, PostError> {
        let (mine, theirs) = port::channel();
        let request =
            Message::json(&protocol::OpenStream { stream: label }).expect("a JSON object encodes").with_port(theirs);
        worker.post_message(request)?;
        Ok(Stream { port: mine, ended: false })
    }

    /// Sends one item.
    ///
    /// # Errors
    ///
    /// If the item does not encode, or the stream has ended.
    pub fn send<T: Serialize>(&self, item: &T) -> Result<(), TaskError> {
        if self.ended {
            return Err(TaskError::WorkerEnded("the stream has ended".to_string()));
        }
        let message = Message::json(&protocol::Item { item }).map_err(|e| TaskError::Codec(e.to_string()))?;
        self.port.post_message(message).map_err(|_| TaskError::WorkerEnded("the stream has ended".to_string()))
    }

    /// The next item from the worker; `None` once the worker ended the stream (or went away).
    ///
    /// # Errors
    ///
    /// [`TaskError::Codec`] if an item does not decode as a `T`.
    pub async fn recv<T: DeserializeOwned>(&mut self) -> Result<Option<T>, TaskError> {
        loop {
            if self.ended {
                return Ok(None);
            }
            match self.port.recv().await {
                Some(PortEvent::Message(message)) => {
                    let value: Value = message.decode_json().map_err(|e| TaskError::Codec(e.to_string()))?;
                    match protocol::stream_message(&value) {
                        protocol::StreamMessage::End => {
                            self.ended = true;
                            return Ok(None);
                        }
                        protocol::StreamMessage::Item(item) => {
                            return serde_json::from_value(item.clone())
                                .map(Some)
                                .map_err(|e| TaskError::Codec(e.to_string()));
                        }
                        protocol::StreamMessage::Other => {}
                    }
                }
                Some(PortEvent::Closed) | None => {
                    self.ended = true;
                    return Ok(None);
                }
            }
        }
    }

    /// Ends the stream from this side: the worker sees the end.
    pub fn end(mut self) {
        if !self.ended {
            let _ = self.port.post_message(Message::json(&protocol::END).expect("a JSON object encodes"));
            self.ended = true;
        }
        self.port.close();
    }
}

/// A task running on a worker of its own (`std::thread::spawn` for workers): join it for
/// its result. Dropping it terminates the worker, and waits until it has stopped.
#[derive(Debug)]
pub struct JoinHandle<O> {
    pool: Pool,
    answer: oneshot::Receiver<Result<Value, TaskError>>,
    _output: std::marker::PhantomData<fn() -> O>,
}

/// Runs one task on a new worker of `component` (`std::thread::spawn`); join the handle for
/// its result.
///
/// # Errors
///
/// If the worker cannot be started, or the input does not encode.
pub fn spawn<I: Serialize, O: DeserializeOwned>(
    host: &Host,
    component: &Component,
    input: &I,
) -> Result<JoinHandle<O>, TaskError> {
    let config = PoolConfig { size: Some(1), name: "task".to_string(), ..PoolConfig::default() };
    let pool = Pool::new(host, component, config).map_err(|e| TaskError::Spawn(e.to_string()))?;
    let input = serde_json::to_value(input).map_err(|e| TaskError::Codec(e.to_string()))?;
    let (tx, answer) = oneshot::channel();
    pool.handle.shared.submit(input, Reply::Once(tx), pool.handle.shared.config.schedule)?;
    Ok(JoinHandle { pool, answer, _output: std::marker::PhantomData })
}

impl<O: DeserializeOwned> JoinHandle<O> {
    /// Waits for the task's result; the worker is terminated afterwards.
    ///
    /// # Errors
    ///
    /// Whatever kept the task from a result (see [`TaskError`]).
    pub async fn join(self) -> Result<O, TaskError> {
        let answer = self.answer.await.unwrap_or(Err(TaskError::Terminated))?;
        drop(self.pool);
        serde_json::from_value(answer).map_err(|e| TaskError::Codec(e.to_string()))
    }
}

/// A scope of tasks (`std::thread::scope` for workers): every task spawned in it has finished
/// or been terminated when the scope ends.
#[derive(Debug)]
pub struct Scope {
    host: Host,
    pools: Mutex<Vec<Pool>>,
}

impl Scope {
    /// An empty scope.
    pub fn new(host: &Host) -> Scope {
        Scope { host: host.clone(), pools: Mutex::new(Vec::new()) }
    }

    /// Runs one task on a new worker of `component`, within the scope; the future resolves to
    /// its result.
    ///
    /// # Errors
    ///
    /// If the worker cannot be started, or the input does not encode.
    pub fn spawn<I: Serialize, O: DeserializeOwned>(
        &self,
        component: &Component,
        input: &I,
    ) -> Result<impl Future<Output = Result<O, TaskError>> + use<I, O>, TaskError> {
        let config = PoolConfig { size: Some(1), name: "scoped".to_string(), ..PoolConfig::default() };
        let pool = Pool::new(&self.host, component, config).map_err(|e| TaskError::Spawn(e.to_string()))?;
        let result = pool.run(input);
        self.pools.lock().unwrap_or_else(|p| p.into_inner()).push(pool);
        Ok(result)
    }

    /// How many of the scope's workers are running.
    pub fn running_workers(&self) -> usize {
        self.pools.lock().unwrap_or_else(|p| p.into_inner()).iter().map(Pool::running_workers).sum()
    }
}

impl Drop for Scope {
    /// Terminates every task that has not finished, and waits until its worker has stopped.
    fn drop(&mut self) {
        let pools = std::mem::take(&mut *self.pools.lock().unwrap_or_else(|p| p.into_inner()));
        drop(pools);
    }
}
