//! What those who may terminate a worker share with it: the terminate flag, and whether its
//! thread has finished with it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use super::task::{WorkerQueue, WorkerSender};
use crate::messaging::Deliver;

/// The state a worker shares with those who may terminate it.
pub(crate) struct Control {
    terminated: AtomicBool,
    queue: Arc<WorkerQueue>,
    engine: wasmtime::Engine,
    /// Set when the worker's thread has finished with it (the thread itself may go on to run
    /// another worker); its parent waits for it when the parent ends.
    stopped: Mutex<bool>,
    stopped_changed: Condvar,
}

impl Control {
    /// The control of the worker whose queue is `queue`, running on `engine` (whose epoch
    /// its store watches).
    pub(crate) fn new(queue: Arc<WorkerQueue>, engine: wasmtime::Engine) -> Self {
        Control {
            terminated: AtomicBool::new(false),
            queue,
            engine,
            stopped: Mutex::new(false),
            stopped_changed: Condvar::new(),
        }
    }

    pub(crate) fn is_terminated(&self) -> bool {
        self.terminated.load(Ordering::Acquire)
    }

    /// Whether the worker's thread has finished with it.
    pub(crate) fn has_stopped(&self) -> bool {
        *self.stopped.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks the worker's thread finished with it.
    pub(crate) fn set_stopped(&self) {
        *self.stopped.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.stopped_changed.notify_all();
    }

    /// Blocks until the worker's thread has finished with it.
    fn wait_stopped(&self) {
        let mut stopped = self.stopped.lock().unwrap_or_else(|p| p.into_inner());
        while !*stopped {
            stopped = self.stopped_changed.wait(stopped).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Terminates the worker: an idle loop wakes and ends; running guest code is interrupted
    /// at its next epoch check. Idempotent.
    pub(crate) fn terminate(&self) {
        if !self.terminated.swap(true, Ordering::AcqRel) {
            self.queue.interrupt();
            // Only a terminate bumps the epoch, so guests pay for the check (a load and a
            // compare at loop heads and function entries) but never for a callback otherwise.
            self.engine.increment_epoch();
        }
    }
}

/// Terminates `children` and waits for their threads to end; used when their parent ends.
/// Terminated guests stop at their next epoch check, so this waits only for a guest blocked
/// in a host call.
pub(crate) fn terminate_all(children: Vec<Arc<Control>>) {
    for control in &children {
        control.terminate();
    }
    for control in children {
        control.wait_stopped();
    }
}

/// A child worker as its parent holds it: the `worker` resource of the WIT `scope`.
pub struct ChildWorker {
    pub(crate) id: u32,
    pub(crate) sender: WorkerSender,
    pub(crate) control: Arc<Control>,
    /// For a child on another host: where its messages go, straight from the parent's thread
    /// (its `sender` then only keeps the proxy alive).
    pub(crate) direct: Option<Arc<dyn DirectChild>>,
}

/// A child whose parent posts to it directly, not through a queue of this host: a worker
/// on another host.
pub(crate) trait DirectChild: Deliver {
    /// Its parent lets go of it (drops its handle, ends its input): as a local child whose
    /// senders are gone, it may end idle once nothing else can post to it.
    fn release(&self);
}

impl Drop for ChildWorker {
    fn drop(&mut self) {
        if let Some(direct) = &self.direct {
            direct.release();
        }
    }
}

impl ChildWorker {
    /// Where a message to this child goes.
    pub(crate) fn to(&self) -> &dyn Deliver {
        match &self.direct {
            Some(direct) => &**direct,
            None => &self.sender,
        }
    }
}
