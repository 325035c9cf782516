//! What a message transfers across hosts: its buffers by copy, its ports by a link of their
//! own.
//!
//! Zero-copy stays within a host. A buffer sent to a worker on another host is gone from the
//! sender as a transferred one is; its bytes travel after the message's data and become a
//! new buffer there.
//!
//! A port cannot leave its host, so a port sent to another host is *linked*: this side keeps
//! it, held by a task as the host program holds a port (side `a`), and the other side makes
//! a new channel whose one end goes in the message while a task holds the other (side `b`).
//! Each task posts on its port what arrives from the far side, and sends the far side what
//! arrives at its port, so that a post on one end of the channel reaches the other, across
//! hosts, in order: each direction is one subject with one publisher, numbered as every
//! subject of the lattice is ([`wire`](super::wire)), and a message waiting at a port when it
//! is sent goes first. A port sent on again (to a third host, or back) is linked again: each
//! crossing adds a link, and messages keep their order along the chain.
//!
//! Room: each side may send the other at most [`PORT_WINDOW`] messages and
//! [`PORT_WINDOW_BYTES`] bytes (or one message, however large, when nothing else is on its
//! way) before the far side grants more, which it does as its port's entangled end takes
//! them. A side out of room stops reading its port, whose queue then fills: its sender sees
//! `queue-full`, as it would locally. Side `b` grants side `a` its first window once it
//! listens, and side `a` answers with its own; until then neither sends (a side never
//! answered in time closes its port).
//!
//! Ends: a side whose port's entangled end closes tells the far side, which closes its port
//! once what it holds is delivered. A side that does not hear the far host for
//! [`HOST_SILENCE`](super::HOST_SILENCE), or never hears the far side open within the
//! request timeout, closes its port and counts what it held as lost
//! ([`DropReason::LinkLost`]), as it counts the messages a gap says were lost.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use thin_vec::ThinVec;

use crate::accounting::{DropReason, Ledger};
use crate::buffer::Buffer;
use crate::messaging::{self, Message, MessagePort, PortEvent};

use super::wire::{self, Envelope, Incoming, Kind, LinkError};
use super::{Lattice, HEARTBEAT, HOST_SILENCE, REQUEST_TIMEOUT};

/// The most messages one side of a port's link sends before the far side grants more.
pub const PORT_WINDOW: u64 = 1024;

/// The most bytes of data one side of a port's link has on their way at once (but one
/// message, however large, when nothing else is on its way).
pub const PORT_WINDOW_BYTES: u64 = 64 << 20;

/// Which end of a port's link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    /// The side the port was sent from.
    A,
    /// The side it was sent to.
    B,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::A => "a",
            Side::B => "b",
        }
    }

    fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// Where a message goes or comes from: the far side's id on the lattice (a host, or a placing
/// side: the one whose heartbeat says the far side lives), and this host's ledger.
#[derive(Clone)]
pub(super) struct Far {
    pub(super) lattice: Lattice,
    pub(super) id: String,
    pub(super) ledger: Ledger,
}

/// `message` as it travels to the far side: its buffers copied after its data (gone from
/// here), each of its ports linked. Its data and its count in a ledger are the caller's.
///
/// # Errors
///
/// If a port cannot be linked (the server refuses a subscription); the ports linked so far
/// close once their links give up waiting.
pub(super) async fn encode(far: &Far, mut message: Message) -> Result<Envelope, String> {
    let mut ports = Vec::with_capacity(message.ports.len());
    for port in std::mem::take(&mut message.ports) {
        ports.push(link(far, port).await?);
    }
    let mut payload = std::mem::take(&mut message.data);
    let mut buffers = Vec::with_capacity(message.buffers.len());
    for buffer in std::mem::take(&mut message.buffers) {
        let bytes = buffer.into_vec();
        buffers.push(bytes.len());
        payload.extend_from_slice(&bytes);
    }
    Ok(Envelope { codec: message.codec, payload, ports, buffers })
}

/// The message an envelope from the far side carries: its buffers made here, a new port for
/// each port linked.
///
/// # Errors
///
/// If a port's link cannot be made here.
pub(super) async fn decode(far: &Far, envelope: Envelope) -> Result<Message, String> {
    let Envelope { codec, mut payload, ports, buffers: lengths } = envelope;
    // Checked by the wire: the buffers fit in the payload.
    let mut at = payload.len() - lengths.iter().sum::<usize>();
    let mut buffers = ThinVec::with_capacity(lengths.len());
    for len in &lengths {
        buffers.push(Buffer::from_vec(payload[at..at + len].to_vec()));
        at += len;
    }
    payload.truncate(payload.len() - lengths.iter().sum::<usize>());
    let mut message = Message::new(codec, payload);
    message.buffers = buffers;
    for id in ports {
        message.ports.push(accept(far, &id).await?);
    }
    Ok(message)
}

/// Links `port` (side `a`): a task keeps it and relays it to the side that receives it.
/// Returns the link's id, which the message names the port by.
pub(super) async fn link(far: &Far, port: MessagePort) -> Result<String, String> {
    let prepared = prepare(far).await?;
    let id = prepared.id.clone();
    prepared.start(port);
    Ok(id)
}

/// A link's side `a`, listening, before its port is known: for a port whose far side must
/// accept it before this side gives it up (a connect to a shared worker elsewhere).
pub(super) struct Prepared {
    far: Far,
    id: String,
    subject: String,
    input: async_nats::Subscriber,
    credit: async_nats::Subscriber,
}

/// Makes a link's side `a` listen: what the far side sends from now on is kept for it.
pub(super) async fn prepare(far: &Far) -> Result<Prepared, String> {
    let id = nuid::next().to_string();
    let subject = format!("{}.port.{id}", far.lattice.prefix());
    let client = &far.lattice.0.client;
    let error = |error: String| format!("cannot link a port: {error}");
    let input = client.subscribe(format!("{subject}.b")).await.map_err(|e| error(e.to_string()))?;
    let credit = client.subscribe(format!("{subject}.a.credit")).await.map_err(|e| error(e.to_string()))?;
    Ok(Prepared { far: far.clone(), id, subject, input, credit })
}

impl Prepared {
    /// The link's id.
    pub(super) fn id(&self) -> &str {
        &self.id
    }

    /// Starts relaying `port` on this link.
    pub(super) fn start(self, mut port: MessagePort) {
        // Held by the link, as by the host program: no worker's budget pays for it here.
        port.charge.release();
        port.count_in(&self.far.ledger);
        let Prepared { far, subject, input, credit, .. } = self;
        let lattice = far.lattice.clone();
        let relay = Relay { far, side: Side::A, subject, port, input, credit, opened: false };
        lattice.spawn(relay.run());
    }
}

/// Accepts the port linked as `id` (side `b`): a new channel, one end relayed to the side that
/// sent the port, the other returned to go in the message.
pub(super) async fn accept(far: &Far, id: &str) -> Result<MessagePort, String> {
    let (here, there) = messaging::channel();
    here.count_in(&far.ledger);
    let subject = format!("{}.port.{id}", far.lattice.prefix());
    let client = &far.lattice.0.client;
    let error = |error: String| format!("cannot accept a port: {error}");
    let input = client.subscribe(format!("{subject}.a")).await.map_err(|e| error(e.to_string()))?;
    let credit = client.subscribe(format!("{subject}.b.credit")).await.map_err(|e| error(e.to_string()))?;
    client.flush().await.map_err(|e| error(e.to_string()))?;
    // Listening: the sending side may begin (nothing taken yet).
    client.publish(format!("{subject}.a.credit"), "0 0".into()).await.map_err(|e| error(e.to_string()))?;
    far.lattice.traffic().peer(&far.id).sent(1);
    // It sends nothing until side `a` answers the opening: a port whose side `a` never starts
    // (a connect whose answer was lost) closes here once that has not come in time.
    let relay = Relay { far: far.clone(), side: Side::B, subject, port: here, input, credit, opened: false };
    far.lattice.spawn(relay.run());
    Ok(there)
}

/// One side of a port's link.
struct Relay {
    far: Far,
    side: Side,
    /// `P.port.<id>`.
    subject: String,
    /// The port this side holds.
    port: MessagePort,
    /// The far side's messages.
    input: async_nats::Subscriber,
    /// The far side's grants of room.
    credit: async_nats::Subscriber,
    /// Whether the far side listens: until it says so, nothing is sent.
    opened: bool,
}

impl Relay {
    fn run(self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        // Boxed: a relay links the ports its messages carry, each with a relay of its own.
        Box::pin(self.relay())
    }

    async fn relay(mut self) {
        let client = self.far.lattice.0.client.clone();
        let ledger = self.far.ledger.clone();
        let out = format!("{}.{}", self.subject, self.side.name());
        let grant_to = format!("{}.{}.credit", self.subject, self.side.other().name());
        let max_payload = client.server_info().max_payload;
        let room = self.port.room();
        let mut incoming = Incoming::new(crate::limits::DEFAULT_MESSAGE_SIZE);
        let mut seq = 0u64;
        // From the far side, waiting for room at this port's entangled end, in order.
        let mut pending: VecDeque<Message> = VecDeque::new();
        // Taken from `pending` in all, and how many of those are not yet granted back:
        // messages, bytes. Grants are totals, so that one lost on the way (a server restart)
        // is made good by the next.
        let mut taken = (0u64, 0u64);
        let mut ungranted = 0u64;
        // Sent to the far side in all, and what it has said it took in all.
        let mut sent = (0u64, 0u64);
        let mut granted = (0u64, 0u64);
        // Read from this port, waiting for room at the far side.
        let mut held: Option<Message> = None;
        // The far side has closed (or the link from it broke): once `pending` is delivered, the
        // port closes.
        let mut far_closed = false;
        // The link from the far side broke: it is told, as by a close.
        let mut broken = false;
        let since = Instant::now();
        let mut tick = tokio::time::interval(HEARTBEAT);
        let mut reconnected = self.far.lattice.reconnected();
        reconnected.mark_unchanged();
        let count = self.far.lattice.traffic().peer(&self.far.id);
        let publish = |seq: &mut u64, kind: Kind, envelope: Envelope| {
            let parts = wire::parts(seq, kind, envelope, max_payload);
            let (client, out, count) = (client.clone(), out.clone(), count.clone());
            async move {
                for (headers, payload) in parts {
                    client.publish_with_headers(out.clone(), headers, payload).await.map_err(|e| e.to_string())?;
                    count.sent(1);
                }
                Ok::<(), String>(())
            }
        };
        let closed = || Envelope::plain(messaging::Codec::Raw, Vec::new());
        // For the lattice's quiescence: what is sent to and taken from the far side, and
        // whether this link holds anything.
        let probe = Arc::new(RelayProbe { holding: AtomicUsize::new(0), port: Box::new(self.port.unread_probe()) });
        self.far.lattice.traffic().watch(Arc::downgrade(&probe) as std::sync::Weak<dyn super::quiet::Probe>);
        let grant = |total: (u64, u64)| {
            let (client, grant_to, count) = (client.clone(), grant_to.clone(), count.clone());
            async move {
                if client.publish(grant_to, format!("{} {}", total.0, total.1).into()).await.is_ok() {
                    count.sent(1);
                }
            }
        };
        loop {
            probe.holding.store(pending.len() + usize::from(held.is_some()), std::sync::atomic::Ordering::Release);
            // What this port holds goes as soon as the far side has room for it.
            let (messages, bytes) = if self.opened {
                (
                    (PORT_WINDOW + granted.0).saturating_sub(sent.0),
                    (PORT_WINDOW_BYTES + granted.1).saturating_sub(sent.1),
                )
            } else {
                (0, 0)
            };
            if let Some(message) = held.take() {
                let len = message.data.len() as u64;
                if messages > 0 && (bytes >= len || bytes == PORT_WINDOW_BYTES) {
                    sent = (sent.0 + 1, sent.1 + len);
                    let sent = match encode(&self.far, message).await {
                        Ok(envelope) => publish(&mut seq, Kind::Message, envelope).await,
                        Err(why) => Err(why),
                    };
                    if let Err(why) = sent {
                        // It was read from the port (delivered there): lost here, counted.
                        tracing::debug!(%why, "a message on a port's link was lost");
                        ledger.posted(1);
                        ledger.dropped(DropReason::LinkLost, 1);
                    }
                } else {
                    held = Some(message);
                }
            }
            if far_closed && pending.is_empty() {
                if broken {
                    let _ = publish(&mut seq, Kind::Closed, closed()).await;
                }
                lose(held.take().into_iter(), &ledger, DropReason::PortClosed);
                self.port.close();
                break;
            }
            tokio::select! {
                event = self.port.recv(), if held.is_none() && messages > 0 && !far_closed => match event {
                    Some(PortEvent::Message(message)) => {
                        // Seen as held at once: an await may come before the loop counts it.
                        probe.holding.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                        held = Some(message);
                    }
                    Some(PortEvent::Closed) | None => {
                        // Its entangled end closed: the far side's port closes too, and what
                        // came for it can no longer be delivered.
                        let _ = publish(&mut seq, Kind::Closed, closed()).await;
                        lose(pending.drain(..), &ledger, DropReason::PortClosed);
                        break;
                    }
                },
                // Nothing more is taken once the far side has closed (or its link broke): what
                // came before is delivered, then the port closes.
                message = self.input.next(), if !far_closed => {
                    let Some(message) = message else {
                        far_closed = true;
                        broken = true;
                        continue;
                    };
                    let _taking = super::quiet::Taking(&count);
                    match incoming.take(&message) {
                        // Beyond the window this side granted: the far side broke the protocol.
                        Ok(Some((Kind::Message, _))) if pending.len() as u64 >= PORT_WINDOW => {
                            ledger.posted(1);
                            ledger.dropped(DropReason::QueueFull, 1);
                        }
                        Ok(Some((Kind::Message, envelope))) => match decode(&self.far, envelope).await {
                            Ok(message) => pending.push_back(message),
                            Err(why) => {
                                tracing::debug!(%why, "a message on a port's link could not be taken");
                                ledger.posted(1);
                                ledger.dropped(DropReason::LinkLost, 1);
                            }
                        },
                        Ok(Some((Kind::Closed, _))) => far_closed = true,
                        Ok(Some(_)) | Ok(None) => {}
                        Err(LinkError::Lost(skipped, then)) => {
                            // Lost in transit, counted here where they were due; what came
                            // before the gap is still delivered, then the channel closes.
                            let lost = LinkError::lost(skipped, then);
                            ledger.posted(lost);
                            ledger.dropped(DropReason::LinkLost, lost);
                            (far_closed, broken) = (true, true);
                        }
                        Err(LinkError::TooLarge) => {
                            ledger.posted(1);
                            ledger.dropped(DropReason::TooLarge, 1);
                        }
                        Err(LinkError::Broken(why)) => {
                            tracing::debug!(%why, "a port's link broke");
                            (far_closed, broken) = (true, true);
                        }
                    }
                    ungranted += offer(&self.port, &mut pending, &mut taken);
                }
                Some(granted_now) = self.credit.next() => {
                    let _taking = super::quiet::Taking(&count);
                    let grant_read = std::str::from_utf8(&granted_now.payload).ok().and_then(|text| {
                        let (messages, bytes) = text.split_once(' ')?;
                        Some((messages.parse::<u64>().ok()?, bytes.parse::<u64>().ok()?))
                    });
                    if let Some((messages, bytes)) = grant_read {
                        let first = !self.opened;
                        self.opened = true;
                        granted = (granted.0.max(messages), granted.1.max(bytes));
                        if first && self.side == Side::A {
                            // Side `b` opened: it is answered, and may send from now on.
                            grant(taken).await;
                        }
                    }
                }
                () = room.wait(pending.front().map_or(0, |message| message.data.len())), if !pending.is_empty() => {
                    ungranted += offer(&self.port, &mut pending, &mut taken);
                }
                Ok(()) = reconnected.changed() => {
                    // What was lost at the end of the run before the reconnection shows as a
                    // gap, and a grant lost is made good.
                    let _ = publish(&mut seq, Kind::Sync, closed()).await;
                    grant(taken).await;
                }
                _ = tick.tick() => {
                    let heard = self.far.lattice.last_heard(&self.far.id).map_or(since, |at| at.max(since));
                    let silent = heard.elapsed() > HOST_SILENCE;
                    if silent || (!self.opened && since.elapsed() > REQUEST_TIMEOUT) {
                        tracing::debug!(far = %self.far.id, silent, "a port's link gave up on its far side");
                        lose(pending.drain(..).chain(held.take()), &ledger, DropReason::LinkLost);
                        self.port.close();
                        break;
                    }
                }
            }
            if ungranted > 0 && (ungranted >= PORT_WINDOW / 4 || pending.is_empty()) {
                grant(taken).await;
                ungranted = 0;
            }
        }
        let _ = client.flush().await;
    }
}

/// Whether a port link holds anything: messages from the far side waiting for room, one from
/// its port waiting for the far side's room, or messages at its port not yet read.
struct RelayProbe {
    holding: AtomicUsize,
    port: Box<dyn Fn() -> bool + Send + Sync>,
}

impl super::quiet::Probe for RelayProbe {
    fn busy(&self) -> bool {
        self.holding.load(std::sync::atomic::Ordering::Acquire) > 0 || (self.port)()
    }
}

/// Posts the `pending` messages on `port` in order until the entangled end's queue is full;
/// counts in `taken` those that left `pending` (refusals other than a full queue are counted
/// dropped by the post), and returns how many.
fn offer(port: &MessagePort, pending: &mut VecDeque<Message>, taken: &mut (u64, u64)) -> u64 {
    let mut count = 0;
    while let Some(message) = pending.pop_front() {
        let len = message.data.len() as u64;
        match port.try_post_message(message) {
            Err(refused) if refused.reason == DropReason::QueueFull && !port.room().has_room(len as usize) => {
                pending.push_front(refused.message);
                return count;
            }
            // Queue-full with room: larger than the queue ever takes. Counted as refused.
            Err(refused) if refused.reason == DropReason::QueueFull => {
                let _ = port.post_message(refused.message);
            }
            Ok(()) | Err(_) => {}
        }
        taken.0 += 1;
        taken.1 += len;
        count += 1;
    }
    count
}

/// Counts messages that came across and can no longer be delivered: posted here, and dropped
/// for `reason`.
fn lose(messages: impl Iterator<Item = Message>, ledger: &Ledger, reason: DropReason) {
    let lost = messages.count();
    ledger.posted(lost);
    ledger.dropped(reason, lost);
}
