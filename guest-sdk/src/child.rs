//! Dedicated child workers (`new Worker(...)`): [`Child`].

#[allow(unused_imports)]
use crate::*;

/// A dedicated child worker (a `Worker` object): post to it, terminate it, and receive its
/// messages, errors and closing through typed callbacks.
///
/// `W` is the type of the worker that owns the child; callbacks get `&mut W`, so that they
/// can update its state. The child keeps running when the `Child` is dropped; the callbacks
/// stay registered until the child ends.
pub struct Child<W> {
    pub(crate) id: u32,
    pub(crate) handle: Rc<scope::Worker>,
    pub(crate) _worker: std::marker::PhantomData<fn(&mut W)>,
}

impl<W: Worker> Child<W> {
    /// Spawns a child worker running the component at `location` (`new Worker(url, {name})`);
    /// a relative location is resolved against the directory of this worker's own location.
    ///
    /// # Errors
    ///
    /// The host's description of why the component cannot be loaded.
    pub fn spawn(location: &str, name: Option<&str>) -> Result<Self, String> {
        let options = types::WorkerOptions { name: name.map(str::to_string) };
        let handle = Rc::new(scope::Worker::spawn(location, &options)?);
        let id = handle.id();
        CHILDREN.with_borrow_mut(|children| children.insert(id, Entry::new::<W>(Keep::Child(handle.clone()))));
        Ok(Child { id, handle, _worker: std::marker::PhantomData })
    }

    /// [`spawn`](Self::spawn), with the child placed on a host of the lattice the host has
    /// joined, as `placement` says; on this host if it has joined none. The child's events
    /// are the same as a local child's. Its messages cross hosts by copy: a buffer sent to it
    /// is gone from here and arrives there as a new one; a port sent to it stays linked to
    /// its entangled end here, and messages on it keep their order.
    ///
    /// # Errors
    ///
    /// As for [`spawn`](Self::spawn), and if no host of the lattice matches or has room.
    pub fn spawn_placed(location: &str, name: Option<&str>, placement: &Placement) -> Result<Self, String> {
        let options = types::WorkerOptions { name: name.map(str::to_string) };
        let placement = match placement {
            Placement::Any => types::Placement::Any,
            Placement::Host(id) => types::Placement::Host(id.clone()),
            Placement::Labels(labels) => types::Placement::Labels(labels.clone()),
        };
        let handle = Rc::new(scope::Worker::spawn_placed(location, &options, &placement)?);
        let id = handle.id();
        CHILDREN.with_borrow_mut(|children| children.insert(id, Entry::new::<W>(Keep::Child(handle.clone()))));
        Ok(Child { id, handle, _worker: std::marker::PhantomData })
    }

    /// The id this child's events carry ([`Source::Child`]).
    pub fn id(&self) -> u32 {
        self.id
    }

    fn with_callbacks(self, f: impl FnOnce(&mut Callbacks<W>) + 'static) -> Self {
        CHILDREN.with_borrow_mut(|children| {
            if let Some(entry) = children.get_mut(&self.id) {
                entry.register(f);
            }
        });
        self
    }

    /// Calls `f` with each message of type `T` the child posts (any serde type, or
    /// [`Received<T>`]). A message that does not decode goes to [`Worker::on_message_error`].
    pub fn on_message<T: FromMessage + 'static>(self, f: impl FnMut(&mut W, T) + 'static) -> Self {
        let source = Source::Child(self.id);
        self.with_callbacks(move |callbacks| callbacks.on_message = Some(typed(source, f)))
    }

    /// Calls `f` if the child fails (it trapped; it has ended). Without this callback the
    /// error is re-raised in this worker.
    pub fn on_error(self, f: impl FnMut(&mut W, ErrorEvent) + 'static) -> Self {
        self.with_callbacks(|callbacks| callbacks.on_error = Some(Box::new(f)))
    }

    /// Calls `f` when the child closes itself or ends with nothing left to do.
    pub fn on_close(self, f: impl FnMut(&mut W) + 'static) -> Self {
        self.with_callbacks(|callbacks| callbacks.on_close = Some(Box::new(f)))
    }

    /// Posts `value` to the child as JSON.
    ///
    /// # Panics
    ///
    /// If `value` cannot be encoded as JSON.
    ///
    /// A message the child refuses (its queue is full, or the message is too large) is
    /// dropped, and counted dropped by the host; [`try_post`](Self::try_post) tells the
    /// caller instead.
    pub fn post<T: Serialize + ?Sized>(&self, value: &T) {
        if let Err(PostError::Encode(why)) = self.try_post(value) {
            panic!("cannot encode message: {why}");
        }
    }

    /// Posts `value` to the child, as JSON, and says if it was refused.
    ///
    /// # Errors
    ///
    /// [`PostError::QueueFull`] or [`PostError::TooLarge`] if the child does not take it (it
    /// is dropped); [`PostError::Encode`] if it cannot be encoded.
    pub fn try_post<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), PostError> {
        self.post_encoded(Codec::Json, value)
    }

    /// Posts `value` to the child in `codec`.
    ///
    /// # Errors
    ///
    /// If `value` cannot be encoded in `codec`; nothing is sent then.
    pub fn post_encoded<T: Serialize + ?Sized>(&self, codec: Codec, value: &T) -> Result<(), PostError> {
        let (codec, data) = encode(codec, value)?;
        Ok(self.handle.post_message(message(codec, data))?)
    }

    /// Posts `value` to the child as JSON, transferring what is in `transfer`.
    ///
    /// # Errors
    ///
    /// If `value` cannot be encoded, or something in `transfer` was already transferred
    /// away; nothing is sent then.
    pub fn post_with<T: Serialize + ?Sized>(&self, value: &T, transfer: Transfer) -> Result<(), PostError> {
        Ok(self.handle.post_message(message_with(value, transfer)?)?)
    }

    /// Posts already-encoded bytes to the child, declared as `codec`.
    ///
    /// # Errors
    ///
    /// [`PostError::QueueFull`] or [`PostError::TooLarge`] if the child does not take it.
    pub fn post_bytes(&self, codec: Codec, data: impl Into<Vec<u8>>) -> Result<(), PostError> {
        Ok(self.handle.post_message(message(codec, data.into()))?)
    }

    /// Terminates the child (`worker.terminate()`), even if it is busy; its callbacks are
    /// dropped and no event of it arrives any more.
    pub fn terminate(&self) {
        self.handle.terminate();
        CHILDREN.with_borrow_mut(|children| children.remove(&self.id));
    }
}

impl<W> fmt::Debug for Child<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child").field("id", &self.id).finish()
    }
}

/// Where on a lattice of hosts a child runs ([`Child::spawn_placed`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Any host of the lattice with a free worker slot (the one with the most).
    Any,
    /// The host with this id.
    Host(String),
    /// A host whose labels include all of these (key, value).
    Labels(Vec<(String, String)>),
}
