//! Typed tasks ("worker functions"), streams, and pools of task workers.
//!
//! The protocol, in JSON so that every host and language can speak it:
//! - a task: `{"task": id, "input": I}`, answered `{"task": id, "output": O}` or
//!   `{"task": id, "error": "why"}`;
//! - a stream: `{"stream": label}` with one port; on the port, `{"item": T}` messages, and
//!   `{"end": true}` (or closing the port) from either side ends it.
//!
//! A worker serves tasks by implementing [`TaskWorker`] and exporting it with
//! [`export_task_worker!`](crate::export_task_worker). A caller runs tasks on a [`Pool`] of
//! such workers: one at a time with [`Pool::run`], or over a whole collection with
//! [`Pool::par_map`], which keeps results in input order and hands out work on demand.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::rc::Rc;
use wasm_workers_protocol::task as protocol;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::{
    clear_timer, hardware_concurrency, post, set_timeout, Child, ErrorEvent, MessageChannel, Port, Received, Transfer,
    Worker,
};

/// A worker that serves typed tasks, and optionally streams.
pub trait TaskWorker: Default + 'static {
    /// What a task gets.
    type Input: DeserializeOwned;
    /// What a task gives back.
    type Output: Serialize;

    /// Runs one task. An `Err` fails this task only; a panic fails the worker, and with it
    /// every task it had not answered yet.
    ///
    /// # Errors
    ///
    /// Whatever the task reports as its failure.
    fn run(&mut self, input: Self::Input) -> Result<Self::Output, String>;

    /// A caller opened a stream (`label` is the caller's). By default it is refused: ended at
    /// once.
    fn on_stream(&mut self, label: String, stream: Stream) {
        let _ = label;
        stream.end();
    }
}

/// The [`Worker`] that serves a [`TaskWorker`]'s tasks; made by
/// [`export_task_worker!`](crate::export_task_worker).
#[derive(Default)]
pub struct Served<T>(pub T);

impl<T: TaskWorker> Worker for Served<T> {
    type Message = Received<Value>;

    fn on_message(&mut self, message: Received<Value>) {
        let Received { data, mut ports, .. } = message;
        let (id, input) = match protocol::request(&data) {
            protocol::Incoming::OpenStream(label) => {
                match ports.pop() {
                    Some(port) => self.0.on_stream(label.to_string(), Stream::new(port)),
                    None => eprintln!("a stream request came without its port"),
                }
                return;
            }
            protocol::Incoming::Request { task, input } => (task, input),
            protocol::Incoming::Other => {
                eprintln!("not a task request: {data}");
                return;
            }
        };
        match input.cloned().map(serde_json::from_value::<T::Input>) {
            Some(Ok(input)) => match self.0.run(input) {
                Ok(output) => post(&protocol::Output { task: id, output }),
                Err(error) => post(&protocol::Failure { task: id, error }),
            },
            Some(Err(error)) => post(&protocol::Failure { task: id, error: format!("{}{error}", protocol::BAD_INPUT) }),
            None => post(&protocol::Failure { task: id, error: protocol::NO_INPUT }),
        }
    }
}

/// Makes `$task` (a type implementing [`TaskWorker`]) this component's task worker.
#[macro_export]
macro_rules! export_task_worker {
    ($task:ty) => {
        $crate::export_worker!($crate::task::Served<$task>);
    };
}

/// Why a task has no result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskError {
    /// The task itself reported a failure.
    Failed(String),
    /// The worker running it failed (trapped, panicked); the message is the worker's error.
    WorkerFailed(String),
    /// Every worker has as many tasks as the pool's limit allows.
    Full,
    /// The answer does not decode as the expected output.
    Decode(String),
    /// The pool could not start a worker.
    Spawn(String),
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Failed(why) => write!(f, "{}{why}", protocol::TASK_FAILED),
            TaskError::WorkerFailed(why) => write!(f, "{}{why}", protocol::WORKER_FAILED),
            TaskError::Full => f.write_str("every worker of the pool has as many tasks as it may take"),
            TaskError::Decode(why) => write!(f, "the task's answer does not decode: {why}"),
            TaskError::Spawn(why) => write!(f, "cannot start a worker: {why}"),
        }
    }
}

impl std::error::Error for TaskError {}

/// One end of a typed two-way stream over a port (a "reactor" bridge).
#[derive(Clone, Debug)]
pub struct Stream {
    port: Port,
}

impl Stream {
    fn new(port: Port) -> Self {
        Stream { port }
    }

    /// Opens a stream to `worker`: sends it one end of a new channel with
    /// `{"stream": label}` and returns the other end.
    ///
    /// # Errors
    ///
    /// If the request cannot be posted.
    pub fn open<W: Worker>(worker: &Child<W>, label: &str) -> Result<Stream, crate::PostError> {
        let channel = MessageChannel::new();
        worker.post_with(&protocol::OpenStream { stream: label }, Transfer::new().port(&channel.port2))?;
        Ok(Stream::new(channel.port1))
    }

    /// Sends one item.
    ///
    /// # Errors
    ///
    /// If the stream has ended on this side (its port is gone).
    pub fn send<T: Serialize>(&self, item: &T) -> Result<(), crate::PostError> {
        self.port.post(&protocol::Item { item })
    }

    /// Calls `on_item` with each item the other side sends, and `on_end` once, when the other
    /// side ends the stream (or goes away).
    pub fn on_items<W: Worker, T: DeserializeOwned + 'static>(
        &self,
        mut on_item: impl FnMut(&mut W, T) + 'static,
        on_end: impl FnOnce(&mut W) + 'static,
    ) {
        let on_end = Rc::new(RefCell::new(Some(on_end)));
        let end_on_message = on_end.clone();
        let port = self.port.clone();
        self.port
            .on_message(move |worker: &mut W, message: Value| match protocol::stream_message(&message) {
                protocol::StreamMessage::End => {
                    if let Some(end) = end_on_message.borrow_mut().take() {
                        end(worker);
                    }
                    port.close();
                }
                protocol::StreamMessage::Item(item) => match serde_json::from_value(item.clone()) {
                    Ok(item) => on_item(worker, item),
                    Err(error) => eprintln!("a stream item does not decode: {error}"),
                },
                protocol::StreamMessage::Other => {}
            })
            .on_close(move |worker: &mut W| {
                if let Some(end) = on_end.borrow_mut().take() {
                    end(worker);
                }
            });
    }

    /// Ends the stream from this side: the other side sees the end.
    pub fn end(&self) {
        let _ = self.port.post(&protocol::END);
        self.port.close();
    }
}

/// How a [`Pool`] picks a worker for a task (shared with the host's pools).
pub use wasm_workers_protocol::task::Schedule;

/// How a [`Pool`] behaves.
#[derive(Clone, Debug)]
pub struct PoolOptions {
    /// How many workers; `hardware_concurrency()` if `None`.
    pub size: Option<usize>,
    /// How a task's worker is picked by `run`. `par_map` always picks the least loaded
    /// worker, so that each answer brings the next input to the worker that gave it.
    pub schedule: Schedule,
    /// Tasks in flight per worker before it counts as full.
    pub max_in_flight: usize,
    /// A worker with nothing to do for this long is terminated (and started again on demand).
    pub idle_timeout_ms: Option<u32>,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions { size: None, schedule: Schedule::RoundRobin, max_in_flight: 16, idle_timeout_ms: None }
    }
}

type Reply<W> = Box<dyn FnOnce(&mut W, Result<Value, TaskError>)>;

struct Slot<W> {
    child: Option<Child<W>>,
    /// Tasks sent and not answered, oldest first (a worker answers in order).
    in_flight: VecDeque<u64>,
    idle_timer: Option<u32>,
}

struct PoolState<W> {
    location: String,
    name: String,
    options: PoolOptions,
    slots: Vec<Slot<W>>,
    next_slot: usize,
    next_task: u64,
    /// Requests by task id: the input (to send again if its worker dies before it ran) and
    /// where the answer goes.
    pending: HashMap<u64, (Value, Reply<W>)>,
}

/// A pool of task workers of one component, in this worker (nested workers).
///
/// Cheap to clone; clones share the pool. Answers arrive as callbacks on the owning worker
/// `W`. A worker that fails is replaced on demand: the task it was running fails with the
/// worker's error, and the tasks queued behind it are sent to the new worker.
pub struct Pool<W> {
    state: Rc<RefCell<PoolState<W>>>,
}

impl<W> Clone for Pool<W> {
    fn clone(&self) -> Self {
        Pool { state: self.state.clone() }
    }
}

impl<W: Worker> Pool<W> {
    /// A pool of workers running the component at `location` (relative to this worker's),
    /// named `name-0`, `name-1`, ... Workers start on demand.
    pub fn new(location: &str, name: &str, options: PoolOptions) -> Self {
        let size = options.size.unwrap_or(hardware_concurrency() as usize).max(1);
        let slots = (0..size).map(|_| Slot { child: None, in_flight: VecDeque::new(), idle_timer: None }).collect();
        let state = PoolState {
            location: location.to_string(),
            name: name.to_string(),
            options,
            slots,
            next_slot: 0,
            next_task: 0,
            pending: HashMap::new(),
        };
        Pool { state: Rc::new(RefCell::new(state)) }
    }

    /// How many workers the pool has room for.
    pub fn size(&self) -> usize {
        self.state.borrow().slots.len()
    }

    /// Runs one task; `done` gets its result (or [`TaskError::Full`] at once, as a callback
    /// on the next event, if every worker is at its limit).
    pub fn run<I: Serialize, O: DeserializeOwned + 'static>(
        &self,
        input: &I,
        done: impl FnOnce(&mut W, Result<O, TaskError>) + 'static,
    ) {
        let input = serde_json::to_value(input).expect("a task input encodes as JSON");
        let reply: Reply<W> = Box::new(move |worker, result| {
            done(worker, result.and_then(|v| serde_json::from_value(v).map_err(|e| TaskError::Decode(e.to_string()))))
        });
        let slot = self.pick();
        match slot {
            Some(slot) => self.send(slot, input, reply),
            None => {
                // Answered on a later event, like every other answer.
                let mut reply = Some(reply);
                set_timeout(0, move |worker: &mut W| {
                    if let Some(reply) = reply.take() {
                        reply(worker, Err(TaskError::Full));
                    }
                });
            }
        }
    }

    /// Runs a task for each input, handing each worker a new input when it answers one (so
    /// that uneven work spreads evenly), and gives `done` every result in input order.
    pub fn par_map<I: Serialize, O: DeserializeOwned + 'static>(
        &self,
        inputs: Vec<I>,
        done: impl FnOnce(&mut W, Vec<Result<O, TaskError>>) + 'static,
    ) {
        let total = inputs.len();
        let queue: VecDeque<(usize, Value)> = inputs
            .iter()
            .enumerate()
            .map(|(i, input)| (i, serde_json::to_value(input).expect("a task input encodes as JSON")))
            .collect();
        let map = Rc::new(RefCell::new(ParMap::<W, O> {
            queue,
            results: (0..total).map(|_| None).collect(),
            remaining: total,
            done: Some(Box::new(done)),
        }));
        if total == 0 {
            set_timeout(0, move |worker: &mut W| {
                let done = map.borrow_mut().done.take();
                if let Some(done) = done {
                    done(worker, Vec::new());
                }
            });
            return;
        }
        // Two inputs per worker to start with, so that a worker has its next input while its
        // answer travels; each answer brings one more.
        for _ in 0..2 * self.size() {
            feed(self, &map);
        }
    }

    /// Picks a worker with room, by the pool's schedule.
    fn pick(&self) -> Option<usize> {
        let schedule = self.state.borrow().options.schedule;
        self.pick_by(schedule)
    }

    /// Picks a worker with room, by `schedule`.
    fn pick_by(&self, schedule: Schedule) -> Option<usize> {
        let mut state = self.state.borrow_mut();
        let size = state.slots.len();
        let limit = state.options.max_in_flight;
        let chosen = match schedule {
            Schedule::RoundRobin => {
                (0..size).map(|k| (state.next_slot + k) % size).find(|&i| state.slots[i].in_flight.len() < limit)
            }
            Schedule::LeastLoaded => (0..size)
                .filter(|&i| state.slots[i].in_flight.len() < limit)
                .min_by_key(|&i| state.slots[i].in_flight.len()),
        };
        if let Some(i) = chosen {
            state.next_slot = (i + 1) % size;
        }
        chosen
    }

    /// Sends a task to the worker of `slot`, starting it if needed.
    fn send(&self, slot: usize, input: Value, reply: Reply<W>) {
        let id = {
            let mut state = self.state.borrow_mut();
            state.next_task += 1;
            state.next_task
        };
        self.state.borrow_mut().pending.insert(id, (input.clone(), reply));
        self.dispatch(slot, id, input);
    }

    fn dispatch(&self, slot: usize, id: u64, input: Value) {
        if let Err(error) = self.ensure_worker(slot) {
            let reply = self.state.borrow_mut().pending.remove(&id).map(|(_, reply)| reply);
            if let Some(reply) = reply {
                let mut reply = Some(reply);
                set_timeout(0, move |worker: &mut W| {
                    if let Some(reply) = reply.take() {
                        reply(worker, Err(TaskError::Spawn(error.clone())));
                    }
                });
            }
            return;
        }
        let mut state = self.state.borrow_mut();
        let slot_state = &mut state.slots[slot];
        if let Some(timer) = slot_state.idle_timer.take() {
            clear_timer(timer);
        }
        slot_state.in_flight.push_back(id);
        if let Some(child) = &slot_state.child {
            child.post(&protocol::Request { task: id, input });
        }
    }

    fn ensure_worker(&self, slot: usize) -> Result<(), String> {
        if self.state.borrow().slots[slot].child.is_some() {
            return Ok(());
        }
        let (location, name) = {
            let state = self.state.borrow();
            (state.location.clone(), format!("{}-{slot}", state.name))
        };
        let on_answer = self.clone();
        let on_failure = self.clone();
        let child = Child::<W>::spawn(&location, Some(&name))?
            .on_message(move |worker: &mut W, answer: Value| on_answer.answered(worker, slot, answer))
            .on_error(move |worker: &mut W, error: ErrorEvent| on_failure.failed(worker, slot, error));
        self.state.borrow_mut().slots[slot].child = Some(child);
        Ok(())
    }

    fn answered(&self, worker: &mut W, slot: usize, answer: Value) {
        let Some((id, said)) = protocol::answer(&answer) else { return };
        let reply = {
            let mut state = self.state.borrow_mut();
            state.slots[slot].in_flight.retain(|&t| t != id);
            state.pending.remove(&id).map(|(_, reply)| reply)
        };
        self.arm_idle_timer(slot);
        let result = match said {
            protocol::Answer::Output(output) => Ok(output.clone()),
            protocol::Answer::Failure(error) => Err(TaskError::Failed(error)),
            protocol::Answer::Malformed => Err(TaskError::Decode(format!("not a task answer: {answer}"))),
        };
        if let Some(reply) = reply {
            reply(worker, result);
        }
    }

    /// The worker of `slot` failed: the task it was running fails with the cause, the ones
    /// queued behind it go to a fresh worker.
    fn failed(&self, worker: &mut W, slot: usize, error: ErrorEvent) {
        let (culprit, requeue) = {
            let mut state = self.state.borrow_mut();
            let slot_state = &mut state.slots[slot];
            slot_state.child = None;
            if let Some(timer) = slot_state.idle_timer.take() {
                clear_timer(timer);
            }
            let mut in_flight = std::mem::take(&mut slot_state.in_flight);
            let culprit = in_flight.pop_front().and_then(|id| state.pending.remove(&id).map(|(_, reply)| reply));
            let requeue: Vec<(u64, Value)> = in_flight
                .into_iter()
                .filter_map(|id| state.pending.get(&id).map(|(input, _)| (id, input.clone())))
                .collect();
            (culprit, requeue)
        };
        for (id, input) in requeue {
            self.dispatch(slot, id, input);
        }
        if let Some(reply) = culprit {
            reply(worker, Err(TaskError::WorkerFailed(error.message)));
        }
    }

    fn arm_idle_timer(&self, slot: usize) {
        let timeout = {
            let state = self.state.borrow();
            if !state.slots[slot].in_flight.is_empty() {
                return;
            }
            state.options.idle_timeout_ms
        };
        let Some(ms) = timeout else { return };
        let pool = self.clone();
        let timer = set_timeout(ms, move |_: &mut W| {
            let mut state = pool.state.borrow_mut();
            let slot_state = &mut state.slots[slot];
            slot_state.idle_timer = None;
            if slot_state.in_flight.is_empty() {
                if let Some(child) = slot_state.child.take() {
                    child.terminate();
                }
            }
        });
        self.state.borrow_mut().slots[slot].idle_timer = Some(timer);
    }

    /// Whether the worker of each slot is running now (it may have been terminated when idle).
    pub fn running(&self) -> Vec<bool> {
        self.state.borrow().slots.iter().map(|s| s.child.is_some()).collect()
    }
}

/// What `par_map` calls with every result, in input order.
type MapDone<W, O> = Box<dyn FnOnce(&mut W, Vec<Result<O, TaskError>>)>;

struct ParMap<W, O> {
    queue: VecDeque<(usize, Value)>,
    results: Vec<Option<Result<O, TaskError>>>,
    remaining: usize,
    done: Option<MapDone<W, O>>,
}

/// Hands the next input of `map` to a worker with room, if any.
fn feed<W: Worker, O: DeserializeOwned + 'static>(pool: &Pool<W>, map: &Rc<RefCell<ParMap<W, O>>>) {
    // The least loaded worker, whatever the pool's schedule: when an answer brings the next
    // input, that is the worker that answered (a round robin would queue it behind a slower
    // worker's task while the faster one runs dry).
    let Some(slot) = pool.pick_by(Schedule::LeastLoaded) else { return };
    let Some((index, input)) = map.borrow_mut().queue.pop_front() else { return };
    let next = pool.clone();
    let map_for_reply = map.clone();
    let reply: Reply<W> = Box::new(move |worker, result| {
        let result = result.and_then(|v| serde_json::from_value(v).map_err(|e| TaskError::Decode(e.to_string())));
        let finished = {
            let mut state = map_for_reply.borrow_mut();
            state.results[index] = Some(result);
            state.remaining -= 1;
            state.remaining == 0
        };
        if finished {
            let (done, results) = {
                let mut state = map_for_reply.borrow_mut();
                let results = state.results.drain(..).map(|r| r.expect("every result is in")).collect();
                (state.done.take(), results)
            };
            if let Some(done) = done {
                done(worker, results);
            }
        } else {
            feed(&next, &map_for_reply);
        }
    });
    pool.send(slot, input, reply);
}
