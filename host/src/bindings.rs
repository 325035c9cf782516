//! Host bindings of the WIT world `wasm-workers:worker/worker`, and conversions between its
//! types and the library's own.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "worker",
    with: {
        "wasm-workers:worker/scope.worker": crate::worker::ChildWorker,
    },
    imports: { default: trappable },
});

pub(crate) use self::wasm_workers::worker::{scope, types};

use crate::message::{Codec, Message};
use crate::worker::{ErrorEvent, Source};

impl From<types::Codec> for Codec {
    fn from(codec: types::Codec) -> Self {
        match codec {
            types::Codec::Json => Codec::Json,
            types::Codec::Postcard => Codec::Postcard,
            types::Codec::Raw => Codec::Raw,
        }
    }
}

impl From<Codec> for types::Codec {
    fn from(codec: Codec) -> Self {
        match codec {
            Codec::Json => types::Codec::Json,
            Codec::Postcard => types::Codec::Postcard,
            Codec::Raw => types::Codec::Raw,
        }
    }
}

/// Lifts a message a guest posted.
///
/// # Errors
///
/// If it carries ports or buffers, which this version of the world offers no way to create,
/// so no guest can hold one; the error traps the guest.
pub(crate) fn lift_message(message: types::Message) -> wasmtime::Result<Message> {
    if !message.ports.is_empty() || !message.buffers.is_empty() {
        wasmtime::bail!("a message carries ports or buffers, which this host does not create");
    }
    Ok(Message { codec: message.codec.into(), data: message.data })
}

impl From<Message> for types::Message {
    fn from(message: Message) -> Self {
        types::Message { codec: message.codec.into(), data: message.data, ports: Vec::new(), buffers: Vec::new() }
    }
}

impl From<Source> for types::Source {
    fn from(source: Source) -> Self {
        match source {
            Source::Parent => types::Source::Parent,
            Source::Child(id) => types::Source::Child(id),
        }
    }
}

impl From<ErrorEvent> for types::ErrorEvent {
    fn from(error: ErrorEvent) -> Self {
        types::ErrorEvent { message: error.message, worker: error.worker, location: error.location }
    }
}
