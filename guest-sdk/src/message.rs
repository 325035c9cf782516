//! Messages and codecs: what a worker posts and receives, how it is encoded, and what is
//! transferred with it (the chapter's `postMessage(message, transfer)` and `MessageEvent`).

#[allow(unused_imports)]
use crate::*;

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
    pub(crate) ports: Vec<Port>,
    pub(crate) buffers: Vec<Buffer>,
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
        Codec::StructuredClone => {
            return Err(PostError::Encode("the structured-clone codec is written by JavaScript workers only".into()))
        }
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
        Codec::StructuredClone => Err("a structured-clone message (from a JavaScript worker) is not read here".into()),
    }
}

pub(crate) fn message(codec: Codec, data: Vec<u8>) -> types::Message {
    types::Message { codec: codec.into(), data, transfer: Vec::new() }
}

/// Encodes `value` as JSON into a message transferring `transfer`.
pub(crate) fn message_with<T: Serialize + ?Sized>(value: &T, transfer: Transfer) -> Result<types::Message, PostError> {
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
