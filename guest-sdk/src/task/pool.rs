//! Pools of task workers in this worker (nested workers): [`Pool`], [`PoolOptions`].

#[allow(unused_imports)]
use super::*;

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

pub(crate) type Reply<W> = Box<dyn FnOnce(&mut W, Result<Value, TaskError>)>;

pub(crate) struct Slot<W> {
    pub(crate) child: Option<Child<W>>,
    /// Tasks sent and not answered, oldest first (a worker answers in order).
    pub(crate) in_flight: VecDeque<u64>,
    pub(crate) idle_timer: Option<u32>,
}

pub(crate) struct PoolState<W> {
    pub(crate) location: String,
    pub(crate) name: String,
    pub(crate) options: PoolOptions,
    pub(crate) slots: Vec<Slot<W>>,
    pub(crate) next_slot: usize,
    pub(crate) next_task: u64,
    /// Requests by task id: the input (to send again if its worker dies before it ran) and
    /// where the answer goes.
    pub(crate) pending: HashMap<u64, (Value, Reply<W>)>,
}

/// A pool of task workers of one component, in this worker (nested workers).
///
/// Cheap to clone; clones share the pool. Answers arrive as callbacks on the owning worker
/// `W`. A worker that fails is replaced on demand: the task it was running fails with the
/// worker's error, and the tasks queued behind it are sent to the new worker.
pub struct Pool<W> {
    pub(crate) state: Rc<RefCell<PoolState<W>>>,
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
pub(crate) type MapDone<W, O> = Box<dyn FnOnce(&mut W, Vec<Result<O, TaskError>>)>;

pub(crate) struct ParMap<W, O> {
    pub(crate) queue: VecDeque<(usize, Value)>,
    pub(crate) results: Vec<Option<Result<O, TaskError>>>,
    pub(crate) remaining: usize,
    pub(crate) done: Option<MapDone<W, O>>,
}

/// Hands the next input of `map` to a worker with room, if any.
pub(crate) fn feed<W: Worker, O: DeserializeOwned + 'static>(pool: &Pool<W>, map: &Rc<RefCell<ParMap<W, O>>>) {
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
