//! Moves a port from one worker to another while messages stream through it, for the
//! port-move tests. Sent `{"n": N, "first": placement, "second": placement}` (each placement
//! `null` for this host, or a host's id), it makes a channel, starts two `port_counter.wasm` workers
//! (`first` and `second`), gives one end of the channel to the first and posts the numbers
//! `0..N` on the other end. Halfway, it asks the first counter to give the port back and hands
//! it to the second, while it keeps posting. Once the second has counted to the end it posts
//! `{"first": report, "second": report}` (the counters' reports) and closes.

use serde::Deserialize;
use serde_json::{json, Value};
use wasm_workers_guest::{
    close, export_worker, post, set_timeout, Child, MessageChannel, Placement, Port, PostError, Received, Transfer,
    Worker,
};

#[derive(Deserialize)]
struct Job {
    n: u64,
    first: Option<String>,
    second: Option<String>,
}

#[derive(Default)]
struct Mover {
    n: u64,
    sent: u64,
    sender: Option<Port>,
    first: Option<Child<Mover>>,
    second: Option<Child<Mover>>,
    first_report: Option<Value>,
}

fn counter(name: &str, host: Option<String>) -> Child<Mover> {
    let child = match host {
        Some(host) => Child::spawn_placed("port_counter.wasm", Some(name), &Placement::Host(host)),
        None => Child::spawn("port_counter.wasm", Some(name)),
    };
    child.unwrap_or_else(|error| panic!("cannot start counter `{name}`: {error}"))
}

impl Mover {
    /// Posts the next numbers until the channel is full (then tries again shortly) or all
    /// are sent; asks the first counter to move the port once half are.
    fn send(&mut self) {
        let Some(port) = self.sender.clone() else { return };
        while self.sent < self.n {
            match port.post(&self.sent) {
                Ok(()) => self.sent += 1,
                Err(PostError::QueueFull) => {
                    set_timeout(1, |mover: &mut Mover| mover.send());
                    return;
                }
                Err(error) => panic!("cannot post {}: {error}", self.sent),
            }
            if self.sent == self.n / 2 {
                if let Some(first) = &self.first {
                    first.post(&"move");
                }
            }
        }
    }
}

impl Worker for Mover {
    type Message = Job;

    fn on_message(&mut self, job: Job) {
        let channel = MessageChannel::new();
        let first = counter("first", job.first).on_message(|mover: &mut Mover, message: Received<Value>| {
            let Received { data, ports, .. } = message;
            let Some(report) = data.get("moved").cloned() else {
                post(&json!({ "unexpected": data }));
                return close();
            };
            mover.first_report = Some(report);
            let (Some(port), Some(second)) = (ports.into_iter().next(), &mover.second) else {
                post(&json!({ "error": "the port did not come back" }));
                return close();
            };
            second.post_with(&json!({ "count-until": mover.n }), Transfer::new().port(&port)).expect("just received");
        });
        let second = counter("second", job.second).on_message(|mover: &mut Mover, report: Value| {
            post(&json!({ "first": mover.first_report, "second": report }));
            close();
        });
        first.post_with(&json!({ "count-until": job.n }), Transfer::new().port(&channel.port2)).expect("a new port");
        (self.n, self.first, self.second, self.sender) = (job.n, Some(first), Some(second), Some(channel.port1));
        self.send();
    }
}

export_worker!(Mover);
