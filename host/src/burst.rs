//! A burst: the message events one `on-messages` call delivers, assembled in the wire form of
//! the WIT record `message-burst` (one list of bytes: the events' data, then five header words
//! per event; and, only when there are any, a list of transferred objects and one of
//! deserialization errors).
//!
//! A worker keeps one `Burst` for its whole life and clears it after each call, so that a
//! stream of small messages costs no allocation per burst on the receiving side.

use crate::bindings::types;
use wasm_workers_protocol::{append_headers, Codec, Header, Source, HEADER_BYTES};

/// A data list whose capacity is over this is not kept for the next burst: one large message
/// must not pin its allocation in a worker that then receives only small ones.
const KEPT_DATA_CAPACITY: usize = 64 * 1024;

/// The events of one `on-messages` call, in order.
pub(crate) struct Burst {
    /// The record, whose headers and optional lists are filled in by [`wire`](Self::wire).
    wire: types::MessageBurst,
    /// The events' headers ([`Header::to_bytes`]), until they go into the record after the data.
    headers: Vec<u8>,
    /// How many bytes of `wire.events` are the events' data (the rest, if any, is the headers
    /// [`wire`](Self::wire) appended).
    data_len: usize,
    /// The events' transferred objects, until they go into the record.
    transfer: Vec<types::Transferable>,
    /// The events' deserialization errors, until they go into the record.
    errors: Vec<(u32, String)>,
    /// Whether each event's message was counted as posted (see [`crate::accounting`]), to
    /// settle each exactly once when the call is over.
    counted: Vec<bool>,
}

impl Burst {
    /// An empty burst.
    pub(crate) fn new() -> Self {
        Burst {
            wire: types::MessageBurst { events: Vec::new(), transfer: None, errors: None },
            headers: Vec::new(),
            data_len: 0,
            transfer: Vec::new(),
            errors: Vec::new(),
            counted: Vec::new(),
        }
    }

    /// How many events it holds.
    pub(crate) fn len(&self) -> usize {
        self.counted.len()
    }

    /// Appends an event: a message from `source`, with `data` and what it transferred (already
    /// lowered into the receiving worker's table), or a `messageerror` if `error` is set.
    /// `data` is moved rather than copied when it is the burst's first (its headers then
    /// follow it in the same allocation, grown if need be: for a large message, by the
    /// allocator's remapping rather than a copy).
    pub(crate) fn push(
        &mut self,
        source: Source,
        codec: Codec,
        data: Vec<u8>,
        transferred: u32,
        error: Option<String>,
        counted: bool,
    ) {
        debug_assert!(u32::try_from(data.len()).is_ok(), "the caller refuses what a guest cannot hold");
        let len = data.len() as u32;
        if let Some(error) = error {
            self.errors.push((self.len() as u32, error));
        }
        self.headers.extend_from_slice(&Header { source, codec, len, transferred }.to_bytes());
        // Headers a `wire` appended go: the data comes first.
        self.wire.events.truncate(self.data_len);
        if self.wire.events.is_empty() && data.capacity() >= self.wire.events.capacity() {
            // Moved, not copied: a large message costs no extra copy.
            self.wire.events = data;
        } else {
            self.wire.events.extend_from_slice(&data);
        }
        self.data_len = self.wire.events.len();
        self.counted.push(counted);
    }

    /// Where the transferred objects of the next event go.
    pub(crate) fn transfer(&mut self) -> &mut Vec<types::Transferable> {
        &mut self.transfer
    }

    /// The record to pass to `on-messages`: the headers follow the data, and the optional
    /// lists are `none` when they would be empty (an empty list still costs a call into the
    /// guest to allocate it).
    pub(crate) fn wire(&mut self) -> &types::MessageBurst {
        self.wire.events.truncate(self.data_len);
        append_headers(&mut self.wire.events, &self.headers);
        fill(&mut self.wire.transfer, &mut self.transfer);
        fill(&mut self.wire.errors, &mut self.errors);
        &self.wire
    }

    /// How many bytes of data its events hold together.
    pub(crate) fn data_len(&self) -> usize {
        self.data_len
    }

    /// The bytes of the events from `index` on.
    pub(crate) fn bytes_from(&self, index: usize) -> usize {
        let headers = self.headers.chunks_exact(HEADER_BYTES).skip(index);
        headers.map(|header| header.try_into().map_or(0, |h| Header::from_bytes(h).len as usize)).sum()
    }

    /// How many of the events from `index` on were counted as posted.
    pub(crate) fn counted_from(&self, index: usize) -> usize {
        self.counted.iter().skip(index).filter(|&&counted| counted).count()
    }

    /// How many of the events before `index` were counted as posted.
    pub(crate) fn counted_before(&self, index: usize) -> usize {
        self.counted.iter().take(index).filter(|&&counted| counted).count()
    }

    /// Empties it for the next call, keeping its allocations unless the data list grew large.
    /// The transferred resources were handed to the guest by the call (or are owned by the
    /// table, if the call failed): clearing forgets their handles.
    pub(crate) fn clear(&mut self) {
        self.headers.clear();
        self.data_len = 0;
        unfill(&mut self.wire.transfer, &mut self.transfer);
        unfill(&mut self.wire.errors, &mut self.errors);
        self.counted.clear();
        if self.wire.events.capacity() > KEPT_DATA_CAPACITY {
            self.wire.events = Vec::new();
        } else {
            self.wire.events.clear();
        }
    }
}

/// Moves what `pending` holds into the record's optional list `list`, which stays `none` if
/// there is nothing.
fn fill<T>(list: &mut Option<Vec<T>>, pending: &mut Vec<T>) {
    match list {
        Some(list) => list.append(pending),
        None if pending.is_empty() => {}
        None => *list = Some(std::mem::take(pending)),
    }
}

/// Empties the record's optional list `list` back into `pending`, keeping its allocation.
fn unfill<T>(list: &mut Option<Vec<T>>, pending: &mut Vec<T>) {
    if let Some(mut list) = list.take() {
        list.clear();
        *pending = list;
    }
    pending.clear();
}

/// Asks the CPU to start loading the first cache line of `data`, where that is supported.
/// A hint only: it never faults and changes nothing but timing.
#[inline]
pub(crate) fn prefetch(data: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht0` has no architectural effect and cannot fault, whatever the address;
    // SSE, which provides it, is part of the x86_64 baseline.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(data.as_ptr().cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_laid_out_as_the_wit_documents() {
        let mut burst = Burst::new();
        burst.push(Source::Parent, Codec::Json, b"1".to_vec(), 0, None, true);
        burst.push(Source::Child(7), Codec::Postcard, vec![1, 2, 3], 2, None, false);
        burst.push(Source::Port(9), Codec::Raw, Vec::new(), 0, Some("why".into()), true);
        let wire = burst.wire();
        let (data_len, headers) = wasm_workers_protocol::split_events(&wire.events).expect("well formed");
        let words: Vec<u32> = headers.flat_map(|header| header.encode()).collect();
        assert_eq!(words, [0, 0, 0, 1, 0, 1, 7, 1, 3, 2, 2, 9, 2, 0, 0]);
        assert_eq!(wire.events[..data_len], [b'1', 1, 2, 3]);
        assert_eq!(wire.errors, Some(vec![(2, "why".to_string())]));
        assert!(wire.transfer.is_none(), "nothing was put in it");
        assert_eq!(burst.len(), 3);
        assert_eq!(burst.bytes_from(1), 3);
        assert_eq!(burst.counted_before(2), 1);
        assert_eq!(burst.counted_from(1), 1);
    }

    #[test]
    fn a_large_first_message_is_moved_and_not_kept() {
        let mut burst = Burst::new();
        let data = vec![5u8; 1 << 20];
        let at = data.as_ptr();
        burst.push(Source::Parent, Codec::Raw, data, 0, None, true);
        assert_eq!(burst.wire.events.as_ptr(), at, "moved, not copied");
        assert_eq!(burst.wire().events.len(), (1 << 20) + HEADER_BYTES + 4, "the headers follow it");
        burst.clear();
        assert_eq!(burst.wire.events.capacity(), 0, "its allocation is let go");
        burst.push(Source::Parent, Codec::Raw, vec![1; 16], 0, None, true);
        burst.clear();
        assert!(burst.wire.events.capacity() >= 16, "a small allocation is kept");
        assert_eq!(burst.len(), 0);
    }

    #[test]
    fn an_event_pushed_after_the_record_was_asked_for_goes_before_the_headers() {
        let mut burst = Burst::new();
        burst.push(Source::Parent, Codec::Raw, vec![1], 0, None, true);
        let _ = burst.wire();
        burst.push(Source::Parent, Codec::Raw, vec![2, 3], 0, None, true);
        let events = burst.wire().events.clone();
        let (data_len, headers) = wasm_workers_protocol::split_events(&events).expect("well formed");
        assert_eq!(events[..data_len], [1, 2, 3]);
        assert_eq!(headers.map(|header| header.len).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(burst.data_len(), 3);
    }

    #[test]
    fn the_optional_lists_are_none_unless_filled_and_none_again_after_a_clear() {
        let mut burst = Burst::new();
        burst.push(Source::Parent, Codec::Json, b"{".to_vec(), 0, Some("malformed".into()), true);
        assert_eq!(burst.wire().errors.as_deref(), Some(&[(0, "malformed".to_string())][..]));
        burst.clear();
        burst.push(Source::Parent, Codec::Json, b"1".to_vec(), 0, None, true);
        let wire = burst.wire();
        assert!(wire.transfer.is_none() && wire.errors.is_none(), "an empty list is never sent");
        burst.clear();
        burst.push(Source::Parent, Codec::Json, b"{".to_vec(), 0, Some("again".into()), true);
        assert_eq!(burst.wire().errors.as_deref(), Some(&[(0, "again".to_string())][..]), "the first error is gone");
    }

    /// The handles of `list`, in order (`Buffer(n)` as `n`, `Port(n)` as `1000 + n`).
    fn handles(list: &[types::Transferable]) -> Vec<u32> {
        let handle = |object: &types::Transferable| match object {
            types::Transferable::Buffer(buffer) => buffer.rep(),
            types::Transferable::Port(port) => 1000 + port.rep(),
        };
        list.iter().map(handle).collect()
    }

    #[test]
    fn transferred_objects_go_in_order_into_one_list_which_a_clear_empties() {
        use wasmtime::component::Resource;
        let mut burst = Burst::new();
        burst.transfer().push(types::Transferable::Buffer(Resource::new_own(1)));
        burst.transfer().push(types::Transferable::Port(Resource::new_own(2)));
        burst.push(Source::Parent, Codec::Raw, vec![1], 2, None, true);
        burst.push(Source::Parent, Codec::Raw, vec![2], 0, None, true);
        assert_eq!(handles(burst.wire().transfer.as_deref().unwrap()), [1, 1002]);
        // Asked for twice (nothing is repeated), then one more event after the first ask.
        burst.transfer().push(types::Transferable::Buffer(Resource::new_own(3)));
        burst.push(Source::Parent, Codec::Raw, vec![3], 1, None, true);
        assert_eq!(handles(burst.wire().transfer.as_deref().unwrap()), [1, 1002, 3]);
        burst.clear();
        assert!(burst.wire().transfer.is_none(), "a cleared burst sends none");
        // A burst abandoned before it was asked for (a failed lowering) leaves nothing behind.
        burst.transfer().push(types::Transferable::Buffer(Resource::new_own(4)));
        burst.clear();
        burst.push(Source::Parent, Codec::Raw, vec![4], 0, None, true);
        assert!(burst.wire().transfer.is_none());
    }
}
