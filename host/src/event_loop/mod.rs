//! The event loop of a worker (10.2.2 "The event loop"): one task queue, one task at a time.
//!
//! A worker's thread owns the receiving side of its [`TaskQueue`](queue::TaskQueue). Two kinds of things keep a
//! worker from ending on its own:
//!
//! - **senders** ([`TaskSender`](queue::TaskSender)): the right to post to it, held by its parent (the host
//!   program's handle, or the parent worker's `worker` resource);
//! - **keepalives**: reasons something may still arrive without the parent — a pending timer,
//!   an entangled port it holds, and each of its children that is *active*.
//!
//! A worker is *quiescent* when its queue is empty and it has no keepalive: then only its
//! parent can wake it, and it stops counting as active for its parent. It ends *idle* when it
//! is quiescent and has no sender either: nothing can ever happen again. So a parent whose
//! children are all quiescent, and whose own input has ended, ends idle, and ending terminates
//! them: parent and child never keep each other alive.
//!
//! A receiver that has slept long enough with nothing to do may *suspend* itself
//! ([`Dormant`](queue::Dormant)): it leaves a closure with its queue and lets its thread go,
//! and whatever would have woken it calls the closure instead. Suspended is waiting, as far as
//! everything above counts: senders, keepalives and quiescence do not change.

//!
//! The queue ([`queue`]) knows nothing of what it carries; [`task`] says what a worker's
//! tasks are, and hooks the queue into the ports ([`PortHolder`](crate::messaging::PortHolder))
//! and the delivery seam ([`Deliver`](crate::messaging::Deliver)).

mod control;
mod queue;
mod quiescence;
mod task;

pub use control::ChildWorker;
pub(crate) use control::{terminate_all, Control, DirectChild};
pub(crate) use queue::{Dormant, Next, Patience};
pub(crate) use quiescence::Quiescence;
pub(crate) use task::{discard, FromChild, LoopTask, WorkerQueue, WorkerSender};
