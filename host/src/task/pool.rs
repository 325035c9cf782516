//! A pool of task workers of one component: tasks in, answers out, workers started on demand
//! and replaced when they fail.

use std::collections::HashSet;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle as ThreadHandle;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::accounting::DropReason;
use crate::event_loop::{Control, WorkerSender};
use crate::host::Host;
use crate::messaging::Message;
use crate::worker::{self, Component, EventSink, HostInbox, ParentLink, Started, WorkerEvent, WorkerOptions};

use super::{protocol, Schedule, TaskError};

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
    /// Where its workers run: `None` (the default) on this host; otherwise each on a host of
    /// the lattice this host has joined that matches (the freest, as each starts), and here
    /// without a lattice.
    pub placement: Option<crate::worker::Placement>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            size: None,
            schedule: Schedule::RoundRobin,
            max_in_flight: 64,
            idle_timeout: None,
            name: "pool".to_string(),
            placement: None,
        }
    }
}

/// Where a task's answer goes.
pub(super) enum Reply {
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
    sender: WorkerSender,
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

pub(super) struct PoolState {
    host: Host,
    component: Component,
    pub(super) config: PoolConfig,
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
    pub(super) handle: Arc<PoolHandle>,
}

pub(super) struct PoolHandle {
    pub(super) pool: Arc<PoolState>,
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
        let pool = Arc::new(PoolState {
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
        let dispatcher_pool = pool.clone();
        let dispatcher = std::thread::Builder::new()
            .name(format!("{} dispatcher", pool.config.name))
            .spawn(move || dispatcher_pool.dispatch(receiver))?;
        Ok(Pool { handle: Arc::new(PoolHandle { pool, dispatcher: Mutex::new(Some(dispatcher)) }) })
    }

    /// How many workers the pool has room for.
    pub fn size(&self) -> usize {
        self.handle.pool.lock().slots.len()
    }

    /// How many of its workers are running now.
    pub fn running_workers(&self) -> usize {
        self.handle.pool.lock().slots.iter().filter(|s| s.worker.is_some()).count()
    }

    /// Watches the number of running workers: it changes as workers start on demand, end,
    /// or are terminated when idle.
    pub fn watch_running_workers(&self) -> tokio::sync::watch::Receiver<usize> {
        self.handle.pool.running.subscribe()
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
            .and_then(|input| self.handle.pool.submit(input, Reply::Once(tx), self.handle.pool.config.schedule));
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
            let capacity = self.handle.pool.capacity.notified();
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
                match self.handle.pool.submit(input.clone(), Reply::Indexed(tx.clone(), index), Schedule::LeastLoaded) {
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
        self.handle.pool.terminate();
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool").field("name", &self.handle.pool.config.name).field("size", &self.size()).finish()
    }
}

impl Drop for PoolHandle {
    fn drop(&mut self) {
        self.pool.terminate();
        let _ = self.pool.events.send(Event::Shutdown);
        if let Some(dispatcher) = self.dispatcher.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = dispatcher.join();
        }
    }
}

impl PoolState {
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
    pub(super) fn submit(&self, input: Value, reply: Reply, schedule: Schedule) -> Result<(), TaskError> {
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
            let sink: EventSink = Box::new(move |event| {
                events.send(Event::Worker { slot, generation, event }).map_err(|refused| match refused.0 {
                    Event::Worker { event, .. } => (DropReason::ReceiverGone, event),
                    _ => unreachable!("a worker event comes back as it went"),
                })
            });
            let options = WorkerOptions {
                placement: self.config.placement.clone(),
                ..WorkerOptions::named(format!("{}-{slot}", self.config.name))
            };
            let services = self.host.services();
            let message_size = options.limits.or(services.default_limits).queue().message_size;
            let inbox = HostInbox { sink, message_size };
            let Started { sender, control, .. } =
                worker::spawn_anywhere(services, &self.component, options, ParentLink::Host(inbox))
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
        let _ = worker.sender.send_beyond_limits(message);
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
