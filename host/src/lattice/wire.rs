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
use crate::messaging::Codec;

/// The sequence number header.
pub(super) const SEQ: &str = "Ww-Seq";
/// What a message on a link is: `message`, `closed`, `error` (from a worker), `release`
/// (to it).
pub(super) const KIND: &str = "Ww-Kind";
/// A message's codec (`json`, `postcard`, `raw`).
pub(super) const CODEC: &str = "Ww-Codec";
/// A part of a message larger than the server's payload limit: `i/n`, from 1. Its parts are
/// consecutive on the subject, and it is delivered once the last has arrived.
pub(super) const CHUNK: &str = "Ww-Chunk";
/// The ports a message transfers, as the ids of their links (comma-separated): see
/// [`transfer`](super::transfer).
pub(super) const PORTS: &str = "Ww-Ports";
/// The lengths of the buffers a message carries (comma-separated): their bytes follow the
/// message's data in the payload, in order.
pub(super) const BUFFERS: &str = "Ww-Buffers";
/// The most ports, and the most buffers, one message may carry across hosts.
pub(super) const MAX_TRANSFERS: usize = 1024;

/// Room left in each NATS message for the headers.
const HEADER_ROOM: usize = 512;

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
    /// Ports handed to the worker at start: each label, and the port's link
    /// ([`transfer`](super::transfer)).
    #[serde(default)]
    pub(super) channels: Vec<(String, String)>,
    /// Where the locations the worker names resolve: the origin's id on the lattice, and the
    /// hash of the component they resolve beside.
    pub(super) origin: (String, String),
}

/// A placed worker's host asks its origin for the component at `location`, relative to the
/// component `base` (a hash the origin placed), on `P.origin.<id>.fetch`.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct FetchRequest {
    pub(super) base: String,
    pub(super) location: String,
}

/// The answer to a [`FetchRequest`]: the component's hash (in the components' bucket) and
/// where the origin found it, or why not.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct FetchReply {
    pub(super) found: Result<(String, String), String>,
}

/// The answer to a [`SpawnRequest`].
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct SpawnReply {
    /// Why it did not start; `None` if it did.
    pub(super) error: Option<String>,
    /// The host's free worker slots after this one.
    pub(super) free: usize,
    /// How many workers the host has started since it joined, this one included: says
    /// whether this answer is newer than the host's last advertisement.
    pub(super) started: u64,
    /// How many messages the parent may send ahead of the host's credits (on the worker's
    /// `credit` subject, each a count of messages taken into the worker's queue).
    pub(super) window: u64,
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
    /// On a worker's `in` subject: its parent lets go of it; after the messages before.
    Release,
    /// Nothing but its number: sent on every link after a reconnection, so that messages
    /// lost at the end of a run are a gap too, not only those lost between two that arrive.
    Sync,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Message => "message",
            Kind::Closed => "closed",
            Kind::Error => "error",
            Kind::Release => "release",
            Kind::Sync => "sync",
        }
    }
}

/// The headers of the `seq`th message on a subject, of `kind`, with `codec`, and `extra`.
fn headers(seq: u64, kind: Kind, codec: Codec, extra: &[(&'static str, String)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(SEQ, seq.to_string().as_str());
    // A message of JSON is the common case: neither header is sent for it.
    if kind != Kind::Message {
        headers.insert(KIND, kind.name());
    }
    if codec != Codec::Json {
        headers.insert(CODEC, codec.name());
    }
    for (name, value) in extra {
        headers.insert(*name, value.as_str());
    }
    headers
}

/// A message as it travels: its codec, its payload (its data, then the bytes of the buffers
/// it carries), and the headers that say what else it transfers.
#[derive(Debug)]
pub(super) struct Envelope {
    pub(super) codec: Codec,
    pub(super) payload: Vec<u8>,
    /// The links of the ports it transfers.
    pub(super) ports: Vec<String>,
    /// The lengths of the buffers at the end of `payload`.
    pub(super) buffers: Vec<usize>,
}

impl Envelope {
    /// A message that transfers nothing.
    pub(super) fn plain(codec: Codec, payload: Vec<u8>) -> Self {
        Envelope { codec, payload, ports: Vec::new(), buffers: Vec::new() }
    }

    fn extra(&self) -> Vec<(&'static str, String)> {
        let mut extra = Vec::new();
        if !self.ports.is_empty() {
            extra.push((PORTS, self.ports.join(",")));
        }
        if !self.buffers.is_empty() {
            extra.push((BUFFERS, self.buffers.iter().map(usize::to_string).collect::<Vec<_>>().join(",")));
        }
        extra
    }
}

/// The NATS messages that carry one message or event of `kind`: one, or if its payload does
/// not fit in `max_payload` bytes, as many parts as it takes. Numbered from `*seq + 1`; `*seq`
/// is left at the last number used.
pub(super) fn parts(
    seq: &mut u64,
    kind: Kind,
    envelope: Envelope,
    max_payload: usize,
) -> Vec<(HeaderMap, bytes::Bytes)> {
    let chunk = max_payload.saturating_sub(HEADER_ROOM).max(HEADER_ROOM);
    let extra = envelope.extra();
    let codec = envelope.codec;
    let data = bytes::Bytes::from(envelope.payload);
    if data.len() <= chunk {
        *seq += 1;
        return vec![(headers(*seq, kind, codec, &extra), data)];
    }
    let count = data.len().div_ceil(chunk);
    (0..count)
        .map(|i| {
            *seq += 1;
            // What it transfers is said once, on its first part.
            let mut headers = headers(*seq, kind, codec, if i == 0 { &extra } else { &[] });
            headers.insert(CHUNK, format!("{}/{count}", i + 1).as_str());
            (headers, data.slice(i * chunk..((i + 1) * chunk).min(data.len())))
        })
        .collect()
}

impl LinkError {
    /// How many messages a loss took: those skipped, and the one that showed it if it was a
    /// message (a part of a large message counts as one).
    pub(super) fn lost(skipped: u64, then: Kind) -> usize {
        (skipped + u64::from(then == Kind::Message)) as usize
    }
}

/// Why a link ends.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum LinkError {
    /// This many messages were skipped: lost in transit. The one that showed it, of the kind
    /// given, is not taken either (the link ends).
    Lost(u64, Kind),
    /// A message larger than the receiver accepts (its parts are dropped).
    TooLarge,
    /// Something arrived that cannot be read.
    Broken(String),
}

/// One subject's incoming side: checks the numbers, puts parts together.
#[derive(Debug)]
pub(super) struct Incoming {
    sequence: Sequence,
    /// The parts so far of a message in parts: its kind, count, and what the first part said.
    partial: Option<(Kind, u64, Envelope)>,
    /// The largest message it puts together.
    max_size: usize,
    /// The rest of a message refused as too large is skipped, to its last part.
    skipping: bool,
}

impl Incoming {
    pub(super) fn new(max_size: usize) -> Self {
        Incoming { sequence: Sequence::default(), partial: None, max_size, skipping: false }
    }

    /// Takes one NATS message: the whole message or event it completes, if it completes one.
    pub(super) fn take(&mut self, message: &async_nats::Message) -> Result<Option<(Kind, Envelope)>, LinkError> {
        let (seq, kind, codec) = read_headers(message).map_err(LinkError::Broken)?;
        match self.sequence.take(seq).map_err(LinkError::Broken)? {
            0 => {}
            skipped => return Err(LinkError::Lost(skipped, kind)),
        }
        let chunk =
            message.headers.as_ref().and_then(|headers| headers.get(CHUNK)).map(|value| value.as_str().to_string());
        let Some(chunk) = chunk else {
            if self.partial.is_some() {
                return Err(LinkError::Broken("a message arrived in the middle of another's parts".to_string()));
            }
            if message.payload.len() > self.max_size {
                return Err(LinkError::TooLarge);
            }
            let envelope = transfers(message, codec, message.payload.to_vec()).map_err(LinkError::Broken)?;
            return Ok(Some((kind, envelope)));
        };
        let (index, count) = chunk
            .split_once('/')
            .and_then(|(i, n)| Some((i.parse::<u64>().ok()?, n.parse::<u64>().ok()?)))
            .filter(|&(i, n)| i >= 1 && i <= n)
            .ok_or_else(|| LinkError::Broken(format!("a part numbered `{chunk}`")))?;
        if self.skipping && index > 1 {
            // The rest of a message already refused as too large (once).
            self.skipping = index < count;
            return Ok(None);
        }
        self.skipping = false;
        if index == 1 {
            if self.partial.is_some() {
                return Err(LinkError::Broken("a message began in the middle of another's parts".to_string()));
            }
            let envelope = transfers(message, codec, Vec::new()).map_err(LinkError::Broken)?;
            self.partial = Some((kind, count, envelope));
        }
        let Some((_, expected, Envelope { payload: bytes, .. })) = &mut self.partial else {
            return Err(LinkError::Broken(format!("part {index} of {count} without its first")));
        };
        if *expected != count {
            return Err(LinkError::Broken(format!("part {index} of {count} in a message of {expected}")));
        }
        if bytes.len() + message.payload.len() > self.max_size {
            self.partial = None;
            self.skipping = index < count;
            return Err(LinkError::TooLarge);
        }
        bytes.extend_from_slice(&message.payload);
        if index < count {
            return Ok(None);
        }
        let (kind, _, envelope) = self.partial.take().expect("checked above");
        check_buffers(&envelope).map_err(LinkError::Broken)?;
        Ok(Some((kind, envelope)))
    }
}

/// The envelope of a message whose first (or only) part is `message`: what it transfers, as
/// its headers say, with `payload`.
fn transfers(message: &async_nats::Message, codec: Codec, payload: Vec<u8>) -> Result<Envelope, String> {
    let header = |name: &str| {
        message.headers.as_ref().and_then(|headers| headers.get(name)).map(|value| value.as_str().to_string())
    };
    let ports: Vec<String> = match header(PORTS) {
        Some(list) => list.split(',').map(str::to_string).collect(),
        None => Vec::new(),
    };
    if ports.len() > MAX_TRANSFERS || !ports.iter().all(|port| super::valid_id(port)) {
        return Err(format!("a message transferring {} ports, or a port named unreadably", ports.len()));
    }
    let buffers: Vec<usize> = match header(BUFFERS) {
        Some(list) => list
            .split(',')
            .map(|len| len.parse::<usize>().map_err(|_| format!("a buffer of length `{len}`")))
            .collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    if buffers.len() > MAX_TRANSFERS {
        return Err(format!("a message carrying {} buffers", buffers.len()));
    }
    let envelope = Envelope { codec, payload, ports, buffers };
    if message.headers.as_ref().and_then(|headers| headers.get(CHUNK)).is_none() {
        check_buffers(&envelope)?;
    }
    Ok(envelope)
}

/// Checks that the buffers an envelope says it carries fit in its payload.
fn check_buffers(envelope: &Envelope) -> Result<(), String> {
    let total = envelope.buffers.iter().try_fold(0usize, |sum, len| sum.checked_add(*len));
    match total {
        Some(total) if total <= envelope.payload.len() => Ok(()),
        _ => Err("a message whose buffers are longer than it".to_string()),
    }
}

/// A received NATS message's sequence number, kind and codec.
fn read_headers(message: &async_nats::Message) -> Result<(u64, Kind, Codec), String> {
    let headers = message.headers.as_ref().ok_or("a message without headers")?;
    let seq = headers
        .get(SEQ)
        .and_then(|value| value.as_str().parse::<u64>().ok())
        .ok_or("a message without a sequence number")?;
    let kind = match headers.get(KIND).map(|value| value.as_str()) {
        Some("message") | None => Kind::Message,
        Some("closed") => Kind::Closed,
        Some("error") => Kind::Error,
        Some("release") => Kind::Release,
        Some("sync") => Kind::Sync,
        Some(other) => return Err(format!("an event of unknown kind `{other}`")),
    };
    let codec = match headers.get(CODEC).map(|value| value.as_str()) {
        Some("json") | None => Codec::Json,
        Some("postcard") => Codec::Postcard,
        Some("raw") => Codec::Raw,
        Some("structured-clone") => Codec::StructuredClone,
        Some(other) => return Err(format!("a message of unknown codec `{other}`")),
    };
    Ok((seq, kind, codec))
}

/// Checks sequence numbers on one subject.
#[derive(Debug, Default)]
struct Sequence {
    last: u64,
}

impl Sequence {
    /// Takes `seq`: how many messages were skipped before it (0 if none). A number at or
    /// below the last (a duplicate) is an error.
    fn take(&mut self, seq: u64) -> Result<u64, String> {
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

    fn nats_message(headers: HeaderMap, payload: bytes::Bytes) -> async_nats::Message {
        async_nats::Message {
            subject: "s".into(),
            reply: None,
            length: payload.len(),
            payload,
            headers: Some(headers),
            status: None,
            description: None,
        }
    }

    #[test]
    fn a_message_larger_than_the_payload_limit_travels_in_parts_and_arrives_whole() {
        let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let mut seq = 0;
        let pieces = parts(&mut seq, Kind::Message, Envelope::plain(Codec::Raw, data.clone()), 2048);
        assert_eq!(pieces.len(), 7, "1,536 bytes a part");
        assert_eq!(seq, 7);
        let mut incoming = Incoming::new(1 << 20);
        let mut whole = None;
        for (i, (headers, payload)) in pieces.into_iter().enumerate() {
            let taken = incoming.take(&nats_message(headers, payload)).unwrap();
            assert_eq!(taken.is_some(), i == 6, "only the last part completes it");
            whole = taken;
        }
        let (kind, message) = whole.unwrap();
        assert_eq!(kind, Kind::Message);
        assert_eq!(message.payload, data);
        // And a small one after it, in one piece.
        let (headers, payload) =
            parts(&mut seq, Kind::Closed, Envelope::plain(Codec::Raw, b"closed".to_vec()), 2048).remove(0);
        assert_eq!(incoming.take(&nats_message(headers, payload)).unwrap().unwrap().1.payload, b"closed");
    }

    #[test]
    fn a_skipped_number_is_a_loss_and_an_oversized_message_is_refused() {
        let mut seq = 0;
        let json = |text: &[u8]| Envelope::plain(Codec::Json, text.to_vec());
        let mut all = parts(&mut seq, Kind::Message, json(b"1"), 2048);
        all.extend(parts(&mut seq, Kind::Message, json(b"2"), 2048));
        all.extend(parts(&mut seq, Kind::Message, json(b"3"), 2048));
        let mut incoming = Incoming::new(1 << 20);
        let (headers, payload) = all.remove(0);
        assert!(incoming.take(&nats_message(headers, payload)).unwrap().is_some());
        let (headers, payload) = all.remove(1);
        assert_eq!(incoming.take(&nats_message(headers, payload)).unwrap_err(), LinkError::Lost(1, Kind::Message));

        let mut seq = 0;
        let mut incoming = Incoming::new(3000);
        let mut results = parts(&mut seq, Kind::Message, Envelope::plain(Codec::Raw, vec![0; 5000]), 2048)
            .into_iter()
            .map(|(headers, payload)| incoming.take(&nats_message(headers, payload)));
        assert!(results.next().unwrap().unwrap().is_none());
        assert_eq!(results.next().unwrap().unwrap_err(), LinkError::TooLarge);
        // Refused once: its other parts are skipped, and the next message arrives whole.
        let rest: Vec<_> = results.collect();
        assert_eq!(rest.len(), 2);
        assert!(rest.into_iter().all(|result| result.unwrap().is_none()));
        let (headers, payload) =
            parts(&mut seq, Kind::Message, Envelope::plain(Codec::Raw, b"next".to_vec()), 2048).remove(0);
        assert_eq!(incoming.take(&nats_message(headers, payload)).unwrap().unwrap().1.payload, b"next");
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
