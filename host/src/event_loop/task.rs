//! What a worker's event loop runs: its tasks, one call into the guest each (a port task may
//! make several, one per queued message), and how they reach the queue.

use std::sync::Arc;

use crate::accounting::{DropReason, Ledger};
use crate::messaging::{Deliver, Message, MessagePort, PortCore, PortHolder};
use wasm_workers_protocol::{ErrorEvent, Source};

use super::queue::{TaskQueue, TaskSender};

/// One task for a worker's event loop (the chapter's tasks, by task source).
pub(crate) enum LoopTask {
    /// A message from the parent or a child (`message` or `messageerror` event).
    Message { source: Source, message: Message },
    /// A child trapped and has ended (the `error` event at a `Worker` object). Boxed: rare,
    /// and it would make every task, messages above all, twice as large.
    ChildError { child: u32, error: Box<ErrorEvent> },
    /// A child closed itself or ended idle.
    ChildClosed { child: u32 },
    /// A child this worker terminated has ended: nothing more of it is on its way.
    ChildTerminated { child: u32 },
    /// Messages (or the close of the entangled port, after them) wait at a port this worker
    /// holds.
    PortReady(Arc<PortCore>),
    /// A client connected to this worker as a shared worker (`connect` event).
    Connect(MessagePort),
    /// A timer fired.
    Timeout { id: u32 },
}

/// A worker's task queue.
pub(crate) type WorkerQueue = TaskQueue<LoopTask>;

/// The right to post to a worker (see [`TaskSender`]).
pub(crate) type WorkerSender = TaskSender<LoopTask>;

/// Settles the messages among `tasks` as discarded in `ledger`.
pub(crate) fn discard(tasks: impl IntoIterator<Item = LoopTask>, ledger: &Ledger) {
    for task in tasks {
        if let LoopTask::Message { mut message, .. } = task {
            message.settle(ledger, Some(DropReason::Discarded));
        }
    }
}

impl WorkerQueue {
    /// Queues a message from `source`, within the queue's limits.
    fn push_from(&self, source: Source, message: Message) -> Result<(), (DropReason, Message)> {
        let len = message.data.len();
        self.push_message(LoopTask::Message { source, message }, len).map_err(|(reason, task)| match task {
            LoopTask::Message { message, .. } => (reason, message),
            _ => unreachable!("a message task comes back as it went"),
        })
    }
}

/// A port held by a worker is scheduled on the worker's own queue.
impl PortHolder for WorkerQueue {
    fn port_ready(&self, port: Arc<PortCore>) -> bool {
        self.push(LoopTask::PortReady(port)).is_ok()
    }

    fn acquire_keepalive(&self) {
        TaskQueue::acquire_keepalive(self);
    }

    fn release_keepalive(&self) {
        TaskQueue::release_keepalive(self);
    }
}

/// The parent's (or the host program's) way to a worker: messages from `source::parent`.
impl Deliver for WorkerSender {
    fn deliver(&self, message: Message, _: Option<&Ledger>) -> Result<(), (DropReason, Message)> {
        self.queue().push_from(Source::Parent, message)
    }

    fn message_size(&self) -> usize {
        self.queue().message_size()
    }
}

/// A worker's queue as its child `child` posts to it: messages from `source::child(child)`.
/// It is not a sender: while the child is active it counts as a keepalive of this queue.
pub(crate) struct FromChild {
    pub(crate) queue: Arc<WorkerQueue>,
    pub(crate) child: u32,
}

impl Deliver for FromChild {
    fn deliver(&self, message: Message, _: Option<&Ledger>) -> Result<(), (DropReason, Message)> {
        self.queue.push_from(Source::Child(self.child), message)
    }

    fn message_size(&self) -> usize {
        self.queue.message_size()
    }
}

impl WorkerSender {
    /// Queues a message from the parent beyond the queue's limits: for a task pool's own
    /// requests, which its `max_in_flight` bounds already (a request refused for a full queue
    /// would leave its caller waiting). Returns it back if the worker's loop has closed.
    pub(crate) fn send_beyond_limits(&self, message: Message) -> Result<(), Message> {
        self.send(LoopTask::Message { source: Source::Parent, message }).map_err(|task| match task {
            LoopTask::Message { message, .. } => message,
            _ => unreachable!("a message task comes back as it went"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A queued message is written into its receiver's queue and read out of it, and a queue
    /// that a fast sender fills holds many: its size is what each message costs in memory
    /// traffic on the way. Ports and buffers take a word each while empty, a child's error
    /// (rare) is boxed.
    #[test]
    fn a_queued_message_takes_nine_words() {
        assert_eq!(std::mem::size_of::<Message>(), 64);
        assert_eq!(std::mem::size_of::<LoopTask>(), 72);
    }
}
