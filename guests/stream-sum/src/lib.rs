//! A task worker with streams (a reactor). On a stream, each number is answered with the
//! running sum; the string `"stop"` makes the worker end the stream itself. When the caller
//! ends it, the worker posts `{"ended-by": "caller", "sum": s}` to its parent. Tasks: a list of
//! numbers → their sum.

use std::cell::Cell;
use std::rc::Rc;

use serde_json::{json, Value};
use wasm_workers_guest::{export_task_worker, post, Served, Stream, TaskWorker};

#[derive(Default)]
struct StreamSum;

impl TaskWorker for StreamSum {
    type Input = Vec<i64>;
    type Output = i64;

    fn run(&mut self, numbers: Vec<i64>) -> Result<i64, String> {
        Ok(numbers.iter().sum())
    }

    fn on_stream(&mut self, _label: String, stream: Stream) {
        let sum = Rc::new(Cell::new(0i64));
        let total = sum.clone();
        let reply = stream.clone();
        stream.on_items(
            move |_: &mut Served<Self>, item: Value| match item.as_i64() {
                Some(n) => {
                    sum.set(sum.get() + n);
                    let _ = reply.send(&sum.get());
                }
                None => reply.end(),
            },
            move |_: &mut Served<Self>| post(&json!({ "ended-by": "caller", "sum": total.get() })),
        );
    }
}

export_task_worker!(StreamSum);
