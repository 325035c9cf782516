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
//! # Example: ports, buffers and a shared worker
//!
//! A shared worker (10.1.2.3) that greets every client on the port it connected with, and an
//! image worker (10.1.2.2) that receives a buffer and transfers it back: the bytes never move
//! between workers, only ownership does.
//!
//! ```no_run
//! use wasm_workers_guest::{export_worker, post_with, Port, Received, Transfer, Worker};
//!
//! #[derive(Default)]
//! struct Greeter { count: u32 }
//!
//! impl Worker for Greeter {
//!     // `Received<T>` also carries the ports and buffers transferred with the message.
//!     type Message = Received<String>;
//!
//!     fn on_connect(&mut self, port: Port) {
//!         self.count += 1;
//!         let _ = port.post(&format!("Hello World! You are connection #{}", self.count));
//!         let reply = port.clone();
//!         port.on_message(move |_: &mut Self, text: String| {
//!             if text == "ping" { let _ = reply.post(&"pong"); }
//!         });
//!     }
//!
//!     fn on_message(&mut self, message: Received<String>) {
//!         for buffer in message.buffers {
//!             let mut pixels = buffer.read_all().unwrap();   // copy in
//!             pixels.iter_mut().for_each(|p| *p = 255 - *p);
//!             buffer.write(0, &pixels).unwrap();              // copy out
//!             // Transfer it back: no copy; `buffer` is detached here from now on.
//!             post_with(&"inverted", Transfer::new().buffer(&buffer)).unwrap();
//!         }
//!     }
//! }
//!
//! export_worker!(Greeter);
//! ```
//!
//! Timers are event-loop tasks too: `set_timeout(1000, |this: &mut MyWorker| ...)` runs the
//! closure on the worker, and [`clear_timer`] cancels it.
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

mod bytes;
pub mod task;
pub use bytes::Bytes;
pub use task::{Pool, PoolOptions, Schedule, Stream, TaskError, TaskWorker};

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

/// How a message's data is encoded; it travels with the message (JSON: what the CLI and
/// every language speak; postcard: compact binary serde, for Rust-to-Rust messages; raw
/// bytes). Shared with the host.
pub use wasm_workers_protocol::Codec;
/// Where an event came from: this worker's parent (a worker, or the host program), a child
/// worker by [`Child::id`], or a message port it holds by [`Port::id`]. Shared with the host.
pub use wasm_workers_protocol::Source;

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
        wasm_workers_protocol::write_error_event(f, &self.worker, &self.location, &self.message)
    }
}

/// A message could not be posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostError {
    /// The value cannot be encoded in the codec asked for.
    Encode(String),
    /// A port or buffer to send with it, or the port to send it on, was transferred away
    /// (it is detached, as a transferred `ArrayBuffer` is).
    Detached,
    /// The receiver's queue holds as many messages, or bytes, as its limits allow: it is
    /// behind. The message (and what it transferred) was dropped; try again later.
    QueueFull,
    /// The message is larger than the receiver accepts. It was dropped.
    TooLarge,
}

impl From<types::PostError> for PostError {
    fn from(error: types::PostError) -> Self {
        match error {
            types::PostError::QueueFull => PostError::QueueFull,
            types::PostError::TooLarge => PostError::TooLarge,
        }
    }
}

impl fmt::Display for PostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PostError::Encode(why) => write!(f, "cannot encode message: {why}"),
            PostError::Detached => f.write_str("a port or buffer was transferred away and can no longer be used here"),
            PostError::QueueFull => f.write_str("the receiver's queue is full"),
            PostError::TooLarge => f.write_str("the message is larger than the receiver accepts"),
        }
    }
}

impl std::error::Error for PostError {}

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

/// What a worker can receive as a message: any serde type (decoded with the codec the
/// message declares; transferred ports and buffers are dropped), or [`Received<T>`].
pub trait FromMessage: Sized {
    /// Decodes a message. Takes what it keeps of `ports` and `buffers`.
    ///
    /// `data` is a view of the burst the message arrived in: where the message's bytes are
    /// kept, keep the view (clone it: a reference count) rather than copy them. The SDK lets go
    /// of its own view before the handler runs, so a kept view of a message that arrived alone
    /// is the only one, and [`Bytes::into_vec`] moves the bytes out.
    ///
    /// # Errors
    ///
    /// Why the message is not a `Self`.
    fn from_message(
        codec: Codec,
        data: &Bytes,
        ports: &mut Vec<Port>,
        buffers: &mut Vec<Buffer>,
    ) -> Result<Self, String>;
}

impl<T: DeserializeOwned> FromMessage for T {
    fn from_message(codec: Codec, data: &Bytes, _: &mut Vec<Port>, _: &mut Vec<Buffer>) -> Result<Self, String> {
        decode(codec, data)
    }
}

/// A message with what was transferred with it (`MessageEvent.data` and `.ports`).
#[derive(Debug)]
pub struct Received<T> {
    /// The decoded data.
    pub data: T,
    /// The ports transferred with it, in the order they were put in.
    pub ports: Vec<Port>,
    /// The buffers transferred with it, in the order they were put in.
    pub buffers: Vec<Buffer>,
}

impl<T: DeserializeOwned> FromMessage for Received<T> {
    fn from_message(
        codec: Codec,
        data: &Bytes,
        ports: &mut Vec<Port>,
        buffers: &mut Vec<Buffer>,
    ) -> Result<Self, String> {
        Ok(Received { data: decode(codec, data)?, ports: std::mem::take(ports), buffers: std::mem::take(buffers) })
    }
}

/// A message as it arrived, undecoded: for workers that pass data through or read bytes.
/// Its data is not copied out of the burst it arrived in (see [`Bytes`]).
#[derive(Debug)]
pub struct RawMessage {
    /// The codec it declares.
    pub codec: Codec,
    /// Its data.
    pub data: Bytes,
    /// The ports transferred with it.
    pub ports: Vec<Port>,
    /// The buffers transferred with it.
    pub buffers: Vec<Buffer>,
}

impl FromMessage for RawMessage {
    fn from_message(
        codec: Codec,
        data: &Bytes,
        ports: &mut Vec<Port>,
        buffers: &mut Vec<Buffer>,
    ) -> Result<Self, String> {
        Ok(RawMessage { codec, data: data.clone(), ports: std::mem::take(ports), buffers: std::mem::take(buffers) })
    }
}

/// Posts raw bytes to this worker's parent, declared as `codec`, transferring `transfer`.
///
/// # Errors
///
/// If something in `transfer` was already transferred away; nothing is sent then.
pub fn post_raw(codec: Codec, data: impl Into<Vec<u8>>, transfer: Transfer) -> Result<(), PostError> {
    let transfer = transfer.take()?;
    Ok(scope::post_message(types::Message { codec: codec.into(), data: data.into(), transfer })?)
}

/// Ports and buffers to transfer with a message (the `transfer` list of `postMessage`).
/// Posting detaches them here: every clone of a transferred [`Port`] or [`Buffer`] in this
/// worker fails from then on with [`PostError::Detached`].
#[derive(Default, Debug)]
pub struct Transfer {
    ports: Vec<Port>,
    buffers: Vec<Buffer>,
}

impl Transfer {
    /// Nothing to transfer yet.
    pub fn new() -> Self {
        Transfer::default()
    }

    /// Transfers `port` too.
    pub fn port(mut self, port: &Port) -> Self {
        self.ports.push(port.clone());
        self
    }

    /// Transfers `buffer` too.
    pub fn buffer(mut self, buffer: &Buffer) -> Self {
        self.buffers.push(buffer.clone());
        self
    }

    /// Takes the handles out, detaching them; all or nothing. Naming one port or buffer
    /// twice is refused, as `postMessage` refuses duplicates in its transfer list.
    fn take(self) -> Result<Vec<types::Transferable>, PostError> {
        let detached = self.ports.iter().any(|p| p.0.handle.borrow().is_none())
            || self.buffers.iter().any(|b| b.0.borrow().is_none());
        let duplicate = self
            .ports
            .iter()
            .enumerate()
            .any(|(i, p)| self.ports[..i].iter().any(|q| Rc::ptr_eq(&p.0, &q.0)))
            || self.buffers.iter().enumerate().any(|(i, b)| self.buffers[..i].iter().any(|c| Rc::ptr_eq(&b.0, &c.0)));
        if detached || duplicate {
            return Err(PostError::Detached);
        }
        let ports = self.ports.iter().filter_map(Port::take_handle).map(types::Transferable::Port);
        let buffers = self.buffers.iter().filter_map(|b| b.0.borrow_mut().take()).map(types::Transferable::Buffer);
        Ok(ports.chain(buffers).collect())
    }
}

/// Encodes `value` as a message of `codec`.
///
/// # Errors
///
/// If `value` cannot be encoded in `codec` (for [`Codec::Raw`], if it is not a byte sequence).
pub fn encode<T: Serialize + ?Sized>(codec: Codec, value: &T) -> Result<(Codec, Vec<u8>), PostError> {
    let data = match codec {
        Codec::Json => serde_json::to_vec(value).map_err(|e| PostError::Encode(e.to_string()))?,
        Codec::Postcard => postcard::to_stdvec(value).map_err(|e| PostError::Encode(e.to_string()))?,
        Codec::Raw => serde_json::to_value(value)
            .ok()
            .and_then(|v| serde_json::from_value::<Vec<u8>>(v).ok())
            .ok_or_else(|| PostError::Encode("a raw message must be a sequence of bytes".into()))?,
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
    types::Message { codec: codec.into(), data, transfer: Vec::new() }
}

/// Encodes `value` as JSON into a message transferring `transfer`.
fn message_with<T: Serialize + ?Sized>(value: &T, transfer: Transfer) -> Result<types::Message, PostError> {
    let (codec, data) = encode(Codec::Json, value)?;
    let transfer = transfer.take()?;
    Ok(types::Message { codec: codec.into(), data, transfer })
}

/// Posts `value` to this worker's parent as JSON (`postMessage`).
///
/// # Panics
///
/// If `value` cannot be encoded as JSON, like a `postMessage` that throws `DataCloneError`.
///
/// A message the parent refuses (its queue is full, or the message is too large) is
/// dropped, and counted dropped by the host; [`try_post`] tells the caller instead.
pub fn post<T: Serialize + ?Sized>(value: &T) {
    if let Err(PostError::Encode(why)) = try_post(value) {
        panic!("cannot encode message: {why}");
    }
}

/// Posts `value` to this worker's parent, as JSON, and says if it was refused.
///
/// # Errors
///
/// [`PostError::QueueFull`] or [`PostError::TooLarge`] if the parent does not take it (it
/// is dropped); [`PostError::Encode`] if it cannot be encoded.
pub fn try_post<T: Serialize + ?Sized>(value: &T) -> Result<(), PostError> {
    post_encoded(Codec::Json, value)
}

/// Posts `value` to this worker's parent in `codec`.
///
/// # Errors
///
/// If `value` cannot be encoded in `codec`; nothing is sent then.
pub fn post_encoded<T: Serialize + ?Sized>(codec: Codec, value: &T) -> Result<(), PostError> {
    let (codec, data) = encode(codec, value)?;
    Ok(scope::post_message(message(codec, data))?)
}

/// Posts `value` to this worker's parent as JSON, transferring the ports and buffers in
/// `transfer` (`postMessage(message, transfer)`): they are detached here.
///
/// # Errors
///
/// If `value` cannot be encoded, or something in `transfer` was already transferred away;
/// nothing is sent then.
pub fn post_with<T: Serialize + ?Sized>(value: &T, transfer: Transfer) -> Result<(), PostError> {
    Ok(scope::post_message(message_with(value, transfer)?)?)
}

/// Posts already-encoded bytes to this worker's parent, declared as `codec`.
///
/// # Errors
///
/// [`PostError::QueueFull`] or [`PostError::TooLarge`] if the parent does not take it.
pub fn post_bytes(codec: Codec, data: impl Into<Vec<u8>>) -> Result<(), PostError> {
    Ok(scope::post_message(message(codec, data.into()))?)
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

fn name_or_location() -> String {
    let name = name();
    if name.is_empty() {
        location()
    } else {
        name
    }
}

/// One end of a message channel (`MessagePort`): post to the entangled end, receive what it
/// posts through typed callbacks.
///
/// Cheap to clone; clones are the same port. Transferring it (in a [`Transfer`]) detaches
/// every clone here: their calls then fail with [`PostError::Detached`]. The port is closed
/// when the last clone is dropped and no callback holds it.
#[derive(Clone)]
pub struct Port(Rc<PortInner>);

struct PortInner {
    handle: RefCell<Option<types::MessagePort>>,
    /// The id its events carry here ([`Source::Port`]).
    id: u32,
}

impl Port {
    fn from_handle(handle: types::MessagePort) -> Port {
        let id = handle.id();
        Port(Rc::new(PortInner { handle: RefCell::new(Some(handle)), id }))
    }

    /// Takes the handle out for a transfer: every clone is detached, and the callbacks go.
    fn take_handle(&self) -> Option<types::MessagePort> {
        let handle = self.0.handle.borrow_mut().take()?;
        PORTS.with_borrow_mut(|ports| ports.remove(&self.0.id));
        Some(handle)
    }

    fn with_handle<R>(&self, f: impl FnOnce(&types::MessagePort) -> R) -> Result<R, PostError> {
        self.0.handle.borrow().as_ref().map(f).ok_or(PostError::Detached)
    }

    /// The id this port's events carry in this worker.
    pub fn id(&self) -> u32 {
        self.0.id
    }

    /// Whether the port was transferred away.
    pub fn is_detached(&self) -> bool {
        self.0.handle.borrow().is_none()
    }

    /// Posts `value` as JSON to the entangled port (`port.postMessage`).
    ///
    /// # Errors
    ///
    /// If `value` cannot be encoded, or this port was transferred away.
    pub fn post<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), PostError> {
        self.post_with(value, Transfer::new())
    }

    /// Posts `value` as JSON, transferring what is in `transfer`.
    ///
    /// # Errors
    ///
    /// If `value` cannot be encoded, or this port or something in `transfer` was
    /// transferred away; nothing is sent then.
    pub fn post_with<T: Serialize + ?Sized>(&self, value: &T, transfer: Transfer) -> Result<(), PostError> {
        if self.is_detached() {
            return Err(PostError::Detached);
        }
        if transfer.ports.iter().any(|port| Rc::ptr_eq(&port.0, &self.0)) {
            // As `postMessage` refuses to transfer a port through itself; checked before
            // anything is taken, so nothing is lost.
            return Err(PostError::Encode("a port cannot be transferred through itself".to_string()));
        }
        let message = message_with(value, transfer)?;
        Ok(self.with_handle(|port| port.post_message(message))??)
    }

    /// Posts already-encoded bytes, declared as `codec`.
    ///
    /// # Errors
    ///
    /// If this port was transferred away.
    pub fn post_bytes(&self, codec: Codec, data: impl Into<Vec<u8>>) -> Result<(), PostError> {
        let data = data.into();
        Ok(self.with_handle(|port| port.post_message(message(codec, data)))??)
    }

    /// Starts delivering messages (`port.start()`); [`on_message`](Self::on_message) does it.
    pub fn start(&self) {
        let _ = self.with_handle(|port| port.start());
    }

    /// Closes the port (`port.close()`): the entangled port's owner learns it.
    pub fn close(&self) {
        let _ = self.with_handle(|port| port.close());
        PORTS.with_borrow_mut(|ports| ports.remove(&self.0.id));
    }

    fn with_callbacks<W: Worker>(&self, f: impl FnOnce(&mut Callbacks<W>) + 'static) -> &Self {
        if self.is_detached() {
            return self;
        }
        PORTS.with_borrow_mut(|ports| {
            ports.entry(self.0.id).or_insert_with(|| Entry::new::<W>(Keep::Port(self.clone()))).register(f);
        });
        self
    }

    /// Calls `f` with each message of type `T` that arrives on this port (`port.onmessage`),
    /// and starts the port. A message that does not decode goes to
    /// [`Worker::on_message_error`]. The port stays open while it has callbacks.
    pub fn on_message<W: Worker, T: FromMessage + 'static>(&self, f: impl FnMut(&mut W, T) + 'static) -> &Self {
        let source = Source::Port(self.0.id);
        self.with_callbacks(move |callbacks: &mut Callbacks<W>| callbacks.on_message = Some(typed(source, f)));
        self.start();
        self
    }

    /// Calls `f` when the entangled port is closed (the port's `close` event).
    pub fn on_close<W: Worker>(&self, f: impl FnMut(&mut W) + 'static) -> &Self {
        self.with_callbacks(|callbacks: &mut Callbacks<W>| callbacks.on_close = Some(Box::new(f)))
    }
}

impl fmt::Debug for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Port").field("id", &self.0.id).field("detached", &self.is_detached()).finish()
    }
}

/// A message channel (`new MessageChannel()`): two entangled ports, both held by this worker.
#[derive(Debug)]
pub struct MessageChannel {
    /// One end.
    pub port1: Port,
    /// The other end.
    pub port2: Port,
}

impl MessageChannel {
    /// A new channel.
    pub fn new() -> Self {
        let (one, two) = scope::message_channel();
        MessageChannel { port1: Port::from_handle(one), port2: Port::from_handle(two) }
    }
}

impl Default for MessageChannel {
    fn default() -> Self {
        MessageChannel::new()
    }
}

/// Takes the port this worker's graph handed it under `label` (a channel declared in the
/// graph's manifest); `None` if there is none or it was taken already. Call it from
/// [`Worker::on_start`] or any later handler.
pub fn take_channel(label: &str) -> Option<Port> {
    scope::take_channel(label).map(Port::from_handle)
}

/// Shared workers (`SharedWorker`): one instance per name, reached through a port.
pub struct SharedWorker;

impl SharedWorker {
    /// Connects to the shared worker `name` running the component at `location` (relative to
    /// this worker's location), starting it if none runs; returns this worker's port to it
    /// (`new SharedWorker(url, name).port`).
    ///
    /// # Errors
    ///
    /// If a shared worker of that name runs another component, or the component cannot be
    /// loaded.
    pub fn connect(location: &str, name: &str) -> Result<Port, String> {
        scope::connect_shared_worker(location, name).map(Port::from_handle)
    }
}

/// A byte buffer owned by the host, transferable without copying (a transferable
/// `ArrayBuffer`).
///
/// Reading and writing copy bytes between the host and this worker's memory; passing a
/// buffer on in a [`Transfer`] copies nothing — the zero-copy path for data that only passes
/// through. Clones are the same buffer; a transferred buffer is detached here: its length is 0
/// and reads and writes fail.
#[derive(Clone)]
pub struct Buffer(Rc<RefCell<Option<types::Buffer>>>);

impl Buffer {
    /// A zero-filled buffer of `len` bytes (`new ArrayBuffer(len)`).
    ///
    /// # Errors
    ///
    /// If `len` is over the host's limit or the memory cannot be had.
    pub fn new(len: u64) -> Result<Buffer, String> {
        types::Buffer::create(len).map(Buffer::from_handle)
    }

    /// A buffer holding a copy of `bytes`.
    pub fn from_bytes(bytes: &[u8]) -> Buffer {
        Buffer::from_handle(types::Buffer::from_bytes(bytes))
    }

    fn from_handle(handle: types::Buffer) -> Buffer {
        Buffer(Rc::new(RefCell::new(Some(handle))))
    }

    /// The length in bytes; 0 once transferred away (`byteLength` of a detached buffer).
    pub fn len(&self) -> u64 {
        self.0.borrow().as_ref().map_or(0, |b| b.len())
    }

    /// Whether the length is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the buffer was transferred away.
    pub fn is_detached(&self) -> bool {
        self.0.borrow().is_none()
    }

    /// Copies `len` bytes from `offset` out of the buffer.
    ///
    /// # Errors
    ///
    /// If the range is outside the buffer, or the buffer was transferred away.
    pub fn read(&self, offset: u64, len: u64) -> Result<Vec<u8>, String> {
        match &*self.0.borrow() {
            Some(buffer) => buffer.read(offset, len),
            None => Err(PostError::Detached.to_string()),
        }
    }

    /// Copies the whole buffer out.
    ///
    /// # Errors
    ///
    /// If the buffer was transferred away.
    pub fn read_all(&self) -> Result<Vec<u8>, String> {
        self.read(0, self.len())
    }

    /// Copies `bytes` into the buffer at `offset`.
    ///
    /// # Errors
    ///
    /// If the range is outside the buffer, or the buffer was transferred away.
    pub fn write(&self, offset: u64, bytes: &[u8]) -> Result<(), String> {
        match &*self.0.borrow() {
            Some(buffer) => buffer.write(offset, bytes),
            None => Err(PostError::Detached.to_string()),
        }
    }
}

impl fmt::Debug for Buffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Buffer").field("len", &self.len()).field("detached", &self.is_detached()).finish()
    }
}

/// Runs `f` once, `delay_ms` milliseconds from now, as a task of this worker (`setTimeout`).
/// Returns the timer's id for [`clear_timer`]. A closed or terminated worker's timers never
/// fire; a worker with a pending timer does not end idle.
pub fn set_timeout<W: Worker>(delay_ms: u32, f: impl FnOnce(&mut W) + 'static) -> u32 {
    let id = scope::set_timeout(delay_ms);
    let mut f = Some(f);
    let callback: Box<dyn FnMut(&mut W)> = Box::new(move |worker| {
        if let Some(f) = f.take() {
            f(worker)
        }
    });
    TIMERS.with_borrow_mut(|timers| timers.insert(id, (false, Box::new(callback) as Box<dyn Any>)));
    id
}

/// Runs `f` every `interval_ms` milliseconds until cleared (`setInterval`).
pub fn set_interval<W: Worker>(interval_ms: u32, f: impl FnMut(&mut W) + 'static) -> u32 {
    let id = scope::set_interval(interval_ms);
    let callback: Box<dyn FnMut(&mut W)> = Box::new(f);
    TIMERS.with_borrow_mut(|timers| timers.insert(id, (true, Box::new(callback) as Box<dyn Any>)));
    id
}

/// Cancels a timeout or interval (`clearTimeout`, `clearInterval`); unknown ids are ignored.
/// An interval may clear itself from its own callback.
pub fn clear_timer(id: u32) {
    scope::clear_timer(id);
    let removed = TIMERS.with_borrow_mut(|timers| timers.remove(&id));
    if removed.is_none() {
        // Its callback is running (taken out of the map): do not put it back.
        CLEARED.with_borrow_mut(|cleared| cleared.insert(id));
    }
}

/// The ports and buffers transferred with a message that arrived.
fn received(transfer: Vec<types::Transferable>) -> (Vec<Port>, Vec<Buffer>) {
    let (mut ports, mut buffers) = (Vec::new(), Vec::new());
    for object in transfer {
        match object {
            types::Transferable::Port(port) => ports.push(Port::from_handle(port)),
            types::Transferable::Buffer(buffer) => buffers.push(Buffer::from_handle(buffer)),
        }
    }
    (ports, buffers)
}

/// Wraps a typed callback as one that decodes the raw message first.
fn typed<W: Worker, T: FromMessage + 'static>(
    source: Source,
    mut f: impl FnMut(&mut W, T) + 'static,
) -> MessageCallback<W> {
    Box::new(move |worker: &mut W, message: Incoming| match message.decode::<T>() {
        Ok(value) => f(worker, value),
        Err((codec, data, reason)) => worker.on_message_error(MessageError { source, codec, data, reason }),
    })
}

/// A message event on its way to a callback: its data still a view of its burst.
struct Incoming {
    codec: Codec,
    data: Bytes,
    transfer: Vec<types::Transferable>,
}

impl Incoming {
    /// Decodes it as a `T`, letting go of this view of the bytes (so that what `T` kept of
    /// them may be their only view); or the codec, the bytes and why they are not a `T`.
    fn decode<T: FromMessage>(self) -> Result<T, (Codec, Vec<u8>, String)> {
        let Incoming { codec, data, transfer } = self;
        let (mut ports, mut buffers) = received(transfer);
        T::from_message(codec, &data, &mut ports, &mut buffers).map_err(|reason| (codec, data.into_vec(), reason))
    }
}

type MessageCallback<W> = Box<dyn FnMut(&mut W, Incoming)>;
type ErrorCallback<W> = Box<dyn FnMut(&mut W, ErrorEvent)>;
type CloseCallback<W> = Box<dyn FnMut(&mut W)>;
/// A registration made while an entry's callbacks were taken out, applied when they are back.
type Deferred<W> = Box<dyn FnOnce(&mut Callbacks<W>)>;
/// A pending timer: whether it is an interval, and its `Box<dyn FnMut(&mut W)>`.
type Timer = (bool, Box<dyn Any>);

/// The callbacks of one child or port, for a worker of type `W`.
struct Callbacks<W> {
    on_message: Option<MessageCallback<W>>,
    on_error: Option<ErrorCallback<W>>,
    on_close: Option<CloseCallback<W>>,
}

impl<W> Callbacks<W> {
    fn new() -> Self {
        Callbacks { on_message: None, on_error: None, on_close: None }
    }
}

/// What an entry keeps alive besides its callbacks: a child's handle, so that the child stays
/// reachable, or a port, so that it stays open.
enum Keep {
    Child(#[allow(dead_code, reason = "held, not read")] Rc<scope::Worker>),
    Port(#[allow(dead_code, reason = "held, not read")] Port),
}

struct Entry {
    #[allow(dead_code, reason = "held, not read")]
    keep: Keep,
    /// A `Callbacks<W>`; taken out while one of them runs.
    callbacks: Option<Box<dyn Any>>,
    /// Registrations made while the callbacks were taken out (from one of them): each a
    /// `Box<dyn FnOnce(&mut Callbacks<W>)>`, applied when they are put back.
    deferred: Vec<Box<dyn Any>>,
}

impl Entry {
    fn new<W: Worker>(keep: Keep) -> Self {
        Entry { keep, callbacks: Some(Box::new(Callbacks::<W>::new())), deferred: Vec::new() }
    }

    /// Applies `f` to the callbacks now, or when they are put back if one of them is running.
    fn register<W: Worker>(&mut self, f: impl FnOnce(&mut Callbacks<W>) + 'static) {
        match self.callbacks.as_mut().and_then(|c| c.downcast_mut::<Callbacks<W>>()) {
            Some(callbacks) => f(callbacks),
            None => {
                let deferred: Deferred<W> = Box::new(f);
                self.deferred.push(Box::new(deferred));
            }
        }
    }
}

thread_local! {
    /// Set by [`close`]: the events still to come in this call are discarded.
    static CLOSING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// The worker's state, created before its first event.
    static WORKER: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
    /// Live children, by id.
    static CHILDREN: RefCell<HashMap<u32, Entry>> = RefCell::new(HashMap::new());
    /// Ports with callbacks, by id.
    static PORTS: RefCell<HashMap<u32, Entry>> = RefCell::new(HashMap::new());
    /// Pending timers by id: whether it is an interval, and its `Box<dyn FnMut(&mut W)>`.
    static TIMERS: RefCell<HashMap<u32, Timer>> = RefCell::new(HashMap::new());
    /// Intervals cleared while their own callback ran.
    static CLEARED: RefCell<std::collections::HashSet<u32>> = RefCell::new(std::collections::HashSet::new());
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
        CHILDREN.with_borrow_mut(|children| children.insert(id, Entry::new::<W>(Keep::Child(handle.clone()))));
        Ok(Child { id, handle, _worker: std::marker::PhantomData })
    }

    /// The id this child's events carry ([`Source::Child`]).
    pub fn id(&self) -> u32 {
        self.id
    }

    fn with_callbacks(self, f: impl FnOnce(&mut Callbacks<W>) + 'static) -> Self {
        CHILDREN.with_borrow_mut(|children| {
            if let Some(entry) = children.get_mut(&self.id) {
                entry.register(f);
            }
        });
        self
    }

    /// Calls `f` with each message of type `T` the child posts (any serde type, or
    /// [`Received<T>`]). A message that does not decode goes to [`Worker::on_message_error`].
    pub fn on_message<T: FromMessage + 'static>(self, f: impl FnMut(&mut W, T) + 'static) -> Self {
        let source = Source::Child(self.id);
        self.with_callbacks(move |callbacks| callbacks.on_message = Some(typed(source, f)))
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
    ///
    /// A message the child refuses (its queue is full, or the message is too large) is
    /// dropped, and counted dropped by the host; [`try_post`](Self::try_post) tells the
    /// caller instead.
    pub fn post<T: Serialize + ?Sized>(&self, value: &T) {
        if let Err(PostError::Encode(why)) = self.try_post(value) {
            panic!("cannot encode message: {why}");
        }
    }

    /// Posts `value` to the child, as JSON, and says if it was refused.
    ///
    /// # Errors
    ///
    /// [`PostError::QueueFull`] or [`PostError::TooLarge`] if the child does not take it (it
    /// is dropped); [`PostError::Encode`] if it cannot be encoded.
    pub fn try_post<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), PostError> {
        self.post_encoded(Codec::Json, value)
    }

    /// Posts `value` to the child in `codec`.
    ///
    /// # Errors
    ///
    /// If `value` cannot be encoded in `codec`; nothing is sent then.
    pub fn post_encoded<T: Serialize + ?Sized>(&self, codec: Codec, value: &T) -> Result<(), PostError> {
        let (codec, data) = encode(codec, value)?;
        Ok(self.handle.post_message(message(codec, data))?)
    }

    /// Posts `value` to the child as JSON, transferring what is in `transfer`.
    ///
    /// # Errors
    ///
    /// If `value` cannot be encoded, or something in `transfer` was already transferred
    /// away; nothing is sent then.
    pub fn post_with<T: Serialize + ?Sized>(&self, value: &T, transfer: Transfer) -> Result<(), PostError> {
        Ok(self.handle.post_message(message_with(value, transfer)?)?)
    }

    /// Posts already-encoded bytes to the child, declared as `codec`.
    ///
    /// # Errors
    ///
    /// [`PostError::QueueFull`] or [`PostError::TooLarge`] if the child does not take it.
    pub fn post_bytes(&self, codec: Codec, data: impl Into<Vec<u8>>) -> Result<(), PostError> {
        Ok(self.handle.post_message(message(codec, data.into()))?)
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
        // Off wasm (the SDK's own unit tests) there is no host to report to.
        if !cfg!(target_family = "wasm") {
            return;
        }
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

    type Registry = std::thread::LocalKey<RefCell<HashMap<u32, Entry>>>;

    /// Runs `f` on `worker` and the callbacks registered for `id` in `registry` (taken out
    /// while `f` runs, so that `f` may register more); `None` if there are none. With
    /// `remove`, forgets the entry afterwards.
    fn with_entry<W: Worker, R>(
        worker: &mut W,
        registry: &'static Registry,
        id: u32,
        remove: bool,
        f: impl FnOnce(&mut W, &mut Callbacks<W>) -> R,
    ) -> Option<R> {
        let mut callbacks = registry.with_borrow_mut(|entries| entries.get_mut(&id)?.callbacks.take())?;
        let result = f(worker, callbacks.downcast_mut::<Callbacks<W>>().expect("one worker type per component"));
        let removed = registry.with_borrow_mut(|entries| {
            if remove {
                entries.remove(&id)
            } else {
                if let Some(entry) = entries.get_mut(&id) {
                    // What was registered while they were out applies now.
                    if let Some(typed) = callbacks.downcast_mut::<Callbacks<W>>() {
                        for deferred in entry.deferred.drain(..) {
                            if let Ok(deferred) = deferred.downcast::<Deferred<W>>() {
                                deferred(typed);
                            }
                        }
                    }
                    entry.callbacks = Some(callbacks);
                }
                None
            }
        });
        // Dropped outside the registry's borrow: dropping a port may close it.
        drop(removed);
        Some(result)
    }

    /// Dispatches one message event to `worker`; whether it was handled (false: its source
    /// child or port has been let go of, and the message is discarded).
    fn on_message<W: Worker>(worker: &mut W, source: Source, message: Incoming, error: Option<String>) -> bool {
        if let Some(reason) = error {
            let data = message.data.into_vec();
            worker.on_message_error(MessageError { source, codec: message.codec, data, reason });
            return true;
        }
        fn deliver<W>(message: Incoming) -> impl FnOnce(&mut W, &mut Callbacks<W>) {
            move |worker, callbacks| {
                if let Some(on_message) = &mut callbacks.on_message {
                    on_message(worker, message);
                }
            }
        }
        match source {
            // The common case decodes straight from the burst's bytes.
            Source::Parent => {
                match message.decode::<W::Message>() {
                    Ok(value) => worker.on_message(value),
                    Err((codec, data, reason)) => worker.on_message_error(MessageError { source, codec, data, reason }),
                }
                true
            }
            // A child or port this worker let go of can have messages in flight: they find no
            // entry and are discarded.
            Source::Child(id) => with_entry(worker, &CHILDREN, id, false, deliver::<W>(message)).is_some(),
            Source::Port(id) => with_entry(worker, &PORTS, id, false, deliver::<W>(message)).is_some(),
        }
    }

    use wasm_workers_protocol::{Header, HEADER_WORDS};

    /// `on-messages`: each event of the burst in turn, until the worker closes. Returns how
    /// many were discarded.
    pub fn on_messages<W: Worker>(burst: types::MessageBurst) -> u32 {
        let types::MessageBurst { headers, data, transfer, errors } = burst;
        let events = headers.len() / HEADER_WORDS;
        let mut data = Some(Rc::new(data));
        let mut transfer = transfer.into_iter();
        let mut errors = errors.into_iter().peekable();
        let mut at = 0;
        let mut discarded = 0;
        with_worker(|worker: &mut W| {
            for (index, header) in headers.chunks_exact(HEADER_WORDS).enumerate() {
                let Ok(header) = <&[u32; HEADER_WORDS]>::try_from(header) else { unreachable!() };
                let Header { source, codec, len, transferred } = Header::decode(header);
                let range = at..at + len as usize;
                at = range.end;
                // The last event takes the burst's own reference: a message that arrived
                // alone is the only view of its list, and moves out of it without a copy.
                let bytes = match &data {
                    Some(list) if index + 1 < events => Bytes::shared(list, range),
                    _ => data.take().map(|list| Bytes::within(list, range)).unwrap_or_default(),
                };
                let transfer = transfer.by_ref().take(transferred as usize).collect();
                let error = errors.next_if(|(event, _)| *event as usize == index).map(|(_, error)| error);
                let message = Incoming { codec, data: bytes, transfer };
                if CLOSING.get() || !on_message(worker, source, message, error) {
                    discarded += 1;
                }
            }
        });
        discarded
    }

    /// `on-start`.
    pub fn on_start<W: Worker>() {
        with_worker(|worker: &mut W| worker.on_start());
    }

    /// `on-error`.
    pub fn on_error<W: Worker>(source: types::Source, error: types::ErrorEvent) {
        let error = ErrorEvent { message: error.message, worker: error.worker, location: error.location };
        if let Source::Child(id) = Source::from(source) {
            let unhandled = with_worker(|worker: &mut W| {
                with_entry(worker, &CHILDREN, id, true, |worker: &mut W, callbacks| match &mut callbacks.on_error {
                    Some(on_error) => {
                        on_error(worker, error.clone());
                        false
                    }
                    None => true,
                })
            });
            // No entry: this worker terminated the child (and so gave up its events).
            if unhandled.unwrap_or(false) {
                // An unhandled `error` event is reported in the worker that owns the child.
                panic!("unhandled error in a child: {error}");
            }
        }
    }

    /// `on-close`.
    pub fn on_close<W: Worker>(source: types::Source) {
        let closed = |worker: &mut W, callbacks: &mut Callbacks<W>| {
            if let Some(on_close) = &mut callbacks.on_close {
                on_close(worker);
            }
        };
        match Source::from(source) {
            Source::Child(id) => {
                with_worker(|worker: &mut W| with_entry(worker, &CHILDREN, id, true, closed));
            }
            Source::Port(id) => {
                with_worker(|worker: &mut W| with_entry(worker, &PORTS, id, true, closed));
            }
            Source::Parent => {}
        }
    }

    /// `on-connect`.
    pub fn on_connect<W: Worker>(port: types::MessagePort) {
        let port = Port::from_handle(port);
        with_worker(|worker: &mut W| worker.on_connect(port));
    }

    /// `on-timeout`.
    pub fn on_timeout<W: Worker>(id: u32) {
        let Some((interval, mut callback)) = TIMERS.with_borrow_mut(|timers| timers.remove(&id)) else {
            return;
        };
        with_worker(|worker: &mut W| {
            if let Some(f) = callback.downcast_mut::<Box<dyn FnMut(&mut W)>>() {
                f(worker);
            }
        });
        // An interval stays set unless its callback cleared it.
        if interval && !CLEARED.with_borrow_mut(|cleared| cleared.remove(&id)) {
            TIMERS.with_borrow_mut(|timers| timers.insert(id, (interval, callback)));
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
                fn on_start() {
                    $crate::__private::dispatch::on_start::<$worker>()
                }

                fn on_messages(burst: $crate::__private::wasm_workers::worker::types::MessageBurst) -> u32 {
                    $crate::__private::dispatch::on_messages::<$worker>(burst)
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

                fn on_connect(port: $crate::__private::wasm_workers::worker::types::MessagePort) {
                    $crate::__private::dispatch::on_connect::<$worker>(port)
                }

                fn on_timeout(id: u32) {
                    $crate::__private::dispatch::on_timeout::<$worker>(id)
                }
            }

    $crate::__private::__export_handlers!(Handlers with_types_in $crate::__private);
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// What the test worker received: each message's bytes, where they were, and the
        /// message errors' reasons.
        static SEEN: RefCell<Vec<(usize, Vec<u8>)>> = const { RefCell::new(Vec::new()) };
        static ERRORS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    }

    #[derive(Default)]
    struct Keeper;

    impl Worker for Keeper {
        type Message = RawMessage;

        fn on_message(&mut self, message: RawMessage) {
            let data = message.data.into_vec();
            SEEN.with_borrow_mut(|seen| seen.push((data.as_ptr() as usize, data)));
        }

        fn on_message_error(&mut self, error: MessageError) {
            ERRORS.with_borrow_mut(|errors| errors.push(error.reason));
        }
    }

    /// A burst of raw messages from the parent, with `errors` as the host would send them.
    fn burst(messages: &[&[u8]], errors: &[(u32, &str)]) -> types::MessageBurst {
        types::MessageBurst {
            headers: messages.iter().flat_map(|m| [0, 0, 2, m.len() as u32, 0]).collect(),
            data: messages.concat(),
            transfer: Vec::new(),
            errors: errors.iter().map(|&(i, why)| (i, why.to_string())).collect(),
        }
    }

    #[test]
    fn a_message_that_arrived_alone_moves_out_of_its_burst_without_a_copy() {
        let burst = burst(&[b"alone"], &[]);
        let at = burst.data.as_ptr() as usize;
        assert_eq!(dispatch::on_messages::<Keeper>(burst), 0);
        assert_eq!(SEEN.take(), [(at, b"alone".to_vec())]);
    }

    #[test]
    fn each_event_of_a_burst_gets_its_own_bytes_in_order_and_errors_in_their_place() {
        let burst = burst(&[b"a", b"{bad", b"", b"bcd"], &[(1, "malformed JSON")]);
        assert_eq!(dispatch::on_messages::<Keeper>(burst), 0);
        let bytes: Vec<Vec<u8>> = SEEN.take().into_iter().map(|(_, bytes)| bytes).collect();
        assert_eq!(bytes, [b"a".to_vec(), Vec::new(), b"bcd".to_vec()]);
        assert_eq!(ERRORS.take(), ["malformed JSON"]);
    }
}
