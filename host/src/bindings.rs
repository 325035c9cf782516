//! Host bindings of the WIT world `wasm-workers:worker/worker`, and conversions between its
//! types and the library's own.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "worker",
    with: {
        "wasm-workers:worker/scope.worker": crate::event_loop::ChildWorker,
        "wasm-workers:worker/types.message-port": crate::messaging::MessagePort,
        "wasm-workers:worker/types.buffer": crate::buffer::Buffer,
    },
    imports: { default: trappable },
});

pub(crate) use self::wasm_workers::worker::{scope, types};

use wasm_workers_protocol::{Codec, ErrorEvent, Source};

impl From<types::Codec> for Codec {
    fn from(codec: types::Codec) -> Self {
        match codec {
            types::Codec::Json => Codec::Json,
            types::Codec::Postcard => Codec::Postcard,
            types::Codec::Raw => Codec::Raw,
            types::Codec::StructuredClone => Codec::StructuredClone,
        }
    }
}

impl From<Codec> for types::Codec {
    fn from(codec: Codec) -> Self {
        match codec {
            Codec::Json => types::Codec::Json,
            Codec::Postcard => types::Codec::Postcard,
            Codec::Raw => types::Codec::Raw,
            Codec::StructuredClone => types::Codec::StructuredClone,
        }
    }
}

impl From<Source> for types::Source {
    fn from(source: Source) -> Self {
        match source {
            Source::Parent => types::Source::Parent,
            Source::Child(id) => types::Source::Child(id),
            Source::Port(id) => types::Source::Port(id),
        }
    }
}

impl From<ErrorEvent> for types::ErrorEvent {
    fn from(error: ErrorEvent) -> Self {
        types::ErrorEvent {
            message: error.message,
            worker: error.worker,
            location: error.location,
            lineno: error.lineno,
            colno: error.colno,
        }
    }
}
