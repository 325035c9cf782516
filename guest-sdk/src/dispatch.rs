//! The event dispatch behind [`export_worker!`](crate::export_worker): the exported
//! handlers' bodies; not part of the API.

#[allow(unused_imports)]
use crate::*;

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
            scope::report_error(&message, 0, 0);
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
        let Incoming { codec, data, transfer } = message;
        drop(received(transfer));
        worker.on_message_error(MessageError { source, codec, data: data.into_vec(), reason });
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
            message.dispatch(worker, source, W::on_message);
            true
        }
        // A child or port this worker let go of can have messages in flight: they find no
        // entry and are discarded.
        Source::Child(id) => with_entry(worker, &CHILDREN, id, false, deliver::<W>(message)).is_some(),
        Source::Port(id) => with_entry(worker, &PORTS, id, false, deliver::<W>(message)).is_some(),
    }
}

use wasm_workers_protocol::{split_events, Header, HEADER_BYTES};

/// `on-messages`: each event of the burst in turn, until the worker closes. Returns how
/// many were discarded.
pub fn on_messages<W: Worker>(burst: types::MessageBurst) -> u32 {
    let types::MessageBurst { events: list, transfer, errors } = burst;
    // A host never sends a list too short for its count of events; if one did, there would
    // be no event to read.
    let Some((data_len, events)) = split_events(&list).map(|(data_len, headers)| (data_len, headers.len())) else {
        return 0;
    };
    let mut data = Some(Rc::new(list));
    let mut transfer = transfer.unwrap_or_default().into_iter();
    // The next deserialization error, and those after it (usually none at all).
    let mut errors = errors.unwrap_or_default().into_iter();
    let mut next_error = errors.next();
    let mut at = 0;
    let mut discarded = 0;
    with_worker(|worker: &mut W| {
        for index in 0..events {
            // Read before the last event takes the list; `split_events` checked the range.
            let start = data_len + index * HEADER_BYTES;
            let header = data.as_deref().and_then(|list| list.get(start..start + HEADER_BYTES));
            let Some(header) = header.and_then(|bytes| bytes.try_into().ok()).map(Header::from_bytes) else {
                break;
            };
            let Header { source, codec, len, transferred } = header;
            // Never into the headers, whatever a length says.
            let range = at.min(data_len)..(at + len as usize).min(data_len);
            at = range.end;
            // The last event takes the burst's own reference: a message that arrived alone is
            // the only view of its list, and moves out of it without a copy.
            let bytes = match &data {
                Some(list) if index + 1 < events => Bytes::shared(list, range),
                _ => data.take().map(|list| Bytes::within(list, range)).unwrap_or_default(),
            };
            let transfer = match transferred {
                0 => Vec::new(),
                n => transfer.by_ref().take(n as usize).collect(),
            };
            let error = match &next_error {
                Some((event, _)) if *event as usize == index => {
                    std::mem::replace(&mut next_error, errors.next()).map(|(_, error)| error)
                }
                _ => None,
            };
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
    let error = ErrorEvent {
        message: error.message,
        worker: error.worker,
        location: error.location,
        lineno: error.lineno,
        colno: error.colno,
    };
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

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_workers_protocol::Header;

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
        let headers: Vec<u8> = messages
            .iter()
            .flat_map(|m| {
                Header { source: Source::Parent, codec: Codec::Raw, len: m.len() as u32, transferred: 0 }.to_bytes()
            })
            .collect();
        let mut events = messages.concat();
        wasm_workers_protocol::append_headers(&mut events, &headers);
        types::MessageBurst {
            events,
            transfer: None,
            errors: (!errors.is_empty()).then(|| errors.iter().map(|&(i, why)| (i, why.to_string())).collect()),
        }
    }

    #[test]
    fn a_message_that_arrived_alone_moves_out_of_its_burst_without_a_copy() {
        let burst = burst(&[b"alone"], &[]);
        let at = burst.events.as_ptr() as usize;
        assert_eq!(on_messages::<Keeper>(burst), 0);
        assert_eq!(SEEN.take(), [(at, b"alone".to_vec())]);
    }

    #[test]
    fn each_event_of_a_burst_gets_its_own_bytes_in_order_and_errors_in_their_place() {
        let burst = burst(&[b"a", b"{bad", b"", b"bcd"], &[(1, "malformed JSON")]);
        assert_eq!(on_messages::<Keeper>(burst), 0);
        let bytes: Vec<Vec<u8>> = SEEN.take().into_iter().map(|(_, bytes)| bytes).collect();
        assert_eq!(bytes, [b"a".to_vec(), Vec::new(), b"bcd".to_vec()]);
        assert_eq!(ERRORS.take(), ["malformed JSON"]);
    }

    #[test]
    fn several_errors_each_go_to_their_own_event() {
        let burst = burst(&[b"{x", b"a", b"{y", b"{z", b"b"], &[(0, "first"), (2, "third"), (3, "fourth")]);
        assert_eq!(on_messages::<Keeper>(burst), 0);
        let bytes: Vec<Vec<u8>> = SEEN.take().into_iter().map(|(_, bytes)| bytes).collect();
        assert_eq!(bytes, [b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(ERRORS.take(), ["first", "third", "fourth"]);
    }
}
