//! Write Web Workers for [wasm-workers](https://example.invalid/wasm-workers) in idiomatic Rust.
//!
//! A worker is a type that implements [`Worker`]; [`export_worker!`] makes it the component's
//! event handlers. The host creates the worker with [`Default`] before its first event and
//! calls it one event at a time. Build the crate as a `cdylib` with
//! `cargo build --release --target wasm32-wasip2`: the `.wasm` it writes is the component.
//!
//! # Example: a worker that delegates
//!
//! The chapter's delegation example (10.1.2.5): split a range over sub-workers, add up what
//! they report.
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use wasm_workers_guest::{export_worker, post, close, Child, Worker};
//!
//! #[derive(Deserialize)]
//! struct Job { n: u64, k: u64 }
//!
//! #[derive(Serialize)]
//! struct Range { from: u64, to: u64 }
//!
//! #[derive(Default)]
//! struct Delegation { pending: u64, total: u64 }
//!
//! impl Worker for Delegation {
//!     type Message = Job;
//!
//!     fn on_message(&mut self, job: Job) {
//!         self.pending = job.k;
//!         for i in 0..job.k {
//!             let range = Range { from: job.n * i / job.k, to: job.n * (i + 1) / job.k };
//!             let child = Child::spawn("core.wasm", Some(&format!("core-{i}")))
//!                 .expect("core.wasm is beside this worker")
//!                 .on_message(|this: &mut Self, count: u64| {
//!                     this.total += count;
//!                     this.pending -= 1;
//!                     if this.pending == 0 {
//!                         post(&this.total);
//!                         close();
//!                     }
//!                 });
//!             child.post(&range);
//!         }
//!     }
//! }
//!
//! export_worker!(Delegation);
//! ```
//!
//! # Messages and codecs
//!
//! Every message carries its [`Codec`]. [`post`] and [`Child::post`] send JSON, the codec the
//! CLI and every language speak; [`post_encoded`] and [`Child::post_encoded`] can send
//! postcard, a compact binary encoding, between Rust workers. A receiver decodes whatever
//! codec a message declares; a message that does not decode as the receiver's type goes to
//! [`Worker::on_message_error`], never to a trap.
//!
//! # Errors
//!
//! A panic in a handler ends the worker: the SDK's panic hook hands the panic message to the
//! host, whose error event to the parent carries it. A child's error goes to the child's
//! [`Child::on_error`] callback; without one it is re-raised in the parent (as an unhandled
//! `error` event is reported in the worker that owns the `Worker` object).

#![warn(missing_docs)]

// Lets the generated bindings name this crate the way the exporting crate does.
extern crate self as wasm_workers_guest;

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

use serde::de::DeserializeOwned;
use serde::Serialize;

#[doc(hidden)]
pub mod __private {
    //! The macro's plumbing; not part of the API.
    pub use crate::dispatch;

    wit_bindgen::generate!({
        path: "../wit",
        world: "worker",
        pub_export_macro: true,
        export_macro_name: "__export_handlers",
        default_bindings_module: "wasm_workers_guest::__private",
        runtime_path: "wasm_workers_guest::__private::wit_bindgen::rt",
    });
    pub use wit_bindgen;
}

use __private::wasm_workers::worker::{scope, types};

/// How a message's data is encoded; it travels with the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// JSON text: what the CLI and every language speak.
    Json,
    /// postcard: compact binary serde, for Rust-to-Rust messages.
    Postcard,
    /// Uninterpreted bytes.
    Raw,
}

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

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Codec::Json => "json",
            Codec::Postcard => "postcard",
            Codec::Raw => "raw",
        })
    }
}

/// Where an event came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// This worker's parent (a worker, or the host program).
    Parent,
    /// A child worker, by [`Child::id`].
    Child(u32),
    /// A message port, by id (channel messaging; not produced by this version of the host).
    Port(u32),
}

impl From<types::Source> for Source {
    fn from(source: types::Source) -> Self {
        match source {
            types::Source::Parent => Source::Parent,
            types::Source::Child(id) => Source::Child(id),
            types::Source::Port(id) => Source::Port(id),
        }
    }
}

/// A message that arrived but cannot be decoded (the `messageerror` event).
#[derive(Clone, Debug)]
pub struct MessageError {
    /// Who sent it.
    pub source: Source,
    /// The codec it declared.
    pub codec: Codec,
    /// Its data, as it arrived.
    pub data: Vec<u8>,
    /// Why it cannot be decoded.
    pub reason: String,
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "undecodable {} message from {:?}: {}", self.codec, self.source, self.reason)
    }
}

/// A child worker's runtime error (the chapter's `ErrorEvent`).
#[derive(Clone, Debug)]
pub struct ErrorEvent {
    /// What went wrong: the trap and, for a panic, the panic message.
    pub message: String,
    /// The failed worker's name.
    pub worker: String,
    /// The failed worker's component location.
    pub location: String,
}

impl fmt::Display for ErrorEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "worker `{}` ({}) failed: {}", self.worker, self.location, self.message)
    }
}

/// A message could not be encoded.
#[derive(Debug)]
pub struct EncodeError(String);

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot encode message: {}", self.0)
    }
}

impl std::error::Error for EncodeError {}

/// A worker: its state and its event handlers (`onmessage`, `onmessageerror`).
///
/// The host creates it with [`Default`] just before its first event, and calls one handler
/// at a time. Messages from children go to the callbacks given to [`Child`]; messages from
/// the parent to [`on_message`](Worker::on_message).
pub trait Worker: Default + 'static {
    /// The type of the messages this worker receives from its parent.
    type Message: DeserializeOwned;

    /// A message from the parent (`onmessage`).
    fn on_message(&mut self, message: Self::Message);

    /// A message arrived that does not decode as what its receiver expects
    /// (`onmessageerror`). By default it is written to stderr and otherwise ignored.
    fn on_message_error(&mut self, error: MessageError) {
        eprintln!("{}: {error}", name_or_location());
    }
}

/// Encodes `value` as a message of `codec`.
///
/// # Errors
///
/// If `value` cannot be encoded in `codec` (for [`Codec::Raw`], if it is not a byte sequence).
pub fn encode<T: Serialize + ?Sized>(codec: Codec, value: &T) -> Result<(Codec, Vec<u8>), EncodeError> {
    let data = match codec {
        Codec::Json => serde_json::to_vec(value).map_err(|e| EncodeError(e.to_string()))?,
        Codec::Postcard => postcard::to_stdvec(value).map_err(|e| EncodeError(e.to_string()))?,
        Codec::Raw => serde_json::to_value(value)
            .ok()
            .and_then(|v| serde_json::from_value::<Vec<u8>>(v).ok())
            .ok_or_else(|| EncodeError("a raw message must be a sequence of bytes".into()))?,
    };
    Ok((codec, data))
}

/// Decodes a message of `codec` as a `T`.
///
/// # Errors
///
/// A description of why `data` is not a `T` in `codec`.
pub fn decode<T: DeserializeOwned>(codec: Codec, data: &[u8]) -> Result<T, String> {
    match codec {
        Codec::Json => serde_json::from_slice(data).map_err(|e| format!("not the expected JSON: {e}")),
        Codec::Postcard => postcard::from_bytes(data).map_err(|e| format!("not the expected postcard: {e}")),
        Codec::Raw => serde_json::from_value(serde_json::Value::from(data.to_vec()))
            .map_err(|e| format!("raw bytes are not the expected type: {e}")),
    }
}

fn message(codec: Codec, data: Vec<u8>) -> types::Message {
    types::Message { codec: codec.into(), data, ports: Vec::new(), buffers: Vec::new() }
}

/// Posts `value` to this worker's parent as JSON (`postMessage`).
///
/// # Panics
///
/// If `value` cannot be encoded as JSON, like a `postMessage` that throws `DataCloneError`.
pub fn post<T: Serialize + ?Sized>(value: &T) {
    post_encoded(Codec::Json, value).unwrap_or_else(|e| panic!("{e}"));
}

/// Posts `value` to this worker's parent in `codec`.
///
/// # Errors
///
/// If `value` cannot be encoded in `codec`; nothing is sent then.
pub fn post_encoded<T: Serialize + ?Sized>(codec: Codec, value: &T) -> Result<(), EncodeError> {
    let (codec, data) = encode(codec, value)?;
    scope::post_message(message(codec, data));
    Ok(())
}

/// Posts already-encoded bytes to this worker's parent, declared as `codec`.
pub fn post_bytes(codec: Codec, data: Vec<u8>) {
    scope::post_message(message(codec, data));
}

/// Closes this worker (`close()`): the current handler runs to its end, every queued and
/// later event is discarded, and the parent learns that this worker closed.
pub fn close() {
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

fn name_or_location() -> String {
    let name = name();
    if name.is_empty() { location() } else { name }
}

type MessageCallback<W> = Box<dyn FnMut(&mut W, types::Message)>;

/// The callbacks of one child, for a worker of type `W`.
struct Callbacks<W> {
    on_message: Option<MessageCallback<W>>,
    on_error: Option<Box<dyn FnMut(&mut W, ErrorEvent)>>,
    on_close: Option<Box<dyn FnMut(&mut W)>>,
}

struct ChildEntry {
    /// Kept so that the child stays reachable (not idle) while it has callbacks.
    _handle: Rc<scope::Worker>,
    /// A `Callbacks<W>`; taken out while one of them runs.
    callbacks: Option<Box<dyn Any>>,
}

thread_local! {
    /// The worker's state, created before its first event.
    static WORKER: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
    /// Live children, by id.
    static CHILDREN: RefCell<HashMap<u32, ChildEntry>> = RefCell::new(HashMap::new());
}

/// A dedicated child worker (a `Worker` object): post to it, terminate it, and receive its
/// messages, errors and closing through typed callbacks.
///
/// `W` is the type of the worker that owns the child; callbacks get `&mut W`, so that they
/// can update its state. The child keeps running when the `Child` is dropped; the callbacks
/// stay registered until the child ends.
pub struct Child<W> {
    id: u32,
    handle: Rc<scope::Worker>,
    _worker: std::marker::PhantomData<fn(&mut W)>,
}

impl<W: Worker> Child<W> {
    /// Spawns a child worker running the component at `location` (`new Worker(url, {name})`);
    /// a relative location is resolved against the directory of this worker's own location.
    ///
    /// # Errors
    ///
    /// The host's description of why the component cannot be loaded.
    pub fn spawn(location: &str, name: Option<&str>) -> Result<Self, String> {
        let options = types::WorkerOptions { name: name.map(str::to_string) };
        let handle = Rc::new(scope::Worker::spawn(location, &options)?);
        let id = handle.id();
        let callbacks: Callbacks<W> = Callbacks { on_message: None, on_error: None, on_close: None };
        CHILDREN.with_borrow_mut(|children| {
            children.insert(id, ChildEntry { _handle: handle.clone(), callbacks: Some(Box::new(callbacks)) })
        });
        Ok(Child { id, handle, _worker: std::marker::PhantomData })
    }

    /// The id this child's events carry ([`Source::Child`]).
    pub fn id(&self) -> u32 {
        self.id
    }

    fn with_callbacks(self, f: impl FnOnce(&mut Callbacks<W>)) -> Self {
        CHILDREN.with_borrow_mut(|children| {
            if let Some(callbacks) = children
                .get_mut(&self.id)
                .and_then(|entry| entry.callbacks.as_mut())
                .and_then(|callbacks| callbacks.downcast_mut::<Callbacks<W>>())
            {
                f(callbacks);
            }
        });
        self
    }

    /// Calls `f` with each message of type `T` the child posts. A message that does not
    /// decode as a `T` goes to [`Worker::on_message_error`].
    pub fn on_message<T: DeserializeOwned>(self, mut f: impl FnMut(&mut W, T) + 'static) -> Self {
        let id = self.id;
        self.with_callbacks(move |callbacks| {
            callbacks.on_message = Some(Box::new(move |worker: &mut W, message: types::Message| {
                let codec = Codec::from(message.codec);
                match decode::<T>(codec, &message.data) {
                    Ok(value) => f(worker, value),
                    Err(reason) => worker.on_message_error(MessageError {
                        source: Source::Child(id),
                        codec,
                        data: message.data,
                        reason,
                    }),
                }
            }));
        })
    }

    /// Calls `f` if the child fails (it trapped; it has ended). Without this callback the
    /// error is re-raised in this worker.
    pub fn on_error(self, f: impl FnMut(&mut W, ErrorEvent) + 'static) -> Self {
        self.with_callbacks(|callbacks| callbacks.on_error = Some(Box::new(f)))
    }

    /// Calls `f` when the child closes itself or ends with nothing left to do.
    pub fn on_close(self, f: impl FnMut(&mut W) + 'static) -> Self {
        self.with_callbacks(|callbacks| callbacks.on_close = Some(Box::new(f)))
    }

    /// Posts `value` to the child as JSON.
    ///
    /// # Panics
    ///
    /// If `value` cannot be encoded as JSON.
    pub fn post<T: Serialize + ?Sized>(&self, value: &T) {
        self.post_encoded(Codec::Json, value).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Posts `value` to the child in `codec`.
    ///
    /// # Errors
    ///
    /// If `value` cannot be encoded in `codec`; nothing is sent then.
    pub fn post_encoded<T: Serialize + ?Sized>(&self, codec: Codec, value: &T) -> Result<(), EncodeError> {
        let (codec, data) = encode(codec, value)?;
        self.handle.post_message(message(codec, data));
        Ok(())
    }

    /// Posts already-encoded bytes to the child, declared as `codec`.
    pub fn post_bytes(&self, codec: Codec, data: Vec<u8>) {
        self.handle.post_message(message(codec, data));
    }

    /// Terminates the child (`worker.terminate()`), even if it is busy; its callbacks are
    /// dropped and no event of it arrives any more.
    pub fn terminate(&self) {
        self.handle.terminate();
        CHILDREN.with_borrow_mut(|children| children.remove(&self.id));
    }
}

impl<W> fmt::Debug for Child<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child").field("id", &self.id).finish()
    }
}

/// The event dispatch behind [`export_worker!`]; not part of the API.
#[doc(hidden)]
pub mod dispatch {
    use super::*;

    fn install_panic_hook() {
        use std::sync::Once;
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            std::panic::set_hook(Box::new(|info| {
                let payload = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "Box<dyn Any>".to_string());
                let message = match info.location() {
                    Some(at) => format!("panicked at {}:{}: {payload}", at.file(), at.line()),
                    None => format!("panicked: {payload}"),
                };
                eprintln!("{message}");
                scope::report_error(&message);
            }));
        });
    }

    /// Runs `f` on the worker's state, creating it first if needed.
    fn with_worker<W: Worker, R>(f: impl FnOnce(&mut W) -> R) -> R {
        install_panic_hook();
        // Take the state out while the handler runs, so that nothing here stays borrowed if
        // the handler calls back into the SDK.
        let mut state = WORKER.with_borrow_mut(Option::take).unwrap_or_else(|| Box::new(W::default()));
        let worker = state.downcast_mut::<W>().expect("one worker type per component");
        let result = f(worker);
        WORKER.with_borrow_mut(|slot| *slot = Some(state));
        result
    }

    /// Runs `f` on the callbacks of child `id` (taken out of the registry while `f` runs);
    /// returns `None` if the child is unknown. With `remove`, forgets the child afterwards.
    fn with_child<W: Worker, R>(id: u32, remove: bool, f: impl FnOnce(&mut W, &mut Callbacks<W>) -> R) -> Option<R> {
        let mut callbacks = CHILDREN.with_borrow_mut(|children| children.get_mut(&id)?.callbacks.take())?;
        let result = with_worker(|worker: &mut W| {
            let callbacks = callbacks.downcast_mut::<Callbacks<W>>().expect("one worker type per component");
            f(worker, callbacks)
        });
        CHILDREN.with_borrow_mut(|children| {
            if remove {
                children.remove(&id);
            } else if let Some(entry) = children.get_mut(&id) {
                entry.callbacks = Some(callbacks);
            }
        });
        Some(result)
    }

    fn message_error(source: Source, message: types::Message, reason: String) -> MessageError {
        MessageError { source, codec: message.codec.into(), data: message.data, reason }
    }

    /// `on-message`.
    pub fn on_message<W: Worker>(source: types::Source, message: types::Message) {
        match Source::from(source) {
            Source::Parent => with_worker(|worker: &mut W| {
                match decode::<W::Message>(message.codec.into(), &message.data) {
                    Ok(value) => worker.on_message(value),
                    Err(reason) => worker.on_message_error(message_error(Source::Parent, message, reason)),
                }
            }),
            // A child this worker terminated can have messages in flight: they find no entry.
            Source::Child(id) => {
                with_child(id, false, |worker: &mut W, callbacks| {
                    if let Some(on_message) = &mut callbacks.on_message {
                        on_message(worker, message);
                    }
                });
            }
            // This version of the host creates no ports, so no message arrives on one.
            Source::Port(_) => {}
        }
    }

    /// `on-message-error`.
    pub fn on_message_error<W: Worker>(source: types::Source, error: types::MessageError) {
        let error = message_error(source.into(), error.message, error.reason);
        with_worker(|worker: &mut W| worker.on_message_error(error));
    }

    /// `on-error`.
    pub fn on_error<W: Worker>(source: types::Source, error: types::ErrorEvent) {
        let error = ErrorEvent { message: error.message, worker: error.worker, location: error.location };
        if let Source::Child(id) = Source::from(source) {
            let unhandled = with_child(id, true, |worker: &mut W, callbacks| match &mut callbacks.on_error {
                Some(on_error) => {
                    on_error(worker, error.clone());
                    false
                }
                None => true,
            });
            if unhandled.unwrap_or(true) {
                // An unhandled `error` event is reported in the worker that owns the child.
                panic!("unhandled error in a child: {error}");
            }
        }
    }

    /// `on-close`.
    pub fn on_close<W: Worker>(source: types::Source) {
        if let Source::Child(id) = Source::from(source) {
            with_child(id, true, |worker: &mut W, callbacks| {
                if let Some(on_close) = &mut callbacks.on_close {
                    on_close(worker);
                }
            });
        }
    }
}

/// Makes `$worker` (a type implementing [`Worker`]) this component's event handlers.
/// Use it once per component, at the crate root.
#[macro_export]
macro_rules! export_worker {
    ($worker:ty) => {
        const _: () = {
            struct Handlers;

            impl $crate::__private::exports::wasm_workers::worker::handlers::Guest for Handlers {
                fn on_message(
                    source: $crate::__private::wasm_workers::worker::types::Source,
                    message: $crate::__private::wasm_workers::worker::types::Message,
                ) {
                    $crate::__private::dispatch::on_message::<$worker>(source, message)
                }

                fn on_message_error(
                    source: $crate::__private::wasm_workers::worker::types::Source,
                    error: $crate::__private::wasm_workers::worker::types::MessageError,
                ) {
                    $crate::__private::dispatch::on_message_error::<$worker>(source, error)
                }

                fn on_error(
                    source: $crate::__private::wasm_workers::worker::types::Source,
                    error: $crate::__private::wasm_workers::worker::types::ErrorEvent,
                ) {
                    $crate::__private::dispatch::on_error::<$worker>(source, error)
                }

                fn on_close(source: $crate::__private::wasm_workers::worker::types::Source) {
                    $crate::__private::dispatch::on_close::<$worker>(source)
                }
            }

            $crate::__private::__export_handlers!(Handlers with_types_in $crate::__private);
        };
    };
}
