//! The event loop of a worker (10.2.2 "The event loop"): one task queue, one task at a time.
//!
//! A worker's thread owns the receiving side of its [`TaskQueue`]; everyone who can post to
//! the worker (its parent, its children) holds a [`TaskSender`]. The loop ends when the
//! closing flag is set, when the worker is terminated, or when it is idle for good: its
//! queue is empty and no sender is left, so no task can ever arrive again.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::message::Message;
use crate::port::{MessagePort, PortCore};
use crate::worker::{ErrorEvent, Source};

/// One task for a worker's event loop: a call into the guest (a port task may make several,
/// one per queued message).
pub(crate) enum Task {
    /// A message from the parent or a child (`message` or `messageerror` event).
    Message { source: Source, message: Message },
    /// A child trapped and has ended (the `error` event at a `Worker` object).
    ChildError { child: u32, error: ErrorEvent },
    /// A child closed itself or ended idle.
    ChildClosed { child: u32 },
    /// Messages wait at a port this worker holds.
    PortReady(Arc<PortCore>),
    /// The port entangled with one this worker holds was closed.
    PortClosed(Arc<PortCore>),
    /// A client connected to this worker as a shared worker (`connect` event).
    Connect(MessagePort),
    /// A timer fired.
    Timeout { id: u32 },
}

/// What [`TaskQueue::next`] found.
pub(crate) enum Next {
    /// Tasks to run, in order. The batch is taken from the queue in one step, so that a burst
    /// of messages costs one lock, not one per message.
    Tasks,
    /// The worker was terminated.
    Interrupted,
    /// The queue is empty and no sender is left: nothing can happen any more.
    Idle,
}

/// A worker's task queue: many senders, one receiver (the worker's thread).
///
/// Ordering: tasks pushed by one thread are taken in the order pushed. Blocking: only
/// [`TaskQueue::next`] blocks; pushing never does.
pub(crate) struct TaskQueue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

struct QueueState {
    tasks: VecDeque<Task>,
    /// Live [`TaskSender`]s.
    senders: usize,
    /// Other reasons the worker may still get tasks (entangled ports it holds).
    keepalive: usize,
    /// Set once the loop has closed: pushes are discarded from then on.
    closed: bool,
    /// Set by [`TaskQueue::interrupt`].
    interrupted: bool,
    /// The receiver is blocked in `next`, so a push must wake it.
    waiting: bool,
}

impl TaskQueue {
    /// A new queue and its first sender.
    pub(crate) fn new() -> (Arc<TaskQueue>, TaskSender) {
        let queue = Arc::new(TaskQueue {
            state: Mutex::new(QueueState {
                tasks: VecDeque::new(),
                senders: 1,
                keepalive: 0,
                closed: false,
                interrupted: false,
                waiting: false,
            }),
            ready: Condvar::new(),
        });
        let sender = TaskSender { queue: queue.clone() };
        (queue, sender)
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // A panic while the lock is held cannot leave the state inconsistent (every update is
        // a single assignment or a `VecDeque` operation), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A new sender to this queue. Used by the worker itself to hand its children a way back.
    pub(crate) fn sender(self: &Arc<Self>) -> TaskSender {
        self.lock().senders += 1;
        TaskSender { queue: self.clone() }
    }

    /// Blocks until there are tasks, the worker is interrupted, or it is idle for good, and
    /// moves all queued tasks into `batch` (which must be empty).
    pub(crate) fn next(&self, batch: &mut VecDeque<Task>) -> Next {
        let mut state = self.lock();
        loop {
            if state.interrupted {
                return Next::Interrupted;
            }
            if !state.tasks.is_empty() {
                std::mem::swap(&mut state.tasks, batch);
                return Next::Tasks;
            }
            if state.senders == 0 && state.keepalive == 0 {
                // Closed in the same step, so that no task can slip in after the decision.
                state.closed = true;
                return Next::Idle;
            }
            state.waiting = true;
            state = self.ready.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
            state.waiting = false;
        }
    }

    /// Queues `task` without being a sender (for those who do not keep the worker alive:
    /// ports, the shared-worker registry). Returns it back if the queue is closed.
    pub(crate) fn push(&self, task: Task) -> Result<(), Task> {
        let mut state = self.lock();
        if state.closed {
            return Err(task);
        }
        state.tasks.push_back(task);
        if state.waiting {
            // Clear the flag so that a burst of pushes wakes the receiver once.
            state.waiting = false;
            self.ready.notify_one();
        }
        Ok(())
    }

    /// Counts one more reason for the worker to stay alive though no sender is left.
    pub(crate) fn acquire_keepalive(&self) {
        self.lock().keepalive += 1;
    }

    /// Releases a reason counted by [`acquire_keepalive`](Self::acquire_keepalive).
    pub(crate) fn release_keepalive(&self) {
        let mut state = self.lock();
        state.keepalive -= 1;
        if state.keepalive == 0 && state.senders == 0 && state.waiting {
            self.ready.notify_one();
        }
    }

    /// Closes the queue: queued tasks are discarded and so is every later push. Returns the
    /// number of tasks discarded.
    pub(crate) fn close(&self) -> usize {
        let mut state = self.lock();
        state.closed = true;
        let discarded = std::mem::take(&mut state.tasks);
        drop(state);
        discarded.len()
    }

    /// Wakes the receiver with [`Next::Interrupted`], now and at every later `next`.
    pub(crate) fn interrupt(&self) {
        let mut state = self.lock();
        state.interrupted = true;
        if state.waiting {
            self.ready.notify_one();
        }
    }
}

/// The right to post tasks to one worker. Cloning it keeps the worker reachable; when the
/// last sender is dropped and the queue is empty, the worker ends idle.
pub(crate) struct TaskSender {
    queue: Arc<TaskQueue>,
}

impl TaskSender {
    /// Queues `task`. Returns it back if the worker's loop has closed (the task is then
    /// discarded, as the chapter discards tasks of a closed event loop).
    pub(crate) fn send(&self, task: Task) -> Result<(), Task> {
        self.queue.push(task)
    }
}

impl Clone for TaskSender {
    fn clone(&self) -> Self {
        self.queue.sender()
    }
}

impl Drop for TaskSender {
    fn drop(&mut self) {
        let mut state = self.queue.lock();
        state.senders -= 1;
        if state.senders == 0 && state.keepalive == 0 && state.waiting {
            self.queue.ready.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Codec;

    fn message(n: u8) -> Task {
        Task::Message { source: Source::Parent, message: Message::new(Codec::Raw, vec![n]) }
    }

    #[test]
    fn tasks_arrive_in_order_in_one_batch() {
        let (queue, sender) = TaskQueue::new();
        for n in 0..3 {
            assert!(sender.send(message(n)).is_ok());
        }
        let mut batch = VecDeque::new();
        assert!(matches!(queue.next(&mut batch), Next::Tasks));
        let got: Vec<u8> = batch
            .drain(..)
            .map(|t| match t {
                Task::Message { message, .. } => message.data[0],
                _ => panic!("only messages were sent"),
            })
            .collect();
        assert_eq!(got, [0, 1, 2]);
    }

    #[test]
    fn idle_when_last_sender_dropped() {
        let (queue, sender) = TaskQueue::new();
        let other = sender.clone();
        drop(sender);
        let waiter = std::thread::spawn(move || {
            let mut batch = VecDeque::new();
            matches!(queue.next(&mut batch), Next::Idle)
        });
        drop(other);
        assert!(waiter.join().unwrap());
    }

    #[test]
    fn closed_queue_discards() {
        let (queue, sender) = TaskQueue::new();
        assert!(sender.send(message(1)).is_ok());
        assert_eq!(queue.close(), 1);
        assert!(sender.send(message(2)).is_err());
    }

    #[test]
    fn interrupt_wakes_a_blocked_receiver() {
        let (queue, _sender) = TaskQueue::new();
        let q = queue.clone();
        let waiter = std::thread::spawn(move || {
            let mut batch = VecDeque::new();
            matches!(q.next(&mut batch), Next::Interrupted)
        });
        queue.interrupt();
        assert!(waiter.join().unwrap());
    }
}
