//! The task protocol: typed tasks and streams as JSON messages, spoken by the host's
//! `task::Pool` and `task::Stream`, and by the guest SDK's `TaskWorker`, `Pool` and `Stream`.
//!
//! - A task is [`Request`] `{"task": id, "input": I}`, answered [`Output`]
//!   `{"task": id, "output": O}` or [`Failure`] `{"task": id, "error": "why"}`.
//! - A stream is opened by [`OpenStream`] `{"stream": label}` with one port, on which
//!   [`Item`] `{"item": T}` messages flow both ways until either side sends [`END`]
//!   `{"end": true}` or closes the port.
//!
//! Encoding goes through these types; decoding through [`request`], [`answer`] and
//! [`stream_message`], which read a message as leniently as every side always has.

use alloc::string::{String, ToString};

use serde::Serialize;
use serde_json::Value;

/// A task for a worker.
#[derive(Debug, Serialize)]
pub struct Request<I> {
    /// The caller's id for it; the answer carries it back.
    pub task: u64,
    /// What the task works on.
    pub input: I,
}

/// A task's result.
#[derive(Debug, Serialize)]
pub struct Output<O> {
    /// The task's id.
    pub task: u64,
    /// What it produced.
    pub output: O,
}

/// A task's failure.
#[derive(Debug, Serialize)]
pub struct Failure<E> {
    /// The task's id.
    pub task: u64,
    /// Why it failed (a string, from every side of this project).
    pub error: E,
}

/// A request to open a stream; its port travels in the same message.
#[derive(Debug, Serialize)]
pub struct OpenStream<L> {
    /// The caller's label for the stream.
    pub stream: L,
}

/// One item of a stream.
#[derive(Debug, Serialize)]
pub struct Item<T> {
    /// The item.
    pub item: T,
}

/// The end of a stream, from either side.
#[derive(Debug, Serialize)]
pub struct End {
    /// Always `true`.
    pub end: bool,
}

/// The message that ends a stream.
pub const END: End = End { end: true };

/// How a task's own failure is shown, before its words.
pub const TASK_FAILED: &str = "the task failed: ";

/// How the failure of the worker running a task is shown, before the worker's error.
pub const WORKER_FAILED: &str = "the worker running the task failed: ";

/// The failure of a request without an input.
pub const NO_INPUT: &str = "the task request has no input";

/// The failure of a request whose input does not decode, before the decoder's words.
pub const BAD_INPUT: &str = "cannot decode the task's input: ";

/// How a pool picks a worker for a task.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Schedule {
    /// The next worker in turn that has room.
    #[default]
    RoundRobin,
    /// The worker with the fewest tasks in flight.
    LeastLoaded,
}

/// What a worker serving tasks received.
#[derive(Debug, PartialEq)]
pub enum Incoming<'a> {
    /// A request to open a stream, with its label (its port came with it).
    OpenStream(&'a str),
    /// A task, with its input if it has one.
    Request {
        /// Its id.
        task: u64,
        /// Its input.
        input: Option<&'a Value>,
    },
    /// Nothing of this protocol.
    Other,
}

/// Reads a message a worker serving tasks received.
pub fn request(message: &Value) -> Incoming<'_> {
    if let Some(label) = message.get("stream").and_then(Value::as_str) {
        return Incoming::OpenStream(label);
    }
    match message.get("task").and_then(Value::as_u64) {
        Some(task) => Incoming::Request { task, input: message.get("input") },
        None => Incoming::Other,
    }
}

/// What a task's answer says.
#[derive(Debug, PartialEq)]
pub enum Answer<'a> {
    /// Its output (which wins if the answer also has an error).
    Output(&'a Value),
    /// Its failure, in words (an error that is not a string, as JSON).
    Failure(String),
    /// It has the task's id but neither an output nor an error.
    Malformed,
}

/// Reads a task's answer: its task id and what it says; `None` if it is not an answer.
pub fn answer(message: &Value) -> Option<(u64, Answer<'_>)> {
    let task = message.get("task").and_then(Value::as_u64)?;
    let answer = match (message.get("output"), message.get("error")) {
        (Some(output), _) => Answer::Output(output),
        (None, Some(error)) => Answer::Failure(error.as_str().map_or_else(|| error.to_string(), Into::into)),
        (None, None) => Answer::Malformed,
    };
    Some((task, answer))
}

/// What arrived on a stream.
#[derive(Debug, PartialEq)]
pub enum StreamMessage<'a> {
    /// The other side ended the stream.
    End,
    /// An item.
    Item(&'a Value),
    /// Nothing of this protocol (ignored).
    Other,
}

/// Reads a message that arrived on a stream.
pub fn stream_message(message: &Value) -> StreamMessage<'_> {
    if message.get("end").is_some() {
        StreamMessage::End
    } else if let Some(item) = message.get("item") {
        StreamMessage::Item(item)
    } else {
        StreamMessage::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn what_is_encoded_decodes() {
        let request = serde_json::to_value(Request { task: 7, input: [1, 2] }).unwrap();
        assert_eq!(self::request(&request), Incoming::Request { task: 7, input: Some(&json!([1, 2])) });
        let open = serde_json::to_value(OpenStream { stream: "s" }).unwrap();
        assert_eq!(self::request(&open), Incoming::OpenStream("s"));
        let output = serde_json::to_value(Output { task: 7, output: 3 }).unwrap();
        assert_eq!(answer(&output), Some((7, Answer::Output(&json!(3)))));
        let failure = serde_json::to_value(Failure { task: 7, error: "no" }).unwrap();
        assert_eq!(answer(&failure), Some((7, Answer::Failure("no".into()))));
        assert_eq!(answer(&json!({ "task": 7 })), Some((7, Answer::Malformed)));
        assert_eq!(answer(&json!({ "output": 1 })), None);
        assert_eq!(stream_message(&serde_json::to_value(END).unwrap()), StreamMessage::End);
        let item = serde_json::to_value(Item { item: "x" }).unwrap();
        assert_eq!(stream_message(&item), StreamMessage::Item(&json!("x")));
    }
}
