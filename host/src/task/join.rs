//! One task on a worker of its own (`std::thread::spawn` for workers), and scopes of tasks
//! (`std::thread::scope`).

use std::future::Future;
use std::sync::Mutex;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::host::Host;
use crate::worker::Component;

use super::pool::{Pool, PoolConfig, Reply};
use super::TaskError;

/// its result. Dropping it terminates the worker, and waits until it has stopped.
#[derive(Debug)]
pub struct TaskHandle<O> {
    pool: Pool,
    answer: oneshot::Receiver<Result<Value, TaskError>>,
    _output: std::marker::PhantomData<fn() -> O>,
}

/// Runs one task on a new worker of `component` (`std::thread::spawn`); join the handle for
/// its result.
///
/// # Errors
///
/// If the worker cannot be started, or the input does not encode.
pub fn spawn<I: Serialize, O: DeserializeOwned>(
    host: &Host,
    component: &Component,
    input: &I,
) -> Result<TaskHandle<O>, TaskError> {
    let config = PoolConfig { size: Some(1), name: "task".to_string(), ..PoolConfig::default() };
    let pool = Pool::new(host, component, config).map_err(|e| TaskError::Spawn(e.to_string()))?;
    let input = serde_json::to_value(input).map_err(|e| TaskError::Codec(e.to_string()))?;
    let (tx, answer) = oneshot::channel();
    pool.handle.pool.submit(input, Reply::Once(tx), pool.handle.pool.config.schedule)?;
    Ok(TaskHandle { pool, answer, _output: std::marker::PhantomData })
}

impl<O: DeserializeOwned> TaskHandle<O> {
    /// Waits for the task's result; the worker is terminated afterwards.
    ///
    /// # Errors
    ///
    /// Whatever kept the task from a result (see [`TaskError`]).
    pub async fn join(self) -> Result<O, TaskError> {
        let answer = self.answer.await.unwrap_or(Err(TaskError::Terminated))?;
        drop(self.pool);
        serde_json::from_value(answer).map_err(|e| TaskError::Codec(e.to_string()))
    }
}

/// A scope of tasks (`std::thread::scope` for workers): every task spawned in it has finished
/// or been terminated when the scope ends.
#[derive(Debug)]
pub struct Scope {
    host: Host,
    pools: Mutex<Vec<Pool>>,
}

impl Scope {
    /// An empty scope.
    pub fn new(host: &Host) -> Scope {
        Scope { host: host.clone(), pools: Mutex::new(Vec::new()) }
    }

    /// Runs one task on a new worker of `component`, within the scope; the future resolves to
    /// its result.
    ///
    /// # Errors
    ///
    /// If the worker cannot be started, or the input does not encode.
    pub fn spawn<I: Serialize, O: DeserializeOwned>(
        &self,
        component: &Component,
        input: &I,
    ) -> Result<impl Future<Output = Result<O, TaskError>> + use<I, O>, TaskError> {
        let config = PoolConfig { size: Some(1), name: "scoped".to_string(), ..PoolConfig::default() };
        let pool = Pool::new(&self.host, component, config).map_err(|e| TaskError::Spawn(e.to_string()))?;
        let result = pool.run(input);
        self.pools.lock().unwrap_or_else(|p| p.into_inner()).push(pool);
        Ok(result)
    }

    /// How many of the scope's workers are running.
    pub fn running_workers(&self) -> usize {
        self.pools.lock().unwrap_or_else(|p| p.into_inner()).iter().map(Pool::running_workers).sum()
    }
}

impl Drop for Scope {
    /// Terminates every task that has not finished, and waits until its worker has stopped.
    fn drop(&mut self) {
        let pools = std::mem::take(&mut *self.pools.lock().unwrap_or_else(|p| p.into_inner()));
        drop(pools);
    }
}
