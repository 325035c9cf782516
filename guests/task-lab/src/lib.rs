//! A task worker for the tests. Input `{"value": v}` answers `v`; with `"fail": true` the task
//! fails with `"failed on v"`; with `"panic": true` the worker panics with `"panicked on v"`;
//! with `"spin": n` it first counts to n (uneven work).

use serde::Deserialize;
use serde_json::Value;
use wasm_workers_guest::{export_task_worker, TaskWorker};

#[derive(Deserialize)]
struct Input {
    value: Value,
    #[serde(default)]
    fail: bool,
    #[serde(default)]
    panic: bool,
    #[serde(default)]
    spin: u64,
}

#[derive(Default)]
struct TaskLab;

impl TaskWorker for TaskLab {
    type Input = Input;
    type Output = Value;

    fn run(&mut self, input: Input) -> Result<Value, String> {
        let mut n = 0u64;
        while n < input.spin {
            n = std::hint::black_box(n + 1);
        }
        if input.panic {
            panic!("panicked on {}", input.value);
        }
        if input.fail {
            return Err(format!("failed on {}", input.value));
        }
        Ok(input.value)
    }
}

export_task_worker!(TaskLab);
