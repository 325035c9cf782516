//! Messages: what `postMessage` sends, with the codec that says how to read it.

use crate::budget::Charge;
use std::fmt;

use thin_vec::ThinVec;

use super::port::MessagePort;
use crate::accounting::{DropReason, Ledger};
use crate::buffer::Buffer;

/// How a [`Message`]'s data is encoded (the WIT `codec`); shared with the guest SDK.
pub use wasm_workers_protocol::Codec;

/// A message between workers, or between the host program and a worker
/// (`postMessage(message, transfer)`).
///
/// Its data bytes are owned by the host while in flight: posting copies them out of the
/// sender once, delivering copies them into the receiver once. Its ports and buffers are
/// transferred: they move, and are never copied.
pub struct Message {
    /// How `data` is encoded.
    pub codec: Codec,
    /// The encoded message.
    pub data: Vec<u8>,
    /// Ports transferred with the message (a [`ThinVec`]: one word while empty, so that a
    /// queued message stays small).
    pub ports: ThinVec<MessagePort>,
    /// Buffers transferred with the message.
    pub buffers: ThinVec<Buffer>,
    /// Counted as posted in a host's ledger, and not yet settled (see [`crate::accounting`]).
    pub(crate) counted: bool,
    /// Its bytes' share of the sender's budget, until it is delivered (see [`crate::budget`]).
    pub(crate) charge: Charge,
}

impl Message {
    /// A message of `codec` with `data`, transferring nothing.
    pub fn new(codec: Codec, data: impl Into<Vec<u8>>) -> Self {
        Message {
            codec,
            data: data.into(),
            ports: ThinVec::new(),
            buffers: ThinVec::new(),
            counted: false,
            charge: Charge::default(),
        }
    }

    /// The message, transferring `port` too.
    pub fn with_port(mut self, port: MessagePort) -> Self {
        self.ports.push(port);
        self
    }

    /// The message, transferring `buffer` too.
    pub fn with_buffer(mut self, buffer: Buffer) -> Self {
        self.buffers.push(buffer);
        self
    }

    /// Counts the message as posted in `ledger`, unless it already is.
    pub(crate) fn count_posted(&mut self, ledger: &Ledger) {
        if !std::mem::replace(&mut self.counted, true) {
            ledger.posted(1);
        }
    }

    /// Takes back the count of a message that was never sent after all.
    pub(crate) fn uncount_posted(&mut self, ledger: &Ledger) {
        if std::mem::take(&mut self.counted) {
            ledger.unposted(1);
        }
    }

    /// Settles a posted message as delivered (`None`) or dropped for a reason.
    pub(crate) fn settle(&mut self, ledger: &Ledger, dropped: Option<DropReason>) {
        if std::mem::take(&mut self.counted) {
            match dropped {
                None => ledger.delivered(1),
                Some(reason) => ledger.dropped(reason, 1),
            }
        }
    }

    /// Releases every charge the message carries (its bytes, its buffers and ports): it has
    /// reached the host program, whose memory no worker's budget pays for.
    pub(crate) fn release_charges(&mut self) {
        self.charge.release();
        for buffer in &mut self.buffers {
            buffer.charge.release();
        }
        for port in &mut self.ports {
            port.charge.release();
        }
    }

    /// Prepares the message's ports for travel: each leaves its current holder.
    pub(crate) fn detach_ports(&mut self) {
        for port in &mut self.ports {
            port.detach();
        }
    }

    /// A JSON message holding `value`.
    ///
    /// # Errors
    ///
    /// If `value` cannot be serialized as JSON (a map with non-string keys, say).
    pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        Ok(Message::new(Codec::Json, serde_json::to_vec(value)?))
    }

    /// A JSON message from JSON text, checked to be well-formed.
    ///
    /// # Errors
    ///
    /// If `text` is not one well-formed JSON value.
    pub fn json_text(text: &str) -> Result<Self, serde_json::Error> {
        check_json(text.as_bytes())?;
        Ok(Message::new(Codec::Json, text.trim().as_bytes().to_vec()))
    }

    /// Decodes a JSON message into `T`.
    ///
    /// # Errors
    ///
    /// [`DecodeError::Codec`] if the message is not JSON; [`DecodeError::Data`] if its data
    /// is not a `T`.
    pub fn decode_json<T: serde::de::DeserializeOwned>(&self) -> Result<T, DecodeError> {
        if self.codec != Codec::Json {
            return Err(DecodeError::Codec { expected: Codec::Json, found: self.codec });
        }
        serde_json::from_slice(&self.data).map_err(|e| DecodeError::Data(e.to_string()))
    }

    /// The message as JSON text, if it is a well-formed JSON message.
    pub fn as_json_text(&self) -> Option<&str> {
        match self.codec {
            Codec::Json if check_json(&self.data).is_ok() => std::str::from_utf8(&self.data).ok(),
            _ => None,
        }
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(&self.data) {
            Ok(text) if self.codec == Codec::Json && text.len() <= 256 => write!(f, "Message(json {text}")?,
            _ => write!(f, "Message({} {} bytes", self.codec, self.data.len())?,
        }
        if !self.ports.is_empty() || !self.buffers.is_empty() {
            write!(f, ", {} ports, {} buffers", self.ports.len(), self.buffers.len())?;
        }
        f.write_str(")")
    }
}

/// Why a message cannot be decoded as what its receiver expects.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The message is in another codec than the one asked for.
    #[error("message is {found}, expected {expected}")]
    Codec {
        /// The codec asked for.
        expected: Codec,
        /// The codec the message carries.
        found: Codec,
    },
    /// The data does not decode.
    #[error("message data does not decode: {0}")]
    Data(String),
}

/// Checks that `data` is one well-formed JSON value, without building it: UTF-8 text (which
/// the parser alone does not check inside strings), and JSON.
pub(crate) fn check_json(data: &[u8]) -> Result<(), serde_json::Error> {
    let text = std::str::from_utf8(data)
        .map_err(|error| <serde_json::Error as serde::de::Error>::custom(format!("not UTF-8 text: {error}")))?;
    serde_json::from_str::<serde::de::IgnoredAny>(text).map(|_| ())
}
