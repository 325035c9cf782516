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
use alloc::vec::Vec;

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

/// Bytes per event's header in a burst's `events` list: [`HEADER_WORDS`] little-endian words.
pub const HEADER_BYTES: usize = HEADER_WORDS * 4;

/// Appends `headers` (each event's [`Header::to_bytes`], in order) and the count of events
/// to `events`, a burst's events' data: the list `message-burst.events`.
///
/// # Panics
///
/// If `headers` is not whole headers, or holds more than `u32::MAX` of them.
pub fn append_headers(events: &mut Vec<u8>, headers: &[u8]) {
    assert_eq!(headers.len() % HEADER_BYTES, 0, "whole headers");
    let count = u32::try_from(headers.len() / HEADER_BYTES).expect("at most u32::MAX events");
    events.reserve(headers.len() + 4);
    events.extend_from_slice(headers);
    events.extend_from_slice(&count.to_le_bytes());
}

/// The list `message-burst.events` taken apart: how many of its bytes are the events' data
/// (from the start), and the events' headers in order. `None` if the list is too short for
/// the count of events it ends with (a host never sends that).
pub fn split_events(events: &[u8]) -> Option<(usize, Headers<'_>)> {
    let (rest, count) = events.split_last_chunk::<4>()?;
    let count = u32::from_le_bytes(*count) as usize;
    let data_len = rest.len().checked_sub(count.checked_mul(HEADER_BYTES)?)?;
    Some((data_len, Headers(rest[data_len..].chunks_exact(HEADER_BYTES))))
}

/// The headers of a burst's events, in order (see [`split_events`]).
#[derive(Clone, Debug)]
pub struct Headers<'a>(core::slice::ChunksExact<'a, u8>);

impl Iterator for Headers<'_> {
    type Item = Header;

    #[inline]
    fn next(&mut self) -> Option<Header> {
        let bytes = self.0.next()?;
        Some(Header::from_bytes(bytes.try_into().ok()?))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl ExactSizeIterator for Headers<'_> {}

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

    /// The header's [`HEADER_BYTES`] bytes in a burst's `events` list: its words,
    /// little-endian.
    #[inline]
    pub fn to_bytes(&self) -> [u8; HEADER_BYTES] {
        let mut bytes = [0; HEADER_BYTES];
        for (to, word) in bytes.chunks_exact_mut(4).zip(self.encode()) {
            to.copy_from_slice(&word.to_le_bytes());
        }
        bytes
    }

    /// The header whose [`HEADER_BYTES`] bytes in a burst's `events` list are `bytes`.
    #[inline]
    pub fn from_bytes(bytes: &[u8; HEADER_BYTES]) -> Header {
        let word = |i: usize| u32::from_le_bytes([bytes[4 * i], bytes[4 * i + 1], bytes[4 * i + 2], bytes[4 * i + 3]]);
        Header::decode(&[word(0), word(1), word(2), word(3), word(4)])
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
                assert_eq!(Header::from_bytes(&header.to_bytes()), header);
                assert_eq!(header.to_bytes()[12..16], 12u32.to_le_bytes(), "the length is the fourth word");
            }
        }
        assert_eq!(Codec::from_word(99), Codec::Raw);
    }

    #[test]
    fn a_bursts_headers_follow_its_data_and_come_back_in_order() {
        let headers = [
            Header { source: Source::Parent, codec: Codec::Json, len: 1, transferred: 0 },
            Header { source: Source::Port(9), codec: Codec::Raw, len: 3, transferred: 2 },
        ];
        let mut events = alloc::vec![b'1', 1, 2, 3];
        let bytes: Vec<u8> = headers.iter().flat_map(Header::to_bytes).collect();
        append_headers(&mut events, &bytes);
        assert_eq!(events.len(), 4 + 2 * HEADER_BYTES + 4);
        assert_eq!(events[4..8], 0u32.to_le_bytes(), "the first header's first word, after the data");
        assert_eq!(events[events.len() - 4..], 2u32.to_le_bytes(), "the count comes last");
        let (data_len, found) = split_events(&events).expect("well formed");
        assert_eq!(data_len, 4);
        assert_eq!(found.len(), 2);
        assert_eq!(found.collect::<Vec<_>>(), headers);
    }

    #[test]
    fn a_burst_without_events_is_its_count_alone_and_a_short_one_is_refused() {
        let mut events = Vec::new();
        append_headers(&mut events, &[]);
        assert_eq!(events, 0u32.to_le_bytes());
        let (data_len, mut found) = split_events(&events).expect("well formed");
        assert_eq!((data_len, found.next()), (0, None));
        assert!(split_events(&[]).is_none());
        assert!(split_events(&[1, 2, 3]).is_none());
        // One event announced, but not the bytes of its header.
        assert!(split_events(&[0, 0, 0, 1, 0, 0, 0]).is_none());
        assert!(split_events(&u32::MAX.to_le_bytes()).is_none());
        assert_eq!(Codec::Postcard.name(), "postcard");
    }
}
