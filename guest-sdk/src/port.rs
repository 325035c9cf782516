//! Channel messaging: [`Port`] (`MessagePort`), [`MessageChannel`], and the ports a graph
//! hands a worker.

#[allow(unused_imports)]
use crate::*;

/// One end of a message channel (`MessagePort`): post to the entangled end, receive what it
/// posts through typed callbacks.
///
/// Cheap to clone; clones are the same port. Transferring it (in a [`Transfer`]) detaches
/// every clone here: their calls then fail with [`PostError::Detached`]. The port is closed
/// when the last clone is dropped and no callback holds it.
#[derive(Clone)]
pub struct Port(pub(crate) Rc<PortInner>);

pub(crate) struct PortInner {
    pub(crate) handle: RefCell<Option<types::MessagePort>>,
    /// The id its events carry here ([`Source::Port`]).
    pub(crate) id: u32,
}

impl Port {
    pub(crate) fn from_handle(handle: types::MessagePort) -> Port {
        let id = handle.id();
        Port(Rc::new(PortInner { handle: RefCell::new(Some(handle)), id }))
    }

    /// Takes the handle out for a transfer: every clone is detached, and the callbacks go.
    pub(crate) fn take_handle(&self) -> Option<types::MessagePort> {
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
