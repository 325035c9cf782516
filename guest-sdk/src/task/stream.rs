//! Typed two-way streams over a port: [`Stream`].

#[allow(unused_imports)]
use super::*;

/// One end of a typed two-way stream over a port (a "reactor" bridge).
#[derive(Clone, Debug)]
pub struct Stream {
    pub(crate) port: Port,
}

impl Stream {
    pub(crate) fn new(port: Port) -> Self {
        Stream { port }
    }

    /// Opens a stream to `worker`: sends it one end of a new channel with
    /// `{"stream": label}` and returns the other end.
    ///
    /// # Errors
    ///
    /// If the request cannot be posted.
    pub fn open<W: Worker>(worker: &Child<W>, label: &str) -> Result<Stream, crate::PostError> {
        let channel = MessageChannel::new();
        worker.post_with(&protocol::OpenStream { stream: label }, Transfer::new().port(&channel.port2))?;
        Ok(Stream::new(channel.port1))
    }

    /// Sends one item.
    ///
    /// # Errors
    ///
    /// If the stream has ended on this side (its port is gone).
    pub fn send<T: Serialize>(&self, item: &T) -> Result<(), crate::PostError> {
        self.port.post(&protocol::Item { item })
    }

    /// Calls `on_item` with each item the other side sends, and `on_end` once, when the other
    /// side ends the stream (or goes away).
    pub fn on_items<W: Worker, T: DeserializeOwned + 'static>(
        &self,
        mut on_item: impl FnMut(&mut W, T) + 'static,
        on_end: impl FnOnce(&mut W) + 'static,
    ) {
        let on_end = Rc::new(RefCell::new(Some(on_end)));
        let end_on_message = on_end.clone();
        let port = self.port.clone();
        self.port
            .on_message(move |worker: &mut W, message: Value| match protocol::stream_message(&message) {
                protocol::StreamMessage::End => {
                    if let Some(end) = end_on_message.borrow_mut().take() {
                        end(worker);
                    }
                    port.close();
                }
                protocol::StreamMessage::Item(item) => match serde_json::from_value(item.clone()) {
                    Ok(item) => on_item(worker, item),
                    Err(error) => eprintln!("a stream item does not decode: {error}"),
                },
                protocol::StreamMessage::Other => {}
            })
            .on_close(move |worker: &mut W| {
                if let Some(end) = on_end.borrow_mut().take() {
                    end(worker);
                }
            });
    }

    /// Ends the stream from this side: the other side sees the end.
    pub fn end(&self) {
        let _ = self.port.post(&protocol::END);
        self.port.close();
    }
}
