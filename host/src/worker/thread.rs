//! The body of a worker's thread: it instantiates the component under the worker's limits,
//! runs the event loop until the worker closes, is terminated, fails, or is idle for good,
//! then ends the worker and tells its parent how.
//!
//! A worker that has slept long enough with nothing to do gives its thread back
//! ([`Next::Dormant`]): everything it is ([`Running`]) waits in its queue, and its next task
//! resumes it on another thread, where the loop goes on as if it had never stopped.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Store, UpdateDeadline};

use crate::accounting::DropReason;
use crate::bindings;
use crate::burst::{self, Burst};
use crate::event_loop::{self, Dormant, LoopTask, Next, WorkerQueue};
use crate::messaging::{check_json, Codec, Message, Ready};
use crate::stats::thread_cpu_time;
use wasm_workers_protocol::{ErrorEvent, Source};

use super::component::Component;
use super::handle::CloseReason;
use super::parent::Exit;
use super::spawn::{thread_name, Finish, Stopped};
use super::state::WorkerState;

/// Notes the start of a task, for the CPU deadline.
fn start_task(store: &mut Store<WorkerState>) -> wasmtime::Result<()> {
    if store.data().limits.deadline.is_some() {
        store.data_mut().task_started = Some(thread_cpu_time());
    }
    Ok(())
}

/// The body of a worker's thread.
pub(super) fn run(component: Component, state: WorkerState, stopped: Stopped) {
    let cpu_since = thread_cpu_time();
    let queue = state.queue.clone();
    let finish = Finish(queue.clone());
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
        store.data().services().start_deadline_ticker();
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
                Ok(()) => {
                    let batch = VecDeque::new();
                    let burst = Burst::new();
                    let ends = (finish, stopped);
                    return Running { store, guest, queue, batch, burst, cpu_since, ends }.resume();
                }
                Err(error) => failure(&store, "trapped", &error),
            },
            Err(error) => failure(&store, "cannot start", &error),
        }
    };
    end(store, &queue, exit, cpu_since, (finish, stopped));
}

/// A started worker between two tasks: all that its thread holds for it, which moves to
/// another thread when it gives its own back.
struct Running {
    store: Store<WorkerState>,
    guest: bindings::Worker,
    queue: Arc<WorkerQueue>,
    /// Tasks taken from the queue and not yet run (empty whenever it waits).
    batch: VecDeque<LoopTask>,
    burst: Burst,
    /// The current thread's CPU time when the worker started or resumed on it.
    cpu_since: Duration,
    /// Dropped when the worker has ended, in this order.
    ends: (Finish, Stopped),
}

impl Running {
    /// Runs the event loop on the current thread until the worker ends, or gives the thread
    /// back (its next task resumes it on another).
    fn resume(mut self) {
        let queue = self.queue.clone();
        let exit = match event_loop(&mut self.store, &self.guest, &queue, &mut self.batch, &mut self.burst) {
            Paused::Ended(exit) => exit,
            Paused::Dormant(dormant) => {
                self.store.data().stats().ran(thread_cpu_time().saturating_sub(self.cpu_since));
                // Empty between tasks: what they hold is let go until the worker runs again.
                self.batch = VecDeque::new();
                self.burst = Burst::new();
                let threads = self.store.data().services().threads.clone();
                // Named as at spawn (a reused thread keeps, as far as the standard library
                // knows, the name it was created with, whatever it runs).
                let name = thread_name(&self.store.data().name, &self.store.data().location);
                dormant.suspend(Box::new(move || {
                    threads.resume(
                        name,
                        Box::new(move || {
                            self.cpu_since = thread_cpu_time();
                            self.resume();
                        }),
                    )
                }));
                return;
            }
        };
        end(self.store, &queue, exit, self.cpu_since, self.ends);
    }
}

/// Why the event loop stopped running tasks.
enum Paused<'q> {
    /// The worker is done.
    Ended(Exit),
    /// It may give its thread back.
    Dormant(Dormant<'q, LoopTask>),
}

/// Ends the worker whose loop has stopped with `exit`: discards what is still queued, records
/// the end, tells the parent.
fn end(store: Store<WorkerState>, queue: &WorkerQueue, exit: Exit, cpu_since: Duration, ends: (Finish, Stopped)) {
    let control = store.data().control.clone();
    store.data().stats().ran(thread_cpu_time().saturating_sub(cpu_since));
    let exit = match exit {
        Exit::Failed(_) if control.is_terminated() => Exit::Closed(CloseReason::Terminated),
        exit => exit,
    };
    let discarded = queue.close();
    let count = discarded.len();
    event_loop::discard(discarded, &store.data().services().ledger);
    let state = store.into_data();
    tracing::debug!(worker = %state.name, discarded = count, "worker ended");
    state.record_end(match &exit {
        Exit::Closed(CloseReason::Closed) => "closed".to_string(),
        Exit::Closed(CloseReason::Idle) => "idle".to_string(),
        Exit::Closed(CloseReason::Terminated) => "terminated".to_string(),
        Exit::Failed(error) => format!("failed: {}", error.message),
    });
    let services = state.services().clone();
    state.end(|parent| {
        // Counted out before the parent hears of it, so that the count is exact for anyone
        // who has received the last event.
        services.worker_stopped();
        parent.exit(exit, &services);
    });
    // `Finish` counts the worker out only now, after the last event is queued at the parent,
    // so that the parent cannot end idle before it has heard how this worker ended.
    drop(ends);
}

/// Runs tasks until the worker closes, is terminated, fails or is idle for good, or has slept
/// long enough to give its thread back.
fn event_loop<'q>(
    store: &mut Store<WorkerState>,
    guest: &bindings::Worker,
    queue: &'q WorkerQueue,
    batch: &mut VecDeque<LoopTask>,
    burst: &mut Burst,
) -> Paused<'q> {
    use Paused::Ended;
    loop {
        match queue.next(batch) {
            Next::Tasks => {}
            Next::Interrupted => return Ended(Exit::Closed(CloseReason::Terminated)),
            Next::Idle => return Ended(Exit::Closed(CloseReason::Idle)),
            Next::Dormant(dormant) => return Paused::Dormant(dormant),
        }
        while let Some(task) = batch.pop_front() {
            if store.data().control.is_terminated() {
                batch.push_front(task);
                discard(store, batch);
                return Ended(Exit::Closed(CloseReason::Terminated));
            }
            let _ = start_task(store);
            let result = match task {
                LoopTask::Message { source, message } => {
                    // The messages queued behind this one go in the same call; one at a time
                    // under a CPU deadline, which counts per event, as the chapter's tasks do.
                    let burst_max = if store.data().limits.deadline.is_some() { 1 } else { BURST };
                    // The senders wrote these bytes on other CPUs: ask for all of them at
                    // once, so that their cache misses overlap instead of each copy into the
                    // burst waiting for its own. The same pass counts them.
                    burst::prefetch(&message.data);
                    let mut more = 0;
                    for task in batch.iter().take(burst_max - 1) {
                        let LoopTask::Message { message, .. } = task else { break };
                        burst::prefetch(&message.data);
                        more += 1;
                    }
                    // Moved straight from the batch into the burst: a message is not copied
                    // on its way in between.
                    let rest = batch.drain(..more).map(|task| match task {
                        LoopTask::Message { source, message } => (source, message),
                        _ => unreachable!("the first `more` tasks are messages"),
                    });
                    deliver(store, guest, std::iter::once((source, message)).chain(rest), burst)
                }
                task => run_task(store, guest, task, burst),
            };
            if let Err(error) = result {
                discard(store, batch);
                return Ended(failure(store, "trapped", &error));
            }
            // `report-error` describes only a trap of the task that called it.
            store.data_mut().reported_error = None;
            if store.data().closing {
                // The closing flag: tasks still queued (here and in the queue) are discarded.
                discard(store, batch);
                return Ended(Exit::Closed(CloseReason::Closed));
            }
        }
    }
}

/// Settles the messages left in `batch` as discarded.
fn discard(store: &Store<WorkerState>, batch: &mut VecDeque<LoopTask>) {
    event_loop::discard(batch.drain(..), &store.data().services().ledger);
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
    task: LoopTask,
    burst: &mut Burst,
) -> wasmtime::Result<()> {
    let handlers = guest.wasm_workers_worker_handlers();
    match task {
        // A child this worker terminated delivers nothing more, even what was in flight.
        LoopTask::ChildError { child, .. } | LoopTask::ChildClosed { child }
            if store.data().terminated_child(child) =>
        {
            // It ended by itself before the terminate reached it.
            store.data_mut().forget_terminated_child(child);
            Ok(())
        }
        LoopTask::ChildTerminated { child } => {
            // The last thing the child's thread queued: its messages before it were dropped.
            store.data_mut().forget_terminated_child(child);
            Ok(())
        }
        LoopTask::Message { source, message } => deliver(store, guest, std::iter::once((source, message)), burst),
        LoopTask::ChildError { child, error } => {
            store.data_mut().forget_child(child);
            handlers.call_on_error(store, bindings::types::Source::Child(child), &(*error).into())
        }
        LoopTask::ChildClosed { child } => {
            store.data_mut().forget_child(child);
            handlers.call_on_close(store, bindings::types::Source::Child(child))
        }
        LoopTask::PortReady(port) => {
            // A bounded batch, then the port queues itself again: a peer that never stops
            // posting cannot keep the worker's other tasks waiting. One message per call:
            // the guest may transfer the port while handling any of them, and the messages
            // behind it must then travel with the port.
            let queue = store.data().queue.clone();
            for _ in 0..PORT_BATCH {
                match port.next_for(&*queue) {
                    Ready::Message(id, message) => {
                        start_task(store)?;
                        deliver(store, guest, std::iter::once((Source::Port(id), message)), burst)?;
                    }
                    Ready::Closed(id) => return handlers.call_on_close(store, bindings::types::Source::Port(id)),
                    Ready::Done => return Ok(()),
                }
                if store.data().closing || store.data().control.is_terminated() {
                    return Ok(());
                }
            }
            port.yield_to(&*queue);
            Ok(())
        }
        LoopTask::Connect(port) => {
            let port = store.data_mut().adopt_port(port)?;
            handlers.call_on_connect(store, port)
        }
        LoopTask::Timeout { id } => {
            if store.data_mut().timer_fired(id) {
                handlers.call_on_timeout(store, id)
            } else {
                // Cleared after it was queued.
                Ok(())
            }
        }
    }
}

/// Delivers `messages` in one `on-messages` call, assembled in `burst` (empty
/// before, and after unless lowering a transferred object fails, which fails the worker):
/// each as a `message` event, or a `messageerror` event if its JSON is
/// malformed. Messages from a child this worker has terminated are dropped (counted as
/// discarded), as are those the guest reports discarded.
fn deliver(
    store: &mut Store<WorkerState>,
    guest: &bindings::Worker,
    mut messages: impl Iterator<Item = (Source, Message)>,
    burst: &mut Burst,
) -> wasmtime::Result<()> {
    let ledger = store.data().services().ledger.clone();
    while let Some((source, mut message)) = messages.next() {
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
        let transferred = match store.data_mut().lower_transfer(&mut message, burst.transfer()) {
            Ok(transferred) => transferred,
            Err(error) => {
                // The worker fails: this message, those before it in the burst and those
                // behind it are discarded, and counted so.
                message.settle(&ledger, Some(DropReason::Discarded));
                event_loop::discard(
                    messages.by_ref().map(|(source, message)| LoopTask::Message { source, message }),
                    &ledger,
                );
                ledger.dropped(DropReason::Discarded, burst.counted_from(0));
                burst.clear();
                return Err(error);
            }
        };
        let counted = std::mem::take(&mut message.counted);
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
    store.data().stats().received(count, burst.data_len());
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
    let (mut message, lineno, colno) = match &state.reported_error {
        Some(reported) => (format!("{} ({cause})", reported.message), reported.lineno, reported.colno),
        None => (cause, 0, 0),
    };
    if let Some(limit) = state.memory_limit_hit() {
        message.push_str(&format!(" after reaching {limit}"));
    }
    if let Some(backtrace) = error.downcast_ref::<wasmtime::WasmBacktrace>() {
        tracing::debug!(worker = %state.name, "{message}\n{backtrace}");
    }
    Exit::Failed(ErrorEvent { message, worker: state.name.clone(), location: state.location.clone(), lineno, colno })
}
