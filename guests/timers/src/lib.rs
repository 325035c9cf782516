//! Sets, clears and repeats timers on request, for the timer tests.
//!
//! - `{"set": [[label, ms], ...], "clear": [label, ...]}` sets one timeout per label, then
//!   clears the named ones; each timeout that fires posts its label.
//! - `{"every": ms, "times": n}` sets an interval that posts `"tick k"` and clears itself
//!   after the n-th tick, posting `"done"`.
//! - `{"set": ..., "close": true}` sets the timeouts and closes at once: none may fire.

use std::collections::HashMap;

use serde::Deserialize;
use wasm_workers_guest::{clear_timer, close, export_worker, post, set_interval, set_timeout, Worker};

#[derive(Deserialize, Default)]
#[serde(default)]
struct Request {
    set: Vec<(String, u32)>,
    clear: Vec<String>,
    every: Option<u32>,
    times: u32,
    close: bool,
}

#[derive(Default)]
struct Timers {
    ticks: u32,
    interval: Option<u32>,
}

impl Worker for Timers {
    type Message = Request;

    fn on_message(&mut self, request: Request) {
        let mut ids = HashMap::new();
        for (label, ms) in request.set {
            let fired = label.clone();
            ids.insert(label, set_timeout(ms, move |_: &mut Self| post(&fired)));
        }
        for label in &request.clear {
            if let Some(&id) = ids.get(label) {
                clear_timer(id);
            }
        }
        if let Some(ms) = request.every {
            let times = request.times;
            self.interval = Some(set_interval(ms, move |this: &mut Self| {
                this.ticks += 1;
                post(&format!("tick {}", this.ticks));
                if this.ticks == times {
                    clear_timer(this.interval.take().expect("set before it fires"));
                    post(&"done");
                }
            }));
        }
        if request.close {
            close();
        }
    }
}

export_worker!(Timers);
