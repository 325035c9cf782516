use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::accounting::DropReason;
use crate::limits::QueueLimits;

use super::Quiescence;

/// A receiver that found several tasks at once last time, and finds fewer than this now,
/// waits for more before it takes them, while they keep coming ([`GATHER_GAP`]), for up to
/// [`GATHER_FOR`] or this many more; only with a spin time (more than one CPU, by default),
/// and not while its queue is nearly full or a sender waits for room.
///
/// Without it, a receiver that just keeps pace with a sender takes a few tasks at a time, and
/// each burst pays a call into the guest (about a microsecond) for a handful of messages; the
/// two settle there, the receiver's every lock of the queue slowing the sender's posts, at a
/// third of the rate of a receiver that has fallen behind and takes full bursts.
const GATHER_BELOW: usize = 32;

/// See [`GATHER_BELOW`]: the longest a receiver waits for more, about what a guest call
/// costs, so that waiting at most doubles the time a small burst takes.
const GATHER_FOR: Duration = Duration::from_micros(2);

/// See [`GATHER_BELOW`]: a receiver stops waiting for more when nothing has come for this
/// long (a streaming sender posts every few hundred nanoseconds), so that a client with a few
/// requests in flight, which waits for their answers, loses no more than this.
const GATHER_GAP: Duration = Duration::from_nanos(500);

/// How a queue's receiver waits for its next task.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Patience {
    /// How long [`TaskQueue::next`] spins before it sleeps.
    pub(crate) spin: Duration,
    /// How long it sleeps before it offers to give its thread back ([`Next::Dormant`]);
    /// `None`: it sleeps until woken.
    pub(crate) dormant_after: Option<Duration>,
}

impl Patience {
    /// No spin, and sleep until woken.
    pub(crate) const BLOCK: Patience = Patience { spin: Duration::ZERO, dormant_after: None };
}

/// What a suspended receiver leaves with its queue: called once, by whoever next wakes it
/// (after the queue's lock is released), to have it run again on some thread.
pub(crate) type Resume = Box<dyn FnOnce() + Send>;

/// What [`TaskQueue::next`] found.
pub(crate) enum Next<'q, T> {
    /// Tasks to run, in order. The batch is taken from the queue in one step, so that a burst
    /// of messages costs one lock, not one per message.
    Tasks,
    /// The worker was terminated.
    Interrupted,
    /// The queue is empty and no sender is left: nothing can happen any more.
    Idle,
    /// Nothing came for the queue's [`Patience::dormant_after`]: the receiver may suspend
    /// itself ([`Dormant::suspend`]) and let its thread go. The queue stays locked until it
    /// does, so nothing can arrive in between.
    Dormant(Dormant<'q, T>),
}

/// A receiver that has waited long enough, holding its queue's lock (see [`Next::Dormant`]).
pub(crate) struct Dormant<'q, T> {
    state: MutexGuard<'q, QueueState<T>>,
}

impl<T> Dormant<'_, T> {
    /// Suspends the receiver: it no longer waits in [`TaskQueue::next`], and the first push,
    /// interrupt or end of its last sender that would have woken it calls `resume` instead.
    /// The receiver keeps its place in the host's accounting (busy or quiescent, active or
    /// not) exactly as if it still waited.
    pub(crate) fn suspend(mut self, resume: Resume) {
        // Empty while it waits: its allocation is let go with the thread.
        self.state.tasks = VecDeque::new();
        self.state.suspended = Some(resume);
    }
}

impl<T> Drop for Dormant<'_, T> {
    fn drop(&mut self) {
        if self.state.suspended.is_none() {
            // Not suspended after all: it waits no longer, and runs now (see `next`).
            self.state.waiting = false;
        }
    }
}

/// A worker's task queue: many senders, one receiver (the worker's thread).
///
/// Ordering: tasks pushed by one thread are taken in the order pushed. Blocking: only
/// [`TaskQueue::next`] blocks; pushing never does.
pub(crate) struct TaskQueue<T> {
    state: Mutex<QueueState<T>>,
    ready: Condvar,
    /// The parent worker's queue, which counts this worker while it is active. Lock order:
    /// this queue's lock may be held while taking the parent's, never the other way round.
    parent: Option<Arc<TaskQueue<T>>>,
    quiescence: Arc<Quiescence>,
    /// Bumped by every push and interrupt while the receiver spins
    /// ([`QueueState::spinning`]), so that it sees them without taking the lock. Not bumped
    /// otherwise: a locked increment per message is a measurable share of a post.
    pushes: AtomicUsize,
    /// How [`next`](Self::next) waits.
    patience: Patience,
    /// What the queue accepts.
    limits: QueueLimits,
    /// Notified when the receiver has taken its queued tasks (or the queue closed), if
    /// someone waits for room ([`QueueState::room_wanted`]).
    room: tokio::sync::Notify,
}

struct QueueState<T> {
    tasks: VecDeque<T>,
    /// Live [`TaskSender`]s that count as senders.
    senders: usize,
    /// Other reasons the worker may still get tasks: timers, entangled ports, active children.
    keepalive: usize,
    /// The worker is not quiescent, and so counts as a keepalive of its parent's queue.
    active: bool,
    /// Set once the loop has closed: pushes are discarded from then on.
    closed: bool,
    /// Messages in `tasks`, and their bytes.
    queued_messages: usize,
    queued_bytes: usize,
    /// Set by [`TaskQueue::interrupt`].
    interrupted: bool,
    /// The receiver's last [`TaskQueue::next`] found more than one task at once, without
    /// spinning or sleeping: a sender is ahead of it (see [`GATHER_BELOW`]).
    streaming: bool,
    /// The receiver is blocked in `next`, so a push must wake it.
    waiting: bool,
    /// The receiver spins in `next` watching `pushes`, so a push must bump it. Set and
    /// cleared under the lock, so a push sees it whenever the spin could miss the push.
    spinning: bool,
    /// Pending timers (counted in `keepalive` too).
    timers: usize,
    /// The worker is counted out of its host's busy workers (see [`Quiescence`]).
    quiet: bool,
    /// A sender waits for room in the queue ([`TaskQueue::wait_for_room`]).
    room_wanted: bool,
    /// The receiver suspended itself ([`Dormant::suspend`]); `waiting` stays set, and the
    /// wake that clears it calls this instead of notifying.
    suspended: Option<Resume>,
}

impl<T> TaskQueue<T> {
    /// A new queue and its first sender. With a `parent`, the new worker starts active,
    /// counted as a keepalive there; it starts busy in `quiescence`.
    pub(crate) fn new(
        parent: Option<Arc<TaskQueue<T>>>,
        quiescence: Arc<Quiescence>,
        patience: Patience,
        limits: QueueLimits,
    ) -> (Arc<TaskQueue<T>>, TaskSender<T>) {
        if let Some(parent) = &parent {
            parent.acquire_keepalive();
        }
        quiescence.enter();
        let queue = Arc::new(TaskQueue {
            state: Mutex::new(QueueState {
                tasks: VecDeque::new(),
                senders: 1,
                keepalive: 0,
                active: true,
                closed: false,
                queued_messages: 0,
                queued_bytes: 0,
                interrupted: false,
                streaming: false,
                waiting: false,
                spinning: false,
                timers: 0,
                quiet: false,
                room_wanted: false,
                suspended: None,
            }),
            ready: Condvar::new(),
            parent,
            quiescence,
            pushes: AtomicUsize::new(0),
            patience,
            limits,
            room: tokio::sync::Notify::new(),
        });
        let sender = TaskSender { queue: queue.clone(), keepalive: false };
        (queue, sender)
    }

    /// Marks the worker active (it has something to do), counting it at its parent.
    fn activate(&self, state: &mut QueueState<T>) {
        if !state.active {
            state.active = true;
            if let Some(parent) = &self.parent {
                parent.acquire_keepalive();
            }
        }
    }

    /// Marks the worker quiescent (or ended), releasing its count at its parent.
    fn deactivate(&self, state: &mut QueueState<T>) {
        if state.active {
            state.active = false;
            if let Some(parent) = &self.parent {
                parent.release_keepalive();
            }
        }
    }

    /// The worker's thread has finished, its last event sent: it no longer counts at its
    /// parent, nor as busy.
    pub(crate) fn finish(&self) {
        let mut state = self.lock();
        self.deactivate(&mut state);
        if !std::mem::replace(&mut state.quiet, true) {
            self.quiescence.leave();
        }
    }

    /// Marks the receiver to be woken if it waits, counting it busy again first: whatever
    /// woke it may make it run. Returns whether it must be notified, which the caller does
    /// with [`notify`](Self::notify) after unlocking: a receiver notified under the lock
    /// would wake only to block on it again (two more context switches per message when
    /// both threads share a CPU).
    #[must_use = "a receiver marked to be woken must be notified"]
    fn wake(&self, state: &mut QueueState<T>) -> bool {
        if std::mem::take(&mut state.quiet) {
            self.quiescence.enter();
        }
        // Clear the flag so that a burst of pushes wakes the receiver once.
        std::mem::take(&mut state.waiting)
    }

    /// Unlocks `state`, then notifies the receiver if `notify` says so: wakes it, or resumes
    /// it if it is suspended.
    fn unlock_and_notify(&self, mut state: MutexGuard<'_, QueueState<T>>, notify: bool) {
        let resume = if notify { state.suspended.take() } else { None };
        drop(state);
        match resume {
            Some(resume) => resume(),
            None if notify => self.ready.notify_one(),
            None => {}
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState<T>> {
        // A panic while the lock is held cannot leave the state inconsistent (every update is
        // a single assignment or a `VecDeque` operation), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A sender that counts as a keepalive, not a sender, for a pending timer.
    pub(crate) fn timer_sender(self: &Arc<Self>) -> TaskSender<T> {
        let mut state = self.lock();
        state.keepalive += 1;
        state.timers += 1;
        TaskSender { queue: self.clone(), keepalive: true }
    }

    /// Blocks until there are tasks, the worker is interrupted, or it is idle for good, and
    /// moves all queued tasks into `batch` (which must be empty); or, if the queue's
    /// [`Patience`] allows, until it has slept that long with nothing to do
    /// ([`Next::Dormant`]).
    ///
    /// Before it sleeps it spins for up to the queue's spin time, without the lock. With a
    /// spin time, a receiver whose last call found several tasks at once and that finds fewer
    /// than [`GATHER_BELOW`] first waits a little for more ([`TaskQueue::gather`]).
    pub(crate) fn next(&self, batch: &mut VecDeque<T>) -> Next<'_, T> {
        let mut state = self.lock();
        let mut spun = self.patience.spin.is_zero();
        // Cleared until this call finds its tasks at once again.
        let streaming = std::mem::take(&mut state.streaming);
        if !spun && streaming && self.may_gather(&state) {
            // A sender is streaming and only a few tasks are in: let more gather, without the
            // lock, so that one burst (one call into the guest) carries them.
            state = self.gather(state);
        }
        let mut at_once = true;
        loop {
            if state.interrupted {
                return Next::Interrupted;
            }
            if !state.tasks.is_empty() {
                // One task found at once is a conversation's next message, not a stream.
                state.streaming = at_once && state.tasks.len() > 1;
                std::mem::swap(&mut state.tasks, batch);
                state.queued_messages = 0;
                state.queued_bytes = 0;
                if std::mem::take(&mut state.room_wanted) {
                    drop(state);
                    self.room.notify_waiters();
                }
                return Next::Tasks;
            }
            if state.keepalive == 0 && state.senders == 0 {
                // Closed in the same step, so that no task can slip in after the decision.
                state.closed = true;
                return Next::Idle;
            }
            at_once = false;
            if !spun {
                spun = true;
                state.spinning = true;
                let seen = self.pushes.load(Ordering::Acquire);
                drop(state);
                let start = Instant::now();
                while self.pushes.load(Ordering::Acquire) == seen && start.elapsed() < self.patience.spin {
                    std::hint::spin_loop();
                }
                state = self.lock();
                state.spinning = false;
                continue;
            }
            if state.keepalive == 0 {
                // Quiescent: only the parent can wake this worker now.
                self.deactivate(&mut state);
            }
            if state.timers == 0 && !std::mem::replace(&mut state.quiet, true) {
                self.quiescence.leave();
            }
            state.waiting = true;
            state = match self.patience.dormant_after {
                None => self.ready.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner()),
                Some(after) => {
                    let (state, waited) =
                        self.ready.wait_timeout(state, after).unwrap_or_else(|poisoned| poisoned.into_inner());
                    // Still waiting means nobody woke it: nothing came, it is not interrupted,
                    // and it is not idle for good (each of those clears the flag).
                    if state.waiting && waited.timed_out() {
                        return Next::Dormant(Dormant { state });
                    }
                    state
                }
            };
            state.waiting = false;
            // Woken by whatever counted it busy again, or spuriously: either way it runs now.
            if std::mem::take(&mut state.quiet) {
                self.quiescence.enter();
            }
        }
    }

    /// Whether waiting for more tasks can only help: a few are in, fewer than
    /// [`GATHER_BELOW`]; no interrupt is pending; no sender waits for room, and the queue is
    /// not nearly full (more would be refused, not gathered).
    fn may_gather(&self, state: &QueueState<T>) -> bool {
        (1..GATHER_BELOW).contains(&state.tasks.len())
            && !state.interrupted
            && !state.room_wanted
            && state.queued_messages.saturating_add(GATHER_BELOW) <= self.limits.messages
    }

    /// Unlocks `state` and spins while tasks keep coming (each within [`GATHER_GAP`] of the
    /// last), for up to [`GATHER_FOR`] or until [`GATHER_BELOW`] more have come; then locks
    /// again.
    fn gather<'q>(&'q self, mut state: MutexGuard<'q, QueueState<T>>) -> MutexGuard<'q, QueueState<T>> {
        state.spinning = true;
        let mut seen = self.pushes.load(Ordering::Acquire);
        drop(state);
        let start = Instant::now();
        let (mut last, mut came) = (start, 0);
        loop {
            let now = Instant::now();
            if came >= GATHER_BELOW || now - start >= GATHER_FOR || now - last >= GATHER_GAP {
                break;
            }
            let pushes = self.pushes.load(Ordering::Acquire);
            if pushes != seen {
                came += pushes.wrapping_sub(seen);
                (seen, last) = (pushes, now);
            }
            std::hint::spin_loop();
        }
        let mut state = self.lock();
        state.spinning = false;
        state
    }

    /// Queues `task` without being a sender (for those who do not keep the worker alive:
    /// ports, the shared-worker registry). Returns it back if the queue is closed.
    pub(crate) fn push(&self, task: T) -> Result<(), T> {
        let state = self.lock();
        if state.closed {
            return Err(task);
        }
        self.enqueue(state, task);
        Ok(())
    }

    /// Queues `task`, a message of `len` bytes, within the queue's limits; without being a
    /// sender, like [`push`](Self::push). Returns it back with why if it is refused.
    pub(crate) fn push_message(&self, task: T, len: usize) -> Result<(), (DropReason, T)> {
        let mut state = self.lock();
        if state.closed {
            return Err((DropReason::ReceiverGone, task));
        }
        if let Some(refusal) = self.limits.check(state.queued_messages, state.queued_bytes, len) {
            return Err((refusal, task));
        }
        state.queued_messages += 1;
        state.queued_bytes += len;
        self.enqueue(state, task);
        Ok(())
    }

    /// Appends `task` to the open queue whose lock `state` is, activates the worker, and
    /// wakes it (after unlocking) if it waits.
    fn enqueue(&self, mut state: MutexGuard<'_, QueueState<T>>, task: T) {
        state.tasks.push_back(task);
        self.signal_spinner(&state);
        self.activate(&mut state);
        let notify = self.wake(&mut state);
        self.unlock_and_notify(state, notify);
    }

    /// Tells a receiver spinning in `next` that the state changed.
    fn signal_spinner(&self, state: &QueueState<T>) {
        if state.spinning {
            self.pushes.fetch_add(1, Ordering::Release);
        }
    }

    /// Counts one more reason for the worker to stay alive though no sender is left.
    pub(crate) fn acquire_keepalive(&self) {
        self.lock().keepalive += 1;
    }

    /// Releases a reason counted by [`acquire_keepalive`](Self::acquire_keepalive).
    pub(crate) fn release_keepalive(&self) {
        let mut state = self.lock();
        state.keepalive -= 1;
        let notify = state.keepalive == 0 && state.waiting && self.settle(&mut state);
        self.unlock_and_notify(state, notify);
    }

    /// The waiting receiver has lost its last keepalive: if it has no sender either it must
    /// wake to end idle; otherwise it is quiescent now, which is recorded here, without waking
    /// it (a wake-up per message would double the cost of a round trip). Returns whether the
    /// receiver must be notified.
    #[must_use = "a receiver marked to be woken must be notified"]
    fn settle(&self, state: &mut QueueState<T>) -> bool {
        if state.senders == 0 {
            self.wake(state)
        } else {
            self.deactivate(state);
            false
        }
    }

    /// Closes the queue: every later push is refused. Returns the tasks that were queued,
    /// for the caller to discard.
    pub(crate) fn close(&self) -> VecDeque<T> {
        let mut state = self.lock();
        state.closed = true;
        state.queued_messages = 0;
        state.queued_bytes = 0;
        let tasks = std::mem::take(&mut state.tasks);
        if std::mem::take(&mut state.room_wanted) {
            drop(state);
            self.room.notify_waiters();
        }
        tasks
    }

    /// Resolves once a message of `len` bytes would not be refused as "queue full": the
    /// receiver has taken what was queued, or the queue has closed (a post is then refused
    /// for that). It may resolve and the next post still find the queue full (another sender
    /// was faster): wait again.
    pub(crate) async fn wait_for_room(&self, len: usize) {
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = self.lock();
                if self.room_in(&state, len) {
                    return;
                }
                state.room_wanted = true;
            }
            notified.await;
        }
    }

    /// The largest message the queue accepts.
    pub(crate) fn message_size(&self) -> usize {
        self.limits.message_size
    }

    /// Whether a message of `len` bytes would not be refused as "queue full" now.
    pub(crate) fn has_room(&self, len: usize) -> bool {
        self.room_in(&self.lock(), len)
    }

    fn room_in(&self, state: &QueueState<T>, len: usize) -> bool {
        state.closed || self.limits.has_room(state.queued_messages, state.queued_bytes, len)
    }

    /// Wakes the receiver with [`Next::Interrupted`], now and at every later `next`.
    pub(crate) fn interrupt(&self) {
        let mut state = self.lock();
        state.interrupted = true;
        self.signal_spinner(&state);
        let notify = state.waiting && self.wake(&mut state);
        self.unlock_and_notify(state, notify);
    }
}

/// The right to post tasks to one worker. While one exists, the worker does not end idle;
/// it counts as a sender, or (for a timer) as a keepalive.
pub(crate) struct TaskSender<T> {
    queue: Arc<TaskQueue<T>>,
    keepalive: bool,
}

impl<T> TaskSender<T> {
    /// Queues `task`. Returns it back if the worker's loop has closed (the task is then
    /// discarded, as the chapter discards tasks of a closed event loop).
    pub(crate) fn send(&self, task: T) -> Result<(), T> {
        self.queue.push(task)
    }

    /// The queue this sender posts to.
    pub(crate) fn queue(&self) -> &Arc<TaskQueue<T>> {
        &self.queue
    }
}

impl<T> Drop for TaskSender<T> {
    fn drop(&mut self) {
        let mut state = self.queue.lock();
        let mut notify = false;
        if self.keepalive {
            state.timers -= 1;
            state.keepalive -= 1;
            if state.keepalive == 0 && state.waiting {
                notify = self.queue.settle(&mut state);
                if !state.quiet && state.waiting {
                    // No timer left: it waits for nothing that can come by itself.
                    state.quiet = true;
                    self.queue.quiescence.leave();
                }
            } else if state.timers == 0 && state.waiting && !state.quiet {
                // It went to wait while this timer was pending, so it stayed counted busy:
                // with no timer left it waits for nothing that can come by itself.
                state.quiet = true;
                self.queue.quiescence.leave();
            }
        } else {
            state.senders -= 1;
            notify = state.senders == 0 && state.keepalive == 0 && state.waiting && self.queue.wake(&mut state);
        }
        self.queue.unlock_and_notify(state, notify);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Queue = TaskQueue<u8>;

    fn message(n: u8) -> u8 {
        n
    }

    #[test]
    fn tasks_arrive_in_order_in_one_batch() {
        let (queue, sender) = Queue::new(None, Default::default(), Patience::BLOCK, QueueLimits::NONE);
        for n in 0..3 {
            assert!(sender.send(message(n)).is_ok());
        }
        let mut batch = VecDeque::new();
        assert!(matches!(queue.next(&mut batch), Next::Tasks));
        let got: Vec<u8> = batch.drain(..).collect();
        assert_eq!(got, [0, 1, 2]);
    }

    #[test]
    fn a_receiver_that_gathers_takes_every_task_in_order_and_sees_an_interrupt() {
        let patience = Patience { spin: Duration::from_millis(1), dormant_after: None };
        let (queue, sender) = Queue::new(None, Default::default(), patience, QueueLimits::NONE);
        let mut batch = VecDeque::new();
        // Several tasks found at once: the receiver counts its sender as streaming.
        for n in 0..3 {
            assert!(sender.send(message(n)).is_ok());
        }
        assert!(matches!(queue.next(&mut batch), Next::Tasks));
        assert_eq!(batch.drain(..).collect::<Vec<_>>(), [0, 1, 2]);
        // A few more, and another thread posting while the receiver gathers.
        assert!(sender.send(message(3)).is_ok());
        let poster = {
            let queue = queue.clone();
            std::thread::spawn(move || (4..40).all(|n| queue.push(message(n)).is_ok()))
        };
        let mut got = Vec::new();
        while got.len() < 37 {
            assert!(matches!(queue.next(&mut batch), Next::Tasks));
            got.extend(batch.drain(..));
        }
        assert!(poster.join().unwrap());
        assert_eq!(got, (3..40).collect::<Vec<u8>>(), "every task, in the order sent");
        // Streaming again, then an interrupt behind a task: the interrupt comes first.
        for n in 0..3 {
            assert!(sender.send(message(n)).is_ok());
        }
        assert!(matches!(queue.next(&mut batch), Next::Tasks));
        batch.clear();
        assert!(sender.send(message(9)).is_ok());
        queue.interrupt();
        assert!(matches!(queue.next(&mut batch), Next::Interrupted));
    }

    #[test]
    fn idle_when_the_sender_and_the_keepalives_are_gone() {
        let (queue, sender) = Queue::new(None, Default::default(), Patience::BLOCK, QueueLimits::NONE);
        let timer = queue.timer_sender();
        drop(sender);
        let q = queue.clone();
        let waiter = std::thread::spawn(move || {
            let mut batch = VecDeque::new();
            matches!(q.next(&mut batch), Next::Idle)
        });
        drop(timer);
        assert!(waiter.join().unwrap());
        assert!(queue.push(message(1)).is_err(), "an idle queue is closed");
    }

    #[test]
    fn a_quiescent_child_releases_its_parent() {
        let (parent, parent_sender) = Queue::new(None, Default::default(), Patience::BLOCK, QueueLimits::NONE);
        let (child, _child_sender) =
            Queue::new(Some(parent.clone()), Default::default(), Patience::BLOCK, QueueLimits::NONE);
        drop(parent_sender);
        // The child waits with nothing to do: the parent, with no sender, ends idle.
        let c = child.clone();
        let child_thread = std::thread::spawn(move || {
            let mut batch = VecDeque::new();
            matches!(c.next(&mut batch), Next::Interrupted)
        });
        let mut batch = VecDeque::new();
        assert!(matches!(parent.next(&mut batch), Next::Idle));
        child.interrupt();
        assert!(child_thread.join().unwrap());
    }

    #[test]
    fn closed_queue_discards() {
        let (queue, sender) = Queue::new(None, Default::default(), Patience::BLOCK, QueueLimits::NONE);
        assert!(sender.send(message(1)).is_ok());
        assert_eq!(queue.close().len(), 1);
        assert!(sender.send(message(2)).is_err());
    }

    #[test]
    fn a_suspended_receiver_is_resumed_by_what_would_have_woken_it() {
        let patience = Patience { spin: Duration::ZERO, dormant_after: Some(Duration::ZERO) };
        let (queue, sender) = Queue::new(None, Default::default(), patience, QueueLimits::NONE);
        let mut batch = VecDeque::new();
        let suspend = |next: Next<'_, u8>| {
            let Next::Dormant(dormant) = next else { panic!("nothing came, yet it did not offer to suspend") };
            let (resumed, resume) = std::sync::mpsc::channel();
            dormant.suspend(Box::new(move || resumed.send(()).unwrap()));
            resume
        };
        // A push resumes it, and the task is there for it.
        let resume = suspend(queue.next(&mut batch));
        assert!(resume.try_recv().is_err(), "nothing resumed it yet");
        assert!(sender.send(message(1)).is_ok());
        resume.try_recv().expect("the push resumed it");
        assert!(matches!(queue.next(&mut batch), Next::Tasks));
        assert_eq!(batch.drain(..).collect::<Vec<_>>(), [1]);
        // An interrupt resumes it.
        let resume = suspend(queue.next(&mut batch));
        queue.interrupt();
        resume.try_recv().expect("the interrupt resumed it");
        assert!(matches!(queue.next(&mut batch), Next::Interrupted));
        // The end of its last sender resumes it, to end idle.
        let (queue, sender) = Queue::new(None, Default::default(), patience, QueueLimits::NONE);
        let resume = suspend(queue.next(&mut batch));
        drop(sender);
        resume.try_recv().expect("the last sender's end resumed it");
        assert!(matches!(queue.next(&mut batch), Next::Idle));
    }

    #[test]
    fn interrupt_wakes_a_blocked_receiver() {
        let (queue, _sender) = Queue::new(None, Default::default(), Patience::BLOCK, QueueLimits::NONE);
        let q = queue.clone();
        let waiter = std::thread::spawn(move || {
            let mut batch = VecDeque::new();
            matches!(q.next(&mut batch), Next::Interrupted)
        });
        queue.interrupt();
        assert!(waiter.join().unwrap());
    }
}
