//! Typed tasks on pools of workers, streams, and join/scope — what the Rust worker libraries
//! give their users (worker functions, reactors, thread pools, `par_map`), without their
//! failures: a task whose worker dies, panics or is terminated is answered with an error
//! naming the cause, never left waiting.
//!
//! The wire protocol (JSON, spoken by the guest SDK's `TaskWorker`):
//! a task is `{"task": id, "input": I}`, answered `{"task": id, "output": O}` or
//! `{"task": id, "error": "why"}`; a stream is opened by `{"stream": label}` with one port, on
//! which `{"item": T}` messages flow both ways until either side sends `{"end": true}` or
//! closes the port.
//!
//! A [`Pool`] keeps up to `size` workers of one component, started on demand. Each task goes
//! to one worker, picked round-robin or least-loaded among those under the per-worker limit
//! ([`TaskError::Full`] if none is). A worker answers its tasks in order, so when one fails the
//! task it was running (its oldest unanswered one) fails with the worker's error, and the
//! tasks queued behind it go to a fresh worker. Idle workers are terminated after
//! `idle_timeout` and started again on demand.

mod join;
mod pool;
mod stream;

use wasm_workers_protocol::task as protocol;

pub use join::{spawn, Scope, TaskHandle};
pub use pool::{Pool, PoolConfig};
pub use stream::Stream;

/// Why a task has no result.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    /// The task itself reported a failure.
    #[error("{}{}", protocol::TASK_FAILED, .0)]
    Failed(String),
    /// The worker running it failed (a trap, a panic); the worker's error message.
    #[error("{}{}", protocol::WORKER_FAILED, .0)]
    WorkerFailed(String),
    /// The worker ended (closed itself, or was terminated) before answering.
    #[error("the worker running the task ended before answering: {0}")]
    WorkerEnded(String),
    /// Every worker has as many tasks in flight as the pool's limit allows.
    #[error("every worker of the pool has as many tasks as it may take")]
    Full,
    /// The input does not encode, or the answer does not decode.
    #[error("the task's input or answer does not fit its type: {0}")]
    Codec(String),
    /// A worker could not be started.
    #[error("cannot start a worker: {0}")]
    Spawn(String),
    /// The pool was terminated.
    #[error("the pool was terminated")]
    Terminated,
}

/// How a [`Pool`] picks a worker for a task (shared with the guest SDK's pools).
pub use wasm_workers_protocol::task::Schedule;
