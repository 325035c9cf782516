//! What travels on the lattice's subjects: the spawn request and its answer (JSON), and
//! messages and events as NATS messages whose payload is the message's data and whose
//! headers say the rest.
//!
//! Every message on a worker's `in` or `out` subject carries `Ww-Seq`, counting from 1 on
//! that subject. Core NATS keeps one publisher's order but may lose messages (a slow
//! consumer, a server restart): a receiver that sees a number skipped ends the link and counts
//! the missing messages dropped as [`LinkLost`](crate::DropReason::LinkLost).

use async_nats::HeaderMap;
use serde::{Deserialize, Serialize};

use crate::limits::Limits;
use crate::messaging::{Codec, Message};

/// The sequence number header.
pub(super) const SEQ: &str = "Ww-Seq";
/// What an `out` message is: `message`, `closed`, `error`.
pub(super) const KIND: &str = "Ww-Kind";
/// A message's codec (`json`, `postcard`, `raw`).
pub(super) const CODEC: &str = "Ww-Codec";

/// A request to start a worker on a host.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct SpawnRequest {
    /// The worker's id on the lattice, which names its subjects.
    pub(super) uid: String,
    /// The SHA-256 of its component, in hex: its name in the components' bucket.
    pub(super) component: String,
    /// Where the placing side loaded the component from, for diagnostics.
    pub(super) location: String,
    pub(super) name: String,
    pub(super) limits: WireLimits,
    /// The placing host's id.
    pub(super) from: String,
}

/// The answer to a [`SpawnRequest`].
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct SpawnReply {
    /// Why it did not start; `None` if it did.
    pub(super) error: Option<String>,
    /// The host's free worker slots after this one.
    pub(super) free: usize,
}

/// [`Limits`] as they travel.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct WireLimits {
    memory: Option<usize>,
    table_elements: Option<usize>,
    instances: Option<usize>,
    children: Option<usize>,
    queued_messages: Option<usize>,
    queued_bytes: Option<usize>,
    message_size: Option<usize>,
    deadline_ms: Option<u64>,
}

impl From<Limits> for WireLimits {
    fn from(limits: Limits) -> Self {
        WireLimits {
            memory: limits.memory,
            table_elements: limits.table_elements,
            instances: limits.instances,
            children: limits.children,
            queued_messages: limits.queued_messages,
            queued_bytes: limits.queued_bytes,
            message_size: limits.message_size,
            deadline_ms: limits.deadline.map(|deadline| deadline.as_millis() as u64),
        }
    }
}

impl From<WireLimits> for Limits {
    fn from(limits: WireLimits) -> Self {
        Limits {
            memory: limits.memory,
            table_elements: limits.table_elements,
            instances: limits.instances,
            children: limits.children,
            queued_messages: limits.queued_messages,
            queued_bytes: limits.queued_bytes,
            message_size: limits.message_size,
            deadline: limits.deadline_ms.map(std::time::Duration::from_millis),
        }
    }
}

/// The kinds of event on a worker's `out` subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// A message the worker posted to its parent.
    Message,
    /// The worker closed, or ended idle, or was terminated (the payload says which).
    Closed,
    /// The worker failed (the payload is the error's message).
    Error,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Message => "message",
            Kind::Closed => "closed",
            Kind::Error => "error",
        }
    }
}

/// The headers of the `seq`th message on a subject, of `kind`, with `codec`.
pub(super) fn headers(seq: u64, kind: Kind, codec: Codec) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(SEQ, seq.to_string().as_str());
    headers.insert(KIND, kind.name());
    headers.insert(CODEC, codec.name());
    headers
}

/// What a received NATS message says: its sequence number, kind and the message itself.
pub(super) fn read(message: &async_nats::Message) -> Result<(u64, Kind, Message), String> {
    let headers = message.headers.as_ref().ok_or("a message without headers")?;
    let seq = headers
        .get(SEQ)
        .and_then(|value| value.as_str().parse::<u64>().ok())
        .ok_or("a message without a sequence number")?;
    let kind = match headers.get(KIND).map(|value| value.as_str()) {
        Some("message") | None => Kind::Message,
        Some("closed") => Kind::Closed,
        Some("error") => Kind::Error,
        Some(other) => return Err(format!("an event of unknown kind `{other}`")),
    };
    let codec = match headers.get(CODEC).map(|value| value.as_str()) {
        Some("json") | None => Codec::Json,
        Some("postcard") => Codec::Postcard,
        Some("raw") => Codec::Raw,
        Some(other) => return Err(format!("a message of unknown codec `{other}`")),
    };
    Ok((seq, kind, Message::new(codec, message.payload.to_vec())))
}

/// Checks sequence numbers on one subject.
#[derive(Debug, Default)]
pub(super) struct Sequence {
    last: u64,
}

impl Sequence {
    /// Takes `seq`: how many messages were skipped before it (0 if none). A number at or
    /// below the last (a duplicate) is an error.
    pub(super) fn take(&mut self, seq: u64) -> Result<u64, String> {
        if seq <= self.last {
            return Err(format!("message {seq} arrived after {}", self.last));
        }
        let skipped = seq - self.last - 1;
        self.last = seq;
        Ok(skipped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sequence_counts_what_was_skipped_and_refuses_going_back() {
        let mut sequence = Sequence::default();
        assert_eq!(sequence.take(1), Ok(0));
        assert_eq!(sequence.take(2), Ok(0));
        assert_eq!(sequence.take(5), Ok(2));
        assert!(sequence.take(5).is_err());
        assert!(sequence.take(3).is_err());
    }

    #[test]
    fn limits_travel_whole() {
        let limits = Limits {
            memory: Some(16 << 20),
            children: Some(3),
            deadline: Some(std::time::Duration::from_millis(250)),
            ..Limits::default()
        };
        let back: Limits =
            serde_json::from_slice::<WireLimits>(&serde_json::to_vec(&WireLimits::from(limits)).unwrap())
                .unwrap()
                .into();
        assert_eq!(back, limits);
    }
}
