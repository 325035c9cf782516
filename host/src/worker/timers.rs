//! Timers (`setTimeout`, `setInterval`) as event-loop tasks.
//!
//! One timer thread per host keeps every pending timer in a heap ordered by due time, then by
//! the order the timers were set. When a timer is due, the thread queues a
//! [`LoopTask::Timeout`] at its worker; the worker runs it like any other task. A pending timer
//! holds a [`WorkerSender`], so a worker waiting for a timer is not idle; clearing the timer
//! drops it at once. A worker that has closed or been terminated discards the task, so its
//! timers never fire.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::event_loop::{LoopTask, WorkerSender};

/// Cleared entries the heap may hold before they are swept out.
const MIN_SWEEP: usize = 1024;

/// The host's timer service.
pub(crate) struct Timers {
    shared: Arc<TimerQueue>,
}

struct TimerQueue {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    /// Due times; an entry whose key is no longer in `timers` was cleared.
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    timers: HashMap<u64, Timer>,
    /// Entries of `heap` whose timer was cleared: past half the heap they are swept out, so
    /// that setting and clearing timers in a loop does not grow the heap.
    stale: usize,
    next_key: u64,
    thread_started: bool,
    shutdown: bool,
}

struct Timer {
    worker: WorkerSender,
    id: u32,
    interval: Option<Duration>,
    /// When it is (or was last) due.
    due: Instant,
}

/// A timer's key in the service, for [`Timers::clear`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TimerKey(u64);

impl Timers {
    pub(crate) fn new() -> Self {
        Timers { shared: Arc::new(TimerQueue { state: Mutex::new(State::default()), wake: Condvar::new() }) }
    }

    /// Queues `LoopTask::Timeout { id }` at `worker` after `delay`, then every `interval` if set.
    pub(crate) fn set(&self, worker: WorkerSender, id: u32, delay: Duration, interval: Option<Duration>) -> TimerKey {
        // An interval of 0 would spin the timer thread; the chapter clamps too.
        let interval = interval.map(|i| i.max(Duration::from_millis(1)));
        let due = Instant::now() + delay;
        let mut state = self.shared.lock();
        let key = state.next_key;
        state.next_key += 1;
        state.timers.insert(key, Timer { worker, id, interval, due });
        let earliest = state.heap.peek().is_none_or(|Reverse((first, _))| due < *first);
        state.heap.push(Reverse((due, key)));
        if !state.thread_started {
            state.thread_started = true;
            let shared = self.shared.clone();
            let started = std::thread::Builder::new().name("wasm-workers timers".into()).spawn(move || shared.run());
            if let Err(error) = started {
                // Without the thread no timer fires; say so rather than fail the guest, and
                // let the timer go so that it does not keep its worker waiting forever.
                tracing::error!("cannot start the timer thread: {error}");
                state.thread_started = false;
                let timer = state.timers.remove(&key);
                drop(state);
                drop(timer);
                return TimerKey(key);
            }
        } else if earliest {
            self.shared.wake.notify_one();
        }
        TimerKey(key)
    }

    /// Arms an interval again after its worker ran its tick: the next tick is one interval
    /// after the last due time, or now if that has passed. Unknown keys are ignored.
    pub(crate) fn rearm(&self, key: TimerKey) {
        let mut state = self.shared.lock();
        let Some(timer) = state.timers.get_mut(&key.0) else {
            return;
        };
        let Some(interval) = timer.interval else {
            return;
        };
        let next = (timer.due + interval).max(Instant::now());
        timer.due = next;
        let earliest = state.heap.peek().is_none_or(|Reverse((first, _))| next < *first);
        state.heap.push(Reverse((next, key.0)));
        if earliest {
            self.shared.wake.notify_one();
        }
    }

    /// Cancels a timer; it releases its worker at once. Unknown keys are ignored.
    pub(crate) fn clear(&self, key: TimerKey) {
        let mut state = self.shared.lock();
        let removed = state.timers.remove(&key.0);
        if removed.is_some() {
            state.stale += 1;
            if state.stale > MIN_SWEEP && state.stale > state.heap.len() / 2 {
                let State { heap, timers, stale, .. } = &mut *state;
                heap.retain(|Reverse((_, key))| timers.contains_key(key));
                *stale = 0;
            }
        }
        drop(state);
        drop(removed);
    }

    /// Sets one-shot timers due at the given instants and clears those whose ids are in
    /// `cleared`, all in one step (for tests: the timer thread sees the result at once,
    /// however it is scheduled; a cleared timer leaves its entry in the heap, as `clear` does).
    #[cfg(test)]
    fn set_all_due(&self, timers: Vec<(WorkerSender, u32, Instant)>, cleared: &[u32]) {
        let mut state = self.shared.lock();
        let mut gone = Vec::new();
        for (worker, id, due) in timers {
            let key = state.next_key;
            state.next_key += 1;
            state.heap.push(Reverse((due, key)));
            let timer = Timer { worker, id, interval: None, due };
            if cleared.contains(&id) {
                state.stale += 1;
                gone.push(timer);
            } else {
                state.timers.insert(key, timer);
            }
        }
        drop(state);
        drop(gone);
        self.shared.wake.notify_one();
    }

    /// Entries in the heap now, cleared ones included (for tests).
    #[cfg(test)]
    fn heap_len(&self) -> usize {
        self.shared.lock().heap.len()
    }
}

impl Drop for Timers {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.shutdown = true;
        state.timers.clear();
        self.shared.wake.notify_one();
    }
}

impl TimerQueue {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The timer thread: waits for the earliest due time, fires what is due.
    fn run(&self) {
        let mut state = self.lock();
        loop {
            if state.shutdown {
                return;
            }
            let Some(&Reverse((due, key))) = state.heap.peek() else {
                state = self.wake.wait(state).unwrap_or_else(|p| p.into_inner());
                continue;
            };
            if !state.timers.contains_key(&key) {
                state.heap.pop();
                state.stale = state.stale.saturating_sub(1);
                continue;
            }
            let now = Instant::now();
            if due > now {
                state = self.wake.wait_timeout(state, due - now).unwrap_or_else(|p| p.into_inner()).0;
                continue;
            }
            state.heap.pop();
            let timer = state.timers.get(&key).expect("checked above");
            let sent = timer.worker.send(LoopTask::Timeout { id: timer.id }).is_ok();
            match timer.interval {
                // An interval waits for its worker to run the tick, which re-arms it.
                Some(_) if sent => {}
                _ => {
                    let fired = state.timers.remove(&key);
                    drop(state);
                    drop(fired);
                    state = self.lock();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event_loop::WorkerQueue;
    use crate::limits::QueueLimits;

    /// Timers fire in the order they are due, those due together in the order they were set,
    /// and a cleared one never: checked with due times in the past, so that nothing depends
    /// on how long the test takes.
    #[test]
    fn timers_fire_in_due_order_then_set_order_and_cleared_ones_never() {
        let timers = Timers::new();
        let (queue, _sender) =
            WorkerQueue::new(None, Default::default(), crate::event_loop::Patience::BLOCK, QueueLimits::NONE);
        let base = Instant::now().checked_sub(Duration::from_secs(1)).unwrap_or_else(Instant::now);
        let at = |ms| base + Duration::from_millis(ms);
        // Starts the timer thread, which waits for this one (an hour away) meanwhile.
        let far = timers.set(queue.timer_sender(), 0, Duration::from_secs(3600), None);
        timers.set_all_due(
            vec![
                (queue.timer_sender(), 1, at(3)),
                (queue.timer_sender(), 2, at(1)),
                (queue.timer_sender(), 3, at(2)),
                (queue.timer_sender(), 4, at(2)),
                (queue.timer_sender(), 5, at(2)),
            ],
            &[4],
        );
        timers.clear(far);
        let mut fired = Vec::new();
        let mut batch = std::collections::VecDeque::new();
        while fired.len() < 4 {
            assert!(matches!(queue.next(&mut batch), crate::event_loop::Next::Tasks));
            for task in batch.drain(..) {
                match task {
                    LoopTask::Timeout { id } => fired.push(id),
                    _ => panic!("only timers were set"),
                }
            }
        }
        assert_eq!(fired, [2, 3, 5, 1]);
    }

    #[test]
    fn cleared_timers_do_not_stay_in_the_heap() {
        let timers = Timers::new();
        let (queue, _sender) =
            WorkerQueue::new(None, Default::default(), crate::event_loop::Patience::BLOCK, QueueLimits::NONE);
        for id in 0..100_000 {
            let key = timers.set(queue.timer_sender(), id, Duration::from_secs(3600), None);
            timers.clear(key);
        }
        assert!(timers.heap_len() <= 2 * MIN_SWEEP, "{} entries left in the heap", timers.heap_len());
    }
}
