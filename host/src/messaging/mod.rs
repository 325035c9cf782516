//! Messages and channel messaging (10.2.4): what `postMessage` sends, the entangled ports of
//! a message channel, and the delivery seam every post crosses.
//!
//! A message carries ports and a port queues messages: the two are one knot, kept inside
//! this directory. Below it are only plain data (buffers, the ledger, limits); the event loop
//! above it schedules ports through [`PortHolder`] and receives through [`Deliver`].

mod delivery;
mod message;
mod port;
mod port_end;

pub(crate) use delivery::{post, Deliver};
pub(crate) use message::check_json;
pub use message::{Codec, DecodeError, Message};
pub use port::{channel, MessagePort, PortEvent, PortPostError, PortRoom};
pub(crate) use port_end::{PortCore, PortHolder, Ready};
