//! Starting a worker: its queue, its control, its store state, and a thread to run it.

use std::fmt;
use std::sync::Arc;

use crate::error::SpawnError;
use crate::event_loop::{Control, WorkerQueue, WorkerSender};

use super::component::Component;
use super::options::WorkerOptions;
use super::parent::ParentLink;
use super::services::Services;
use super::state::WorkerState;
use super::thread::run;

/// Why a worker could not be started.
pub(crate) enum SpawnFailure {
    /// A worker-count limit.
    Limit(String),
    /// The operating system.
    Os(std::io::Error),
    /// Placing it on the lattice.
    Placement(String),
}

impl From<std::io::Error> for SpawnFailure {
    fn from(error: std::io::Error) -> Self {
        SpawnFailure::Os(error)
    }
}

impl SpawnFailure {
    pub(crate) fn into_error(self, worker: &str, location: &str) -> SpawnError {
        let (worker, location) = (worker.to_string(), location.to_string());
        match self {
            SpawnFailure::Limit(limit) => SpawnError::Limit { worker, location, limit },
            SpawnFailure::Os(source) => SpawnError::Thread { worker, location, source },
            SpawnFailure::Placement(cause) => SpawnError::Placement { worker, location, cause },
        }
    }
}

impl fmt::Display for SpawnFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnFailure::Limit(limit) => f.write_str(limit),
            SpawnFailure::Os(error) => write!(f, "{error}"),
            SpawnFailure::Placement(cause) => f.write_str(cause),
        }
    }
}

/// Spawns a worker thread; `shared` is its name if it is a shared worker. Returns the first
/// sender to the worker, its control and its queue.
pub(crate) fn spawn(
    services: &Arc<Services>,
    component: &Component,
    mut options: WorkerOptions,
    mut parent: ParentLink,
    shared: Option<String>,
) -> Result<(WorkerSender, Arc<Control>, Arc<WorkerQueue>), SpawnFailure> {
    // The host's defaults fill in what the worker's own limits leave open.
    options.limits = options.limits.or(services.default_limits);
    if let ParentLink::Host(inbox) = &mut parent {
        // The host program's side is bounded like the worker's own queue.
        inbox.message_size = options.limits.queue().message_size;
    }
    // Counted in before anything is made, and out again on every failure below.
    if !services.reserve_worker() {
        return Err(SpawnFailure::Limit(format!("this host runs its limit of {} workers", services.max_workers)));
    }
    let parent_queue = match &parent {
        ParentLink::Worker(to) => Some(to.queue.clone()),
        ParentLink::Host(_) | ParentLink::None => None,
    };
    let (queue, sender) =
        WorkerQueue::new(parent_queue, services.quiescence.clone(), services.patience, options.limits.queue());
    // The engine whose epoch the worker's store watches: the component's.
    let control = Arc::new(Control::new(queue.clone(), component.engine().clone()));
    let name = options.name.clone().unwrap_or_default();
    // Until the thread runs, a failure must undo what the new queue counted (the parent's
    // keepalive, the host's busy workers).
    let state =
        match WorkerState::new(services.clone(), component, options, queue.clone(), control.clone(), parent, shared) {
            Ok(state) => state,
            Err(error) => {
                services.worker_stopped();
                queue.close();
                queue.finish();
                return Err(error.into());
            }
        };
    let thread_name = thread_name(&name, component.location());
    let component = component.clone();
    let stopped = Stopped(control.clone());
    let job = Box::new(move || run(component, state, stopped));
    match services.threads.run(thread_name, job) {
        Ok(()) => {}
        Err(error) => {
            services.worker_stopped();
            queue.close();
            queue.finish();
            return Err(error.into());
        }
    }
    Ok((sender, control, queue))
}

/// The name of the threads that run worker `name` of the component at `location`.
pub(super) fn thread_name(name: &str, location: &str) -> String {
    let name = if name.is_empty() { format!("worker {location}") } else { name.to_string() };
    // A thread name cannot hold NUL, and the name may come from a guest.
    if name.contains('\0') {
        name.replace('\0', "\u{FFFD}")
    } else {
        name
    }
}

/// Marks a worker's thread finished with it when dropped: however the worker ends, after
/// everything its thread does (it travels with a worker that gives its thread back).
pub(super) struct Stopped(Arc<Control>);

impl Drop for Stopped {
    fn drop(&mut self) {
        self.0.set_stopped();
    }
}

/// Closes a worker's queue and counts it out, however its thread ends (even by a panic of
/// the host's own code, which is a bug, but must not leave its parent or the host waiting).
pub(super) struct Finish(pub(super) Arc<WorkerQueue>);

impl Drop for Finish {
    fn drop(&mut self) {
        self.0.close();
        self.0.finish();
    }
}
