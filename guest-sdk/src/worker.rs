//! The worker and its global scope: the [`Worker`] trait (its state and event handlers), its
//! error event, and the scope's own functions (`close`, `name`, `location`,
//! `hardwareConcurrency`).

#[allow(unused_imports)]
use crate::*;

/// A child worker's runtime error (the chapter's `ErrorEvent`). Shared with the host.
pub use wasm_workers_protocol::ErrorEvent;

/// A worker: its state and its event handlers (`onmessage`, `onmessageerror`).
///
/// The host creates it with [`Default`] just before its first event, and calls one handler
/// at a time. Messages from children go to the callbacks given to [`Child`]; messages from
/// the parent to [`on_message`](Worker::on_message).
pub trait Worker: Default + 'static {
    /// The type of the messages this worker receives from its parent: any serde type, or
    /// [`Received<T>`] to also receive the ports and buffers transferred with them.
    type Message: FromMessage;

    /// The worker has started: what the top level of a worker script does. Called once,
    /// before any other handler. By default nothing.
    fn on_start(&mut self) {}

    /// A message from the parent (`onmessage`).
    fn on_message(&mut self, message: Self::Message);

    /// A message arrived that does not decode as what its receiver expects
    /// (`onmessageerror`). By default it is written to stderr and otherwise ignored.
    fn on_message_error(&mut self, error: MessageError) {
        eprintln!("{}: {error}", name_or_location());
    }

    /// A client connected to this worker as a shared worker (`onconnect`): `port` is this
    /// worker's end of the client's channel. By default the port is dropped, which closes it.
    fn on_connect(&mut self, port: Port) {
        drop(port);
    }
}

/// Closes this worker (`close()`): the current handler runs to its end, every queued and
/// later event is discarded, and the parent learns that this worker closed.
pub fn close() {
    CLOSING.set(true);
    scope::close();
}

/// This worker's name (`self.name`); empty if it was given none.
pub fn name() -> String {
    scope::name()
}

/// Where this worker's component was loaded from (`self.location`).
pub fn location() -> String {
    scope::location()
}

/// The number of logical processors available to run workers
/// (`navigator.hardwareConcurrency`); at least 1.
pub fn hardware_concurrency() -> u32 {
    scope::hardware_concurrency()
}

pub(crate) fn name_or_location() -> String {
    let name = name();
    if name.is_empty() {
        location()
    } else {
        name
    }
}
