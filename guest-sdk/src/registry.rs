//! What the SDK keeps per worker: the callbacks of its children and ports, its timers, its
//! state, and the closing flag, by id, in thread-locals (one worker per instance).

#[allow(unused_imports)]
use crate::*;

/// The ports and buffers transferred with a message that arrived.
#[inline(always)]
pub(crate) fn received(transfer: Vec<types::Transferable>) -> (Vec<Port>, Vec<Buffer>) {
    if transfer.is_empty() {
        return (Vec::new(), Vec::new());
    }
    split(transfer)
}

/// [`received`] for a transfer that is not empty.
#[cold]
#[inline(never)]
fn split(transfer: Vec<types::Transferable>) -> (Vec<Port>, Vec<Buffer>) {
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
pub(crate) fn typed<W: Worker, T: FromMessage + 'static>(
    source: Source,
    mut f: impl FnMut(&mut W, T) + 'static,
) -> MessageCallback<W> {
    Box::new(move |worker: &mut W, message: Incoming| message.dispatch(worker, source, &mut f))
}

/// A message event on its way to a callback: its data still a view of its burst.
pub(crate) struct Incoming {
    pub(crate) codec: Codec,
    pub(crate) data: Bytes,
    pub(crate) transfer: Vec<types::Transferable>,
}

impl Incoming {
    /// Decodes it as a `T` and hands that to `handler`; or, if it is not a `T`, hands the
    /// `messageerror` to the worker's `on_message_error`. Lets go of this view of the bytes,
    /// and of what `T` did not take of the transfer, before `handler` runs (so that what `T`
    /// kept of the bytes may be their only view).
    #[inline]
    pub(crate) fn dispatch<W: Worker, T: FromMessage>(
        self,
        worker: &mut W,
        source: Source,
        handler: impl FnOnce(&mut W, T),
    ) {
        let Incoming { codec, data, transfer } = self;
        let (mut ports, mut buffers) = received(transfer);
        match T::from_message(codec, &data, &mut ports, &mut buffers) {
            Ok(value) => {
                drop((data, ports, buffers));
                handler(worker, value);
            }
            Err(reason) => {
                // What was transferred with a message that is not read is let go of first.
                drop((ports, buffers));
                worker.on_message_error(MessageError { source, codec, data: data.into_vec(), reason });
            }
        }
    }
}

pub(crate) type MessageCallback<W> = Box<dyn FnMut(&mut W, Incoming)>;
pub(crate) type ErrorCallback<W> = Box<dyn FnMut(&mut W, ErrorEvent)>;
pub(crate) type CloseCallback<W> = Box<dyn FnMut(&mut W)>;
/// A registration made while an entry's callbacks were taken out, applied when they are back.
pub(crate) type Deferred<W> = Box<dyn FnOnce(&mut Callbacks<W>)>;
/// A pending timer: whether it is an interval, and its `Box<dyn FnMut(&mut W)>`.
pub(crate) type Timer = (bool, Box<dyn Any>);

/// The callbacks of one child or port, for a worker of type `W`.
pub(crate) struct Callbacks<W> {
    pub(crate) on_message: Option<MessageCallback<W>>,
    pub(crate) on_error: Option<ErrorCallback<W>>,
    pub(crate) on_close: Option<CloseCallback<W>>,
}

impl<W> Callbacks<W> {
    pub(crate) fn new() -> Self {
        Callbacks { on_message: None, on_error: None, on_close: None }
    }
}

/// What an entry keeps alive besides its callbacks: a child's handle, so that the child stays
/// reachable, or a port, so that it stays open.
pub(crate) enum Keep {
    Child(#[allow(dead_code, reason = "held, not read")] Rc<scope::Worker>),
    Port(#[allow(dead_code, reason = "held, not read")] Port),
}

pub(crate) struct Entry {
    #[allow(dead_code, reason = "held, not read")]
    pub(crate) keep: Keep,
    /// A `Callbacks<W>`; taken out while one of them runs.
    pub(crate) callbacks: Option<Box<dyn Any>>,
    /// Registrations made while the callbacks were taken out (from one of them): each a
    /// `Box<dyn FnOnce(&mut Callbacks<W>)>`, applied when they are put back.
    pub(crate) deferred: Vec<Box<dyn Any>>,
}

impl Entry {
    pub(crate) fn new<W: Worker>(keep: Keep) -> Self {
        Entry { keep, callbacks: Some(Box::new(Callbacks::<W>::new())), deferred: Vec::new() }
    }

    /// Applies `f` to the callbacks now, or when they are put back if one of them is running.
    pub(crate) fn register<W: Worker>(&mut self, f: impl FnOnce(&mut Callbacks<W>) + 'static) {
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
    pub(crate) static CLOSING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// The worker's state, created before its first event.
    pub(crate) static WORKER: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
    /// Live children, by id.
    pub(crate) static CHILDREN: RefCell<HashMap<u32, Entry>> = RefCell::new(HashMap::new());
    /// Ports with callbacks, by id.
    pub(crate) static PORTS: RefCell<HashMap<u32, Entry>> = RefCell::new(HashMap::new());
    /// Pending timers by id: whether it is an interval, and its `Box<dyn FnMut(&mut W)>`.
    pub(crate) static TIMERS: RefCell<HashMap<u32, Timer>> = RefCell::new(HashMap::new());
    /// Intervals cleared while their own callback ran.
    pub(crate) static CLEARED: RefCell<std::collections::HashSet<u32>> = RefCell::new(std::collections::HashSet::new());
}
