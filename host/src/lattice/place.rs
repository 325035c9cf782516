//! The placing side: choosing a host, sending it the component, starting the worker there,
//! and the link a proxy sends through.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::accounting::{DropReason, Ledger};
use crate::event_loop::DirectChild;
use crate::messaging::{Codec, Deliver, Message};
use crate::worker::{
    CloseReason, Component, Exit, PlaceRequest, Placement, Placer, RemoteEvents, RemoteWorker, Services,
};
use wasm_workers_protocol::ErrorEvent;

use super::hosts::{self, HostInfo};
use super::transfer::{self, Far};
use super::wire::{self, FetchReply, FetchRequest, Incoming, Kind, LinkError, SpawnReply, SpawnRequest, WireLimits};
use super::{Lattice, HEARTBEAT, HOST_SILENCE, REQUEST_TIMEOUT};

/// The longest a post (or a terminate) waits for the server to take it.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);

/// Places workers on the hosts of one lattice.
pub(super) struct NatsPlacer {
    lattice: Lattice,
    /// This side's id on the lattice, for the hosts' records.
    id: String,
    /// Components' hashes by file: each is read, hashed and put in the bucket once.
    hashes: Mutex<HashMap<std::path::PathBuf, String>>,
    /// Each host's free slots as its last answer to this side said, with its count of workers
    /// started then: newer than its advertisement until the advertisement counts as many. A
    /// burst of spawns spreads over the hosts instead of piling on the one that looked freest.
    answers: Mutex<HashMap<String, (u64, usize)>>,
    next_uid: AtomicU64,
    /// The hosts' heartbeats and the workers placed on each, to give up those of a host that
    /// falls silent.
    watch: Arc<Mutex<Watch>>,
    /// The components this side placed, by hash: the workers placed find the components they
    /// name beside these ([`serve_origin`](Self::serve_origin)).
    bases: Mutex<HashMap<String, Component>>,
    /// The host this side places for (weak: the host holds the placer).
    services: std::sync::Weak<Services>,
}

#[derive(Default)]
struct Watch {
    /// When each host was last heard.
    last_seen: HashMap<String, Instant>,
    /// Remote workers still running, with their host.
    running: Vec<(String, RemoteEvents)>,
}

impl Watch {
    /// Gives up the workers of hosts silent for longer than [`HOST_SILENCE`]; forgets those
    /// that have ended.
    fn check(&mut self, now: Instant) {
        let last_seen = &self.last_seen;
        self.running.retain(|(host, events)| {
            if events.is_finished() {
                return false;
            }
            let silent = last_seen.get(host).map_or(Duration::MAX, |seen| now.saturating_duration_since(*seen));
            if silent > HOST_SILENCE {
                events.failed(format!(
                    "host `{host}` stopped answering (no heartbeat for {} ms): the worker is lost",
                    silent.as_millis()
                ));
                return false;
            }
            true
        });
    }
}

impl NatsPlacer {
    /// A placer on `lattice`; it listens to the hosts' heartbeats from now on.
    ///
    /// # Errors
    ///
    /// If it cannot subscribe to the heartbeats.
    pub(super) fn new(lattice: Lattice, services: &Arc<Services>) -> Result<Self, String> {
        // A valid id: letters, digits, `-` and `_`.
        // Unique to this placer, even with two hosts in one process or long host names.
        let machine: String =
            hostname().chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '-' }).take(24).collect();
        let id = format!("{machine}-{}-{}", std::process::id(), nuid::next());
        let watch = Arc::new(Mutex::new(Watch::default()));
        let heartbeats = lattice
            .block_on(lattice.0.client.subscribe(format!("{}.heartbeat.*", lattice.prefix())))
            .map_err(|error| format!("cannot subscribe to the hosts' heartbeats: {error}"))?;
        // Its own heartbeat too: the hosts running its workers give them up if it dies.
        let beat = (lattice.0.client.clone(), format!("{}.heartbeat.{id}", lattice.prefix()));
        lattice.spawn(watch_heartbeats(heartbeats, Arc::downgrade(&watch), beat));
        Ok(NatsPlacer {
            lattice,
            id,
            hashes: Mutex::new(HashMap::new()),
            answers: Mutex::new(HashMap::new()),
            next_uid: AtomicU64::new(1),
            watch,
            bases: Mutex::new(HashMap::new()),
            services: Arc::downgrade(services),
        })
    }

    /// This side's id on the lattice.
    pub(super) fn id(&self) -> &str {
        &self.id
    }

    /// Answers, from now on, the fetches of the hosts running workers this side placed: each
    /// asks for a component by location, beside a component this side placed (see
    /// [`Origin`](crate::Origin)); it is resolved and opened here as a local worker's would be,
    /// and sent by hash.
    ///
    /// # Errors
    ///
    /// If it cannot subscribe.
    pub(super) fn serve_origin(self: &Arc<Self>) -> Result<(), String> {
        let lattice = &self.lattice;
        let mut requests = lattice
            .block_on(lattice.0.client.subscribe(format!("{}.origin.{}.fetch", lattice.prefix(), self.id)))
            .map_err(|error| format!("cannot subscribe: {error}"))?;
        let placer = Arc::downgrade(self);
        let client = lattice.0.client.clone();
        lattice.spawn(async move {
            while let Some(request) = requests.next().await {
                let Some(reply) = request.reply.clone() else { continue };
                let placer = placer.clone();
                let found = tokio::task::spawn_blocking(move || match placer.upgrade() {
                    Some(placer) => placer.resolve(&request.payload),
                    None => Err("the origin has left".to_string()),
                })
                .await
                .unwrap_or_else(|error| Err(error.to_string()));
                let body = serde_json::to_vec(&FetchReply { found }).unwrap_or_default();
                let _ = client.publish(reply, body.into()).await;
            }
        });
        Ok(())
    }

    /// Resolves a fetch: the hash of the component found, and where.
    fn resolve(&self, payload: &[u8]) -> Result<(String, String), String> {
        let request: FetchRequest =
            serde_json::from_slice(payload).map_err(|error| format!("unreadable fetch: {error}"))?;
        let base = self.bases.lock().unwrap_or_else(|p| p.into_inner()).get(&request.base).cloned();
        let base = base.ok_or_else(|| format!("component {} was not placed from here", request.base))?;
        let services = self.services.upgrade().ok_or("the origin has left")?;
        let shown =
            std::path::Path::new(base.location()).parent().unwrap_or(std::path::Path::new("")).join(&request.location);
        let shown = shown.display().to_string();
        let component =
            services.load_beneath(base.dir(), &request.location, &shown).map_err(|error| error.redacted())?;
        let hash = self.upload(&component)?;
        Ok((hash, shown))
    }

    /// The component's hash, its bytes in the lattice's bucket. The first placement of a file
    /// reads, hashes and (unless the bucket has it) uploads it; later ones only look it up.
    pub(super) fn upload(&self, component: &Component) -> Result<String, String> {
        let path = component.key();
        // Held while uploading: two first placements of one file upload it once.
        let mut hashes = self.hashes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(hash) = hashes.get(path) {
            return Ok(hash.clone());
        }
        let bytes = std::fs::read(path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        let hash = hex(&Sha256::digest(&bytes));
        let components = &self.lattice.0.components;
        self.lattice.block_on(async {
            super::patiently(|| async {
                let upload = async {
                    if components.info(&hash).await.is_err() {
                        components
                            .put(hash.as_str(), &mut bytes.as_slice())
                            .await
                            .map_err(|error| format!("cannot upload the component: {error}"))?;
                    }
                    Ok::<(), String>(())
                };
                // Each try bounded: a cluster electing a leader may not answer.
                tokio::time::timeout(Duration::from_secs(5), upload)
                    .await
                    .unwrap_or_else(|_| Err("cannot upload the component: the bucket did not answer".to_string()))
            })
            .await
        })?;
        hashes.insert(path.to_path_buf(), hash.clone());
        self.bases.lock().unwrap_or_else(|p| p.into_inner()).insert(hash.clone(), component.clone());
        Ok(hash)
    }

    /// The host for `placement`: of the live hosts that match and have room, the one with the
    /// most free slots (as the freshest of its advertisement and its last answer says); the
    /// first by id among equals.
    fn choose(&self, placement: &Placement, live: Vec<HostInfo>) -> Result<String, String> {
        let answers = self.answers.lock().unwrap_or_else(|p| p.into_inner());
        let free = |host: &HostInfo| match answers.get(&host.id) {
            Some(&(started, free)) if started > host.started => free,
            _ => host.free(),
        };
        let matching: Vec<&HostInfo> = live
            .iter()
            .filter(|host| match placement {
                Placement::Any => true,
                Placement::Host(id) => &host.id == id,
                Placement::Labels(labels) => labels.iter().all(|(k, v)| host.labels.get(k) == Some(v)),
            })
            .collect();
        if matching.is_empty() {
            return Err(match placement {
                Placement::Any => "no host has joined the lattice".to_string(),
                Placement::Host(id) => format!("host `{id}` is not on the lattice"),
                Placement::Labels(labels) => format!("no host of the lattice has the labels {labels:?}"),
            });
        }
        let best = matching
            .iter()
            .map(|host| (free(host), *host))
            .filter(|(free, _)| *free > 0)
            .max_by(|(a, x), (b, y)| a.cmp(b).then_with(|| y.id.cmp(&x.id)));
        match best {
            Some((_, host)) => Ok(host.id.clone()),
            None => Err(format!("no matching host has a free worker slot ({} match)", matching.len())),
        }
    }
}

impl Placer for NatsPlacer {
    fn place(
        &self,
        request: PlaceRequest<'_>,
        events: RemoteEvents,
    ) -> Result<(Arc<dyn RemoteWorker>, String), String> {
        let PlaceRequest { component, placement, name, limits, channels, origin } = request;
        let hash = self.upload(component)?;
        // A worker placed from a worker that was itself placed here resolves its locations
        // where that one does.
        let origin = origin.map_or_else(|| (self.id.clone(), hash.clone()), |origin| origin.reference());
        let lattice = &self.lattice;
        let live = lattice.block_on(hosts::live(&lattice.0.hosts))?;
        let host = self.choose(placement, live)?;
        // Numbered, and not to be guessed: a worker's subjects are named by it (the server's
        // permissions are what guard them; this only keeps a mistyped or stale id from
        // reaching a live worker).
        let uid = format!("{}-{}-{}", self.id, self.next_uid.fetch_add(1, Ordering::Relaxed), nuid::next());
        let prefix = lattice.prefix();
        let client = lattice.0.client.clone();
        let far = Far { lattice: lattice.clone(), id: host.clone(), ledger: events.ledger().clone() };
        let out = lattice.block_on(async {
            // Its channels are linked to the host that runs it.
            let mut linked = Vec::with_capacity(channels.len());
            for (label, port) in channels {
                linked.push((label, transfer::link(&far, port).await?));
            }
            let request = SpawnRequest {
                uid: uid.clone(),
                component: hash.clone(),
                location: component.location().to_string(),
                name: name.to_string(),
                limits: WireLimits::from(limits),
                from: self.id.clone(),
                channels: linked,
                origin,
            };
            // Subscribed before the worker can start, so that none of its events (nor of its
            // host's credits) is missed.
            let out = client
                .subscribe(format!("{prefix}.worker.{uid}.out"))
                .await
                .map_err(|error| format!("cannot subscribe: {error}"))?;
            let credit = client
                .subscribe(format!("{prefix}.worker.{uid}.credit"))
                .await
                .map_err(|error| format!("cannot subscribe: {error}"))?;
            let body = serde_json::to_vec(&request).map_err(|error| error.to_string())?;
            let reply = tokio::time::timeout(
                REQUEST_TIMEOUT,
                client.request(format!("{prefix}.host.{host}.spawn"), body.into()),
            )
            .await
            .map_err(|_| {
                // If it starts after all, it is told to stop (it subscribes before it answers;
                // a host that took this long terminates it itself).
                let (client, subject) = (client.clone(), format!("{prefix}.worker.{uid}.terminate"));
                let count = lattice.traffic().peer(&host);
                lattice.spawn(async move {
                    if client.publish(subject, bytes::Bytes::new()).await.is_ok() {
                        count.sent(1);
                    }
                });
                format!("host `{host}` did not answer within {} s", REQUEST_TIMEOUT.as_secs())
            })?
            .map_err(|error| format!("host `{host}`: {error}"))?;
            let reply: SpawnReply = serde_json::from_slice(&reply.payload)
                .map_err(|error| format!("host `{host}` answered unreadably: {error}"))?;
            self.answers.lock().unwrap_or_else(|p| p.into_inner()).insert(host.clone(), (reply.started, reply.free));
            match reply.error {
                Some(error) => Err(format!("host `{host}` refused: {error}")),
                None => Ok((out, credit, reply.window)),
            }
        });
        let (out, credit, window) = out?;
        let credits = Arc::new(Credits { counts: Mutex::new((window, 0, 0)), room: tokio::sync::Notify::new() });
        {
            let mut watch = self.watch.lock().unwrap_or_else(|p| p.into_inner());
            // It answered just now.
            watch.last_seen.entry(host.clone()).or_insert_with(Instant::now);
            watch.running.push((host.clone(), events.clone()));
        }
        let max_size = events.message_size();
        let subject = format!("{prefix}.worker.{uid}");
        let credits_weak = Arc::downgrade(&credits);
        let link = Link {
            lattice: lattice.clone(),
            subject_in: format!("{subject}.in"),
            subject,
            seq: Mutex::new(0),
            // What the far queue can ever hold: a larger message is refused here, as too large.
            message_size: limits
                .message_size
                .unwrap_or(crate::limits::DEFAULT_MESSAGE_SIZE)
                .min(limits.queued_bytes.unwrap_or(crate::limits::DEFAULT_QUEUED_BYTES)),
            credits,
            events: events.clone(),
            host: host.clone(),
            count: lattice.traffic().peer(&host),
        };
        let link = Arc::new(link);
        let receiving =
            Receiving { out, credit, credits: credits_weak, link: Arc::downgrade(&link), count: link.count.clone() };
        lattice.spawn(receive_events(receiving, events, far, max_size));
        Ok((link, host))
    }
}

/// Records the hosts' heartbeats, checks for silent hosts every half heartbeat, and sends
/// this side's own heartbeat on `beat`'s subject, for as long as the placer lives.
async fn watch_heartbeats(
    mut heartbeats: async_nats::Subscriber,
    watch: std::sync::Weak<Mutex<Watch>>,
    beat: (async_nats::Client, String),
) {
    let mut check = tokio::time::interval(HEARTBEAT / 2);
    let mut own = tokio::time::interval(HEARTBEAT);
    loop {
        tokio::select! {
            _ = own.tick() => {
                if watch.strong_count() == 0 {
                    return;
                }
                let _ = beat.0.publish(beat.1.clone(), bytes::Bytes::new()).await;
            }
            heartbeat = heartbeats.next() => {
                let Some(heartbeat) = heartbeat else { return };
                let Some(watch) = watch.upgrade() else { return };
                if let Some(host) = heartbeat.subject.rsplit('.').next() {
                    watch.lock().unwrap_or_else(|p| p.into_inner()).last_seen.insert(host.to_string(), Instant::now());
                }
            }
            _ = check.tick() => {
                let Some(watch) = watch.upgrade() else { return };
                watch.lock().unwrap_or_else(|p| p.into_inner()).check(Instant::now());
            }
        }
    }
}

/// Turns what arrives on a remote worker's `out` subject into its events here, and its host's
/// credits into `credits`, until its end (or until it is given up here: checked every
/// heartbeat, so that the subscriptions of a worker whose host died do not stay).
/// What [`receive_events`] listens to, and the link it numbers a sync on after a
/// reconnection.
struct Receiving {
    out: async_nats::Subscriber,
    credit: async_nats::Subscriber,
    credits: std::sync::Weak<Credits>,
    link: std::sync::Weak<Link>,
    count: Arc<super::quiet::PeerCount>,
}

async fn receive_events(receiving: Receiving, events: RemoteEvents, far: Far, max_size: usize) {
    let Receiving { mut out, mut credit, credits, link, count } = receiving;
    let mut reconnected = far.lattice.reconnected();
    reconnected.mark_unchanged();
    let host = far.id.clone();
    // However this ends, a sender waiting for room stops waiting (a post then fails).
    struct WakeWaiters(std::sync::Weak<Credits>);
    impl Drop for WakeWaiters {
        fn drop(&mut self) {
            if let Some(credits) = self.0.upgrade() {
                credits.room.notify_waiters();
            }
        }
    }
    let _wake = WakeWaiters(credits.clone());
    let mut incoming = Incoming::new(max_size);
    let mut check = tokio::time::interval(HEARTBEAT);
    loop {
        let message = tokio::select! {
            message = out.next() => match message {
                Some(message) => message,
                None => return,
            },
            Some(message) = credit.next() => {
                let _taking = super::quiet::Taking(&count);
                let total = std::str::from_utf8(&message.payload).ok().and_then(|text| text.parse::<u64>().ok());
                if let (Some(taken), Some(credits)) = (total, credits.upgrade()) {
                    credits.taken(taken);
                }
                continue;
            }
            _ = check.tick() => {
                if events.is_finished() {
                    return;
                }
                continue;
            }
            Ok(()) = reconnected.changed() => {
                // What was lost at the end of the run before the reconnection shows as a gap.
                if let Some(link) = link.upgrade() {
                    tokio::task::spawn_blocking(move || link.publish_numbered(Kind::Sync, false));
                }
                continue;
            }
        };
        // Counted taken once handled: a message goes to the parent's queue (where it counts as
        // work here) before this counts it.
        let _taking = super::quiet::Taking(&count);
        let (kind, envelope) = match incoming.take(&message) {
            Ok(Some(whole)) => whole,
            Ok(None) => continue,
            Err(LinkError::Lost(skipped, then)) => {
                // Lost in transit: counted here, where they were due (the far host counted them
                // delivered, handed to the link).
                let lost = LinkError::lost(skipped, then);
                far.ledger.posted(lost);
                far.ledger.dropped(DropReason::LinkLost, lost);
                events.failed(format!("{skipped} messages from host `{host}` were lost in transit"));
                return;
            }
            Err(LinkError::TooLarge) => {
                events
                    .failed(format!("host `{host}` sent a message larger than its parent accepts ({max_size} bytes)"));
                return;
            }
            Err(LinkError::Broken(why)) => {
                events.failed(format!("the link to host `{host}` broke: {why}"));
                return;
            }
        };
        match kind {
            Kind::Message => match transfer::decode(&far, envelope).await {
                Ok(message) => events.message(message),
                Err(why) => {
                    // Delivered there (handed to the link): lost here, counted.
                    far.ledger.posted(1);
                    far.ledger.dropped(DropReason::LinkLost, 1);
                    events.failed(format!("a message from host `{host}` could not be taken: {why}"));
                    return;
                }
            },
            // Not sent by a worker's host.
            Kind::Release | Kind::Sync => {}
            Kind::Closed => {
                let reason = match envelope.payload.as_slice() {
                    b"idle" => CloseReason::Idle,
                    b"terminated" => CloseReason::Terminated,
                    _ => CloseReason::Closed,
                };
                events.ended(Exit::Closed(reason));
                return;
            }
            Kind::Error => {
                let error: ErrorEvent = match serde_json::from_slice::<WireError>(&envelope.payload) {
                    Ok(error) => ErrorEvent {
                        message: format!("{} (on host `{host}`)", error.message),
                        worker: error.worker,
                        location: error.location,
                        lineno: error.lineno,
                        colno: error.colno,
                    },
                    Err(_) => ErrorEvent::new(format!("failed on host `{host}`"), String::new(), String::new()),
                };
                events.ended(Exit::Failed(error));
                return;
            }
        }
    }
}

/// An error event as it travels.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct WireError {
    pub(super) message: String,
    pub(super) worker: String,
    pub(super) location: String,
    #[serde(default)]
    pub(super) lineno: u32,
    #[serde(default)]
    pub(super) colno: u32,
}

/// The way to one remote worker: its `in` and `terminate` subjects.
struct Link {
    lattice: Lattice,
    /// `P.worker.<uid>`.
    subject: String,
    /// `P.worker.<uid>.in`.
    subject_in: String,
    /// The last number used on `in`.
    seq: Mutex<u64>,
    /// The largest message the worker accepts.
    message_size: usize,
    credits: Arc<Credits>,
    /// Its events: whether it has ended, and its counters here.
    events: RemoteEvents,
    /// The id of its host.
    host: String,
    /// What was sent to, and taken from, its host (for the lattice's quiescence).
    count: Arc<super::quiet::PeerCount>,
}

/// How many more messages a link may send before its host says it has taken more: the window
/// the host gave, less what was sent and not yet taken there. With none, the parent's posts
/// are refused as `queue-full`, as a local child's full queue refuses them. The host says
/// how many it has taken *in all*, so that a credit lost on the way (a server restart) is made
/// good by the next.
struct Credits {
    /// The window, the messages sent, the messages the host has said it took.
    counts: Mutex<(u64, u64, u64)>,
    /// Told when credits come (and when the worker ends), for senders waiting for room.
    room: tokio::sync::Notify,
}

impl Credits {
    fn available(&self) -> u64 {
        let (window, sent, taken) = *self.counts.lock().unwrap_or_else(|p| p.into_inner());
        (window + taken).saturating_sub(sent)
    }

    /// Takes one credit, if there is one.
    fn take_one(&self) -> bool {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let (window, sent, taken) = *counts;
        let free = (window + taken).saturating_sub(sent) > 0;
        if free {
            counts.1 += 1;
        }
        free
    }

    /// The host has taken `total` messages in all.
    fn taken(&self, total: u64) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.2 = counts.2.max(total);
        drop(counts);
        self.room.notify_waiters();
    }
}

impl Deliver for Link {
    /// Publishes `message` from the caller's thread, in order, if the host has credited room
    /// for it; refused `queue-full` otherwise, as a local child's full queue refuses. Settled
    /// delivered in `ledger` once handed to the link: the far host counts it again, posted
    /// and settled there.
    fn deliver(&self, mut message: Message, ledger: Option<&Ledger>) -> Result<(), (DropReason, Message)> {
        if self.events.is_finished() {
            return Err((DropReason::ReceiverGone, message));
        }
        // Across hosts a message's buffers travel with its data: together they must fit.
        let buffers: usize = message.buffers.iter().map(|buffer| buffer.len() as usize).sum();
        if message.data.len().saturating_add(buffers) > self.message_size {
            return Err((DropReason::TooLarge, message));
        }
        if !self.credits.take_one() {
            return Err((DropReason::QueueFull, message));
        }
        let counted = std::mem::take(&mut message.counted);
        let len = message.data.len();
        let client = &self.lattice.0.client;
        let max_payload = client.server_info().max_payload;
        let far = Far { lattice: self.lattice.clone(), id: self.host.clone(), ledger: self.events.ledger().clone() };
        // The lock orders the publishes of all the threads that post to this worker.
        let mut seq = self.seq.lock().unwrap_or_else(|p| p.into_inner());
        let sent = {
            let publish = async {
                // Its ports are linked, its buffers copied: the message is gone from here.
                let envelope =
                    transfer::encode(&far, std::mem::replace(&mut message, Message::new(Codec::Raw, Vec::new())))
                        .await?;
                for (headers, payload) in wire::parts(&mut seq, Kind::Message, envelope, max_payload) {
                    client
                        .publish_with_headers(self.subject_in.clone(), headers, payload)
                        .await
                        .map_err(|e| e.to_string())?;
                    self.count.sent(1);
                }
                Ok::<(), String>(())
            };
            // Most posts complete at once (the client queues the message for its connection): tried
            // first without a runtime or a timer. One that must wait (ports to link, a full client
            // queue) waits at most PUBLISH_TIMEOUT for a server that is away (it is lost then); the
            // timeout is made inside the runtime, whose clock it needs.
            let mut publish = std::pin::pin!(publish);
            let mut first = std::task::Context::from_waker(std::task::Waker::noop());
            match publish.as_mut().poll(&mut first) {
                std::task::Poll::Ready(sent) => Ok(sent),
                std::task::Poll::Pending => {
                    self.lattice.block_on(async { tokio::time::timeout(PUBLISH_TIMEOUT, publish).await })
                }
            }
        };
        let sent = sent.unwrap_or_else(|_| Err("the server took no more".to_string()));
        drop(seq);
        match sent {
            Ok(()) => {
                self.events.sent(len);
                if counted {
                    if let Some(ledger) = ledger {
                        ledger.delivered(1);
                    }
                }
                Ok(())
            }
            Err(error) => {
                // Some parts may have gone: the far side sees the next message's number skip
                // ahead, and ends the link, as for any loss.
                tracing::debug!(%error, "publish failed");
                message.counted = counted;
                Err((DropReason::LinkLost, message))
            }
        }
    }

    fn message_size(&self) -> usize {
        self.message_size
    }
}

impl DirectChild for Link {
    /// Tells the host that runs the worker that nothing more comes from its parent: as a
    /// local worker whose senders are gone, it may end idle.
    fn release(&self) {
        // On `in`, numbered: it comes after every message posted before it.
        self.publish_numbered(Kind::Release, tokio::runtime::Handle::try_current().is_ok());
    }
}

impl Link {
    /// Publishes an empty message of `kind` on `in`, numbered after the messages before it,
    /// waiting at most [`PUBLISH_TIMEOUT`]; `detached`: without waiting (from a thread of the
    /// lattice's runtime, which must not block).
    fn publish_numbered(&self, kind: Kind, detached: bool) {
        let client = self.lattice.0.client.clone();
        let subject = self.subject_in.clone();
        let max_payload = client.server_info().max_payload;
        let mut seq = self.seq.lock().unwrap_or_else(|p| p.into_inner());
        let parts = wire::parts(&mut seq, kind, wire::Envelope::plain(Codec::Raw, Vec::new()), max_payload);
        let count = self.count.clone();
        let send = async move {
            let publish = async {
                for (headers, payload) in parts {
                    if client.publish_with_headers(subject.clone(), headers, payload).await.is_ok() {
                        count.sent(1);
                    }
                }
                let _ = client.flush().await;
            };
            let _ = tokio::time::timeout(PUBLISH_TIMEOUT, publish).await;
        };
        if detached {
            self.lattice.spawn(send);
        } else {
            // Held while it goes: no post overtakes it.
            self.lattice.block_on(send);
            drop(seq);
        }
    }
}

impl RemoteWorker for Link {
    fn host(&self) -> &str {
        &self.host
    }

    fn has_room(&self) -> bool {
        self.events.is_finished() || self.credits.available() > 0
    }

    fn room(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            loop {
                let notified = self.credits.room.notified();
                if self.has_room() {
                    return;
                }
                // Told when credits come, and when the worker's events end.
                notified.await;
            }
        })
    }

    fn terminate(&self) {
        let client = self.lattice.0.client.clone();
        let subject = format!("{}.terminate", self.subject);
        let count = self.count.clone();
        self.lattice.block_on(async move {
            let stop = async {
                if client.publish(subject, bytes::Bytes::new()).await.is_ok() {
                    count.sent(1);
                }
                let _ = client.flush().await;
            };
            let _ = tokio::time::timeout(PUBLISH_TIMEOUT, stop).await;
        });
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .unwrap_or_else(|_| "host".into())
}
