//! Typed tasks ("worker functions"), streams, and pools of task workers.
//!
//! The protocol, in JSON so that every host and language can speak it:
//! - a task: `{"task": id, "input": I}`, answered `{"task": id, "output": O}` or
//!   `{"task": id, "error": "why"}`;
//! - a stream: `{"stream": label}` with one port; on the port, `{"item": T}` messages, and
//!   `{"end": true}` (or closing the port) from either side ends it.
//!
//! A worker serves tasks by implementing [`TaskWorker`] and exporting it with
//! [`export_task_worker!`](crate::export_task_worker). A caller runs tasks on a [`Pool`] of
//! such workers: one at a time with [`Pool::run`], or over a whole collection with
//! [`Pool::par_map`], which keeps results in input order and hands out work on demand.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::rc::Rc;
use wasm_workers_protocol::task as protocol;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::{
    clear_timer, hardware_concurrency, post, set_timeout, Child, ErrorEvent, MessageChannel, Port, Received, Transfer,
    Worker,
};

mod pool;
mod stream;
mod worker;

pub use pool::*;
pub use stream::*;
pub use worker::*;

/// Why a task has no result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskError {
    /// The task itself reported a failure.
    Failed(String),
    /// The worker running it failed (trapped, panicked); the message is the worker's error.
    WorkerFailed(String),
    /// Every worker has as many tasks as the pool's limit allows.
    Full,
    /// The answer does not decode as the expected output.
    Decode(String),
    /// The pool could not start a worker.
    Spawn(String),
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Failed(why) => write!(f, "{}{why}", protocol::TASK_FAILED),
            TaskError::WorkerFailed(why) => write!(f, "{}{why}", protocol::WORKER_FAILED),
            TaskError::Full => f.write_str("every worker of the pool has as many tasks as it may take"),
            TaskError::Decode(why) => write!(f, "the task's answer does not decode: {why}"),
            TaskError::Spawn(why) => write!(f, "cannot start a worker: {why}"),
        }
    }
}

impl std::error::Error for TaskError {}
