//! What the wasm-workers host (`wasm-workers`) and its guest SDK (`wasm-workers-guest`)
//! agree on beyond the WIT types: the codec and its names, where an event comes from, and
//! the layout of a `message-burst`'s header words, and the [`task`] protocol. Each is written
//! once, here; the host encodes bursts with [`Header::encode`] and the SDK decodes them with
//! [`Header::decode`].
//!
//! `no_std` (with `alloc`, for the task protocol's JSON): it builds for the host and for
//! `wasm32-wasip2` guests alike.

#![no_std]
#![warn(missing_docs)]

extern crate alloc;

use alloc::string::String;

pub mod task;

use core::fmt;

/// How a message's data is encoded (the WIT `codec`). It travels with the data, so that a
/// receiver tells a message it can decode from one it cannot (a `messageerror`, never a trap).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// UTF-8 JSON text. The host checks well-formedness before a worker receives it.
    Json,
    /// postcard, a compact binary serde encoding, for Rust-to-Rust traffic.
    Postcard,
    /// Uninterpreted bytes.
    Raw,
    /// The structured-clone encoding of the JavaScript worker scope, for JavaScript to
    /// JavaScript: passed through by the host unread.
    StructuredClone,
}

impl Codec {
    /// Its name, as messages and errors write it: `json`, `postcard`, `raw`,
    /// `structured-clone`.
    pub const fn name(self) -> &'static str {
        match self {
            Codec::Json => "json",
            Codec::Postcard => "postcard",
            Codec::Raw => "raw",
            Codec::StructuredClone => "structured-clone",
        }
    }

    /// Its header word in a burst.
    pub const fn word(self) -> u32 {
        match self {
            Codec::Json => 0,
            Codec::Postcard => 1,
            Codec::Raw => 2,
            Codec::StructuredClone => 3,
        }
    }

    /// The codec of a header word; an unknown word is [`Codec::Raw`] (bytes read as they are).
    pub const fn from_word(word: u32) -> Codec {
        match word {
            0 => Codec::Json,
            1 => Codec::Postcard,
            3 => Codec::StructuredClone,
            _ => Codec::Raw,
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A worker's runtime error (the chapter's `ErrorEvent`, the WIT `error-event`): it trapped,
/// or could not start. Shown as ``worker `name` (location) failed: message``, with
/// `:line:column` after the location when the worker reported them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorEvent {
    /// What went wrong: the trap, and for a guest panic the panic message.
    pub message: String,
    /// The failed worker's name.
    pub worker: String,
    /// The location of the failed worker's component.
    pub location: String,
    /// The line (from 1) of the script where it failed, for a guest that reports it (a
    /// script's uncaught exception); 0 if unknown.
    pub lineno: u32,
    /// The column (from 1) in that line; 0 if unknown.
    pub colno: u32,
}

impl ErrorEvent {
    /// An error at no known line of the worker's script.
    pub fn new(message: String, worker: String, location: String) -> Self {
        ErrorEvent { message, worker, location, lineno: 0, colno: 0 }
    }
}

impl fmt::Display for ErrorEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "worker `{}` ({}", self.worker, self.location)?;
        if self.lineno > 0 {
            write!(f, ":{}:{}", self.lineno, self.colno)?;
        }
        write!(f, ") failed: {}", self.message)
    }
}

impl core::error::Error for ErrorEvent {}

/// Where an event came from, as a worker sees it (the WIT `source`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// The worker's parent (a worker, or the host program).
    Parent,
    /// A child worker, by its id in the parent.
    Child(u32),
    /// A message port the worker holds, by its id there.
    Port(u32),
}

/// Header words per event of a `message-burst` (the layout documented on `message-burst` in
/// `wit/worker.wit`): source kind, source id, codec, data length, how many objects were
/// transferred.
pub const HEADER_WORDS: usize = 5;

/// The source kinds of a header's first word.
const PARENT: u32 = 0;
const CHILD: u32 = 1;
const PORT: u32 = 2;

/// One event's header in a burst.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Where the message came from.
    pub source: Source,
    /// How its data is encoded.
    pub codec: Codec,
    /// Its bytes in the burst's data list, after the previous events' bytes.
    pub len: u32,
    /// How many of the burst's transferred objects are its own, after the previous events'.
    pub transferred: u32,
}

impl Header {
    /// The header's [`HEADER_WORDS`] words.
    pub const fn encode(&self) -> [u32; HEADER_WORDS] {
        let (kind, id) = match self.source {
            Source::Parent => (PARENT, 0),
            Source::Child(id) => (CHILD, id),
            Source::Port(id) => (PORT, id),
        };
        [kind, id, self.codec.word(), self.len, self.transferred]
    }

    /// The header of `words` (the [`HEADER_WORDS`] of one event). An unknown source kind is
    /// read as a port (whose unknown id the SDK finds no entry for), an unknown codec as raw.
    pub const fn decode(words: &[u32; HEADER_WORDS]) -> Header {
        let &[kind, id, codec, len, transferred] = words;
        let source = match kind {
            PARENT => Source::Parent,
            CHILD => Source::Child(id),
            _ => Source::Port(id),
        };
        Header { source, codec: Codec::from_word(codec), len, transferred }
    }

    /// The byte length of the event whose header is `words` (its fourth word).
    pub const fn len_of(words: &[u32; HEADER_WORDS]) -> u32 {
        words[3]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip() {
        for source in [Source::Parent, Source::Child(7), Source::Port(u32::MAX)] {
            for codec in [Codec::Json, Codec::Postcard, Codec::Raw] {
                let header = Header { source, codec, len: 12, transferred: 3 };
                assert_eq!(Header::decode(&header.encode()), header);
                assert_eq!(Header::len_of(&header.encode()), 12);
            }
        }
        assert_eq!(Codec::from_word(99), Codec::Raw);
        assert_eq!(Codec::Postcard.name(), "postcard");
    }
}
