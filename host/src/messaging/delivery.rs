//! The delivery seam: the one way a message reaches its receiver.
//!
//! Every post crosses a [`Deliver`]: a worker posting to a child, to its parent or on a port,
//! and the host program posting to a worker or on a port. What sends never knows what
//! receives: a worker's task queue, a port end's queue, or the host program's event channel
//! today — all in this process. A receiver on another host implements the same trait, and
//! nothing that posts changes.
//!
//! Ordering: messages one thread delivers through one `Deliver` arrive in the order
//! delivered. Blocking: delivering never blocks; a receiver that has no room refuses.

use crate::accounting::{DropReason, Ledger};

use super::message::Message;

/// A receiver of messages, as one sender sees it (so that it knows where they come from).
pub(crate) trait Deliver: Send + Sync {
    /// Queues `message` at the receiver, within its limits. `ledger` is the host's ledger the
    /// message is counted in, if it is counted. Returns the message back, with why, if it is
    /// refused; the caller settles it (see [`post`]).
    fn deliver(&self, message: Message, ledger: Option<&Ledger>) -> Result<(), (DropReason, Message)>;

    /// The largest message the receiver accepts, in bytes of data.
    fn message_size(&self) -> usize;
}

/// Posts `message` (counted as posted in `ledger`) through `to`. A refused message is settled
/// as dropped, for the reason returned.
pub(crate) fn post(to: &dyn Deliver, message: Message, ledger: &Ledger) -> Result<(), DropReason> {
    to.deliver(message, Some(ledger)).map_err(|(reason, mut message)| {
        message.settle(ledger, Some(reason));
        reason
    })
}
