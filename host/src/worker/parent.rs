//! Where a worker's messages and its end go: its parent worker, the host program, or nowhere.

use crate::accounting::{DropReason, Ledger};
use crate::event_loop::{FromChild, LoopTask};
use crate::messaging::{self, Deliver, Message};
use wasm_workers_protocol::ErrorEvent;

use super::handle::{CloseReason, WorkerEvent};
use super::services::Services;

/// Receives a host-parented worker's events, on the worker's thread. An event it cannot take
/// (the receiving side is gone, or has no room) comes back with why.
pub(crate) type EventSink = Box<dyn Fn(WorkerEvent) -> Result<(), (DropReason, WorkerEvent)> + Send + Sync>;

/// The host program as a worker's parent: a [`WorkerHandle`](super::WorkerHandle)'s channel,
/// or a pool's dispatcher. Called on the worker's thread for each event; it must not block.
pub(crate) struct HostInbox {
    pub(crate) sink: EventSink,
    /// The largest message it accepts: the worker's own queue limit, set by
    /// [`spawn`](super::spawn::spawn) once the worker's limits are known.
    pub(crate) message_size: usize,
}

impl HostInbox {
    /// The host program's side of a worker that `sink` receives the events of.
    pub(crate) fn new(sink: EventSink) -> Self {
        HostInbox { sink, message_size: usize::MAX }
    }
}

/// Handed to the host program's channel is delivered: the host program has it.
impl Deliver for HostInbox {
    fn deliver(&self, mut message: Message, ledger: Option<&Ledger>) -> Result<(), (DropReason, Message)> {
        let counted = std::mem::take(&mut message.counted);
        match (self.sink)(WorkerEvent::Message(message)) {
            Ok(()) => {
                if let (true, Some(ledger)) = (counted, ledger) {
                    ledger.delivered(1);
                }
                Ok(())
            }
            Err((reason, WorkerEvent::Message(mut message))) => {
                message.counted = counted;
                Err((reason, message))
            }
            Err((reason, _)) => unreachable!("a sink gives back the event it refused ({reason})"),
        }
    }

    fn message_size(&self) -> usize {
        self.message_size
    }
}

/// Where a worker's messages and its end go.
pub(crate) enum ParentLink {
    /// The host program.
    Host(HostInbox),
    /// A parent worker, which knows this worker as a child.
    Worker(FromChild),
    /// No parent: a shared worker. What it posts to its parent goes nowhere.
    None,
}

/// How a worker ended, for its parent.
pub(crate) enum Exit {
    Closed(CloseReason),
    Failed(ErrorEvent),
}

impl ParentLink {
    /// The parent as a receiver of messages; `None` if there is none.
    fn inbox(&self) -> Option<&dyn Deliver> {
        match self {
            ParentLink::Host(inbox) => Some(inbox),
            ParentLink::Worker(queue) => Some(queue),
            ParentLink::None => None,
        }
    }

    /// Posts `message` (counted as posted) to the parent, settling it in `ledger` if it is
    /// refused. Returns why it was refused, if it was.
    pub(crate) fn post(&self, mut message: Message, ledger: &Ledger) -> Result<(), DropReason> {
        match self.inbox() {
            Some(to) => messaging::post(to, message, ledger),
            None => {
                message.settle(ledger, Some(DropReason::ReceiverGone));
                Err(DropReason::ReceiverGone)
            }
        }
    }

    /// The largest message the parent accepts (anything, if there is none: it is dropped).
    pub(crate) fn message_size(&self) -> usize {
        self.inbox().map_or(usize::MAX, |to| to.message_size())
    }

    /// Tells the parent how the worker ended. A worker parent is not told of a terminate:
    /// it terminated the child itself, or has ended itself.
    pub(crate) fn exit(&self, exit: Exit, services: &Services) {
        match self {
            ParentLink::Host(inbox) => {
                let _ = (inbox.sink)(match exit {
                    Exit::Failed(error) => WorkerEvent::Error(error),
                    Exit::Closed(reason) => WorkerEvent::Closed(reason),
                });
            }
            ParentLink::Worker(FromChild { queue, child }) => {
                let child = *child;
                let _ = match exit {
                    Exit::Failed(error) => queue.push(LoopTask::ChildError { child, error: Box::new(error) }),
                    // Not an event: it tells the parent it may forget the child.
                    Exit::Closed(CloseReason::Terminated) => queue.push(LoopTask::ChildTerminated { child }),
                    Exit::Closed(_) => queue.push(LoopTask::ChildClosed { child }),
                };
            }
            ParentLink::None => match exit {
                // No parent to tell: the host's watchers of shared workers hear of it.
                Exit::Failed(error) => services.shared_worker_failed(error),
                Exit::Closed(reason) => tracing::debug!(?reason, "shared worker ended"),
            },
        }
    }
}
