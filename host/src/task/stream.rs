//! Typed two-way streams with a worker, over a message port.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::messaging::{self, Message, MessagePort, PortEvent};
use crate::worker::{PostError, WorkerHandle};

use super::{protocol, TaskError};

/// One end of a typed two-way stream with a worker, over a port.
#[derive(Debug)]
pub struct Stream {
    port: MessagePort,
    ended: bool,
}

impl Stream {
    /// Opens a stream to `worker`: sends it one end of a new channel with `{"stream": label}`
    /// (its `TaskWorker::on_stream` gets it) and keeps the other.
    ///
    /// # Errors
    ///
    /// If the worker no longer receives messages.
    #[allow(clippy::result_large_err, reason = "the refused message comes back whole, as the error's point")]
    pub fn open(worker: &WorkerHandle, label: &str) -> Result<Stream, PostError> {
        let (mine, theirs) = messaging::channel();
        let request =
            Message::json(&protocol::OpenStream { stream: label }).expect("a JSON object encodes").with_port(theirs);
        worker.post_message(request)?;
        Ok(Stream { port: mine, ended: false })
    }

    /// Sends one item.
    ///
    /// # Errors
    ///
    /// If the item does not encode, or the stream has ended.
    pub fn send<T: Serialize>(&self, item: &T) -> Result<(), TaskError> {
        if self.ended {
            return Err(TaskError::WorkerEnded("the stream has ended".to_string()));
        }
        let message = Message::json(&protocol::Item { item }).map_err(|e| TaskError::Codec(e.to_string()))?;
        self.port.post_message(message).map_err(|_| TaskError::WorkerEnded("the stream has ended".to_string()))
    }

    /// The next item from the worker; `None` once the worker ended the stream (or went away).
    ///
    /// # Errors
    ///
    /// [`TaskError::Codec`] if an item does not decode as a `T`.
    pub async fn recv<T: DeserializeOwned>(&mut self) -> Result<Option<T>, TaskError> {
        loop {
            if self.ended {
                return Ok(None);
            }
            match self.port.recv().await {
                Some(PortEvent::Message(message)) => {
                    let value: Value = message.decode_json().map_err(|e| TaskError::Codec(e.to_string()))?;
                    match protocol::stream_message(&value) {
                        protocol::StreamMessage::End => {
                            self.ended = true;
                            return Ok(None);
                        }
                        protocol::StreamMessage::Item(item) => {
                            return serde_json::from_value(item.clone())
                                .map(Some)
                                .map_err(|e| TaskError::Codec(e.to_string()));
                        }
                        protocol::StreamMessage::Other => {}
                    }
                }
                Some(PortEvent::Closed) | None => {
                    self.ended = true;
                    return Ok(None);
                }
            }
        }
    }

    /// Ends the stream from this side: the worker sees the end.
    pub fn end(mut self) {
        if !self.ended {
            let _ = self.port.post_message(Message::json(&protocol::END).expect("a JSON object encodes"));
            self.ended = true;
        }
        self.port.close();
    }
}
