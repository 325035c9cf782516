//! The serving side: a host of the lattice (`wasm-workers host`) runs the workers placed on
//! it, each as one of its own root workers whose parent is on another host.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio::task::JoinSet;

use crate::accounting::DropReason;
use crate::host::Host;
use crate::messaging::{Codec, Message};
use crate::worker::{CloseReason, Origin, WorkerEvent, WorkerHandle, WorkerOptions};

use super::hosts::{self, HostInfo};
use super::origin::NatsOrigin;
use super::place::WireError;
use super::transfer::{self, Far};
use super::wire::{self, Envelope, Incoming, Kind, LinkError, SpawnReply, SpawnRequest};
use super::{Lattice, LatticeError, ADVERTISE_EVERY, HEARTBEAT, HOST_SILENCE};
use std::time::Duration;

/// How a host serves the lattice.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Its id on the lattice; unique among the live hosts.
    pub id: String,
    /// Its labels, matched by placements.
    pub labels: BTreeMap<String, String>,
    /// The most workers it runs for the lattice at once.
    pub max_workers: usize,
    /// Where it keeps the components it was sent, by hash.
    pub component_dir: PathBuf,
    /// The only components it runs, by SHA-256 (hex); `None`: any it is sent.
    pub allowed: Option<std::collections::HashSet<String>>,
}

/// What the serving tasks share.
pub(super) struct Serving {
    pub(super) host: Host,
    pub(super) lattice: Lattice,
    options: ServeOptions,
    running: AtomicUsize,
    started: AtomicU64,
    /// Set when the host leaves: every pump terminates its worker.
    stopping: tokio::sync::watch::Sender<bool>,
    /// When each placing side was last heard, and the workers each placed here: a worker
    /// whose placing side falls silent is terminated, so that a parent that died leaves no
    /// orphans holding this host's slots.
    parents: std::sync::Mutex<Parents>,
}

#[derive(Default)]
struct Parents {
    last_seen: std::collections::HashMap<String, std::time::Instant>,
    workers: Vec<(String, Arc<tokio::sync::Notify>)>,
}

impl Parents {
    /// Tells the pumps of workers whose placing side is silent to end them, and forgets
    /// sides silent for a minute (a stream of made-up ids cannot grow the map for long).
    fn check(&mut self, now: std::time::Instant) {
        self.last_seen.retain(|_, seen| now.saturating_duration_since(*seen) < Duration::from_secs(60));
        let last_seen = &self.last_seen;
        self.workers.retain(|(from, orphaned)| {
            if Arc::strong_count(orphaned) == 1 {
                // Its pump has ended.
                return false;
            }
            let silent = last_seen.get(from).map_or(Duration::MAX, |seen| now.saturating_duration_since(*seen));
            if silent > HOST_SILENCE {
                orphaned.notify_one();
                return false;
            }
            true
        });
    }
}

/// Serves the lattice as host `options.id` until `stop` resolves; then terminates the
/// workers it runs (their parents hear that they were terminated), leaves the lattice and
/// returns. Blocks; call it outside an async runtime.
///
/// # Errors
///
/// If the host cannot subscribe to its subjects or advertise itself, or another host of the
/// lattice has its id.
pub fn serve(
    host: &Host,
    lattice: &Lattice,
    options: ServeOptions,
    stop: impl std::future::Future<Output = ()> + Send,
) -> Result<(), LatticeError> {
    std::fs::create_dir_all(&options.component_dir)
        .map_err(|error| LatticeError::Other(format!("cannot make {}: {error}", options.component_dir.display())))?;
    let serving = Arc::new(Serving {
        host: host.clone(),
        lattice: lattice.clone(),
        options,
        running: AtomicUsize::new(0),
        started: AtomicU64::new(0),
        stopping: tokio::sync::watch::Sender::new(false),
        parents: std::sync::Mutex::new(Parents::default()),
    });
    // Asked by placing sides whether the workers they placed here are quiet.
    lattice.answer_quiet(&serving.options.id, host.services()).map_err(LatticeError::Other)?;
    lattice.block_on(serve_until(serving, stop))
}

async fn serve_until(serving: Arc<Serving>, stop: impl std::future::Future<Output = ()>) -> Result<(), LatticeError> {
    let lattice = &serving.lattice;
    let id = serving.options.id.clone();
    let live = hosts::live(&lattice.0.hosts).await.map_err(LatticeError::Other)?;
    if live.iter().any(|host| host.id == id) {
        return Err(LatticeError::Other(format!(
            "a host with id `{id}` is already on lattice `{}` (choose another with --id)",
            lattice.name()
        )));
    }
    let client = lattice.0.client.clone();
    let mut requests = client
        .subscribe(format!("{}.host.{id}.spawn", lattice.prefix()))
        .await
        .map_err(|error| LatticeError::Other(format!("cannot subscribe: {error}")))?;
    let heartbeats = client
        .subscribe(format!("{}.heartbeat.*", lattice.prefix()))
        .await
        .map_err(|error| LatticeError::Other(format!("cannot subscribe: {error}")))?;
    // On a cluster a bucket just made may take a moment to take writes on every server.
    let mut attempt = 0;
    while let Err(error) = hosts::advertise(&lattice.0.hosts, &serving.info()).await {
        attempt += 1;
        if attempt >= 10 {
            return Err(LatticeError::Other(error));
        }
        tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
    }
    tracing::info!(host = %id, lattice = %lattice.name(), "joined the lattice");
    let mut workers = JoinSet::new();
    // Heartbeats, and the watch on placing sides, run beside the loop, so that a spawn that
    // takes long (fetching and compiling a component) never makes this host look dead.
    let beating = tokio::spawn(heartbeat(serving.clone(), heartbeats, format!("{}.heartbeat.{id}", lattice.prefix())));
    let mut advertise = tokio::time::interval(ADVERTISE_EVERY);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            _ = advertise.tick() => {
                if let Err(error) = hosts::advertise(&lattice.0.hosts, &serving.info()).await {
                    tracing::warn!(%error, "advertisement");
                }
            }
            request = requests.next() => {
                let Some(request) = request else { break };
                let reply = request.reply.clone();
                let answer = match serving.start(&request.payload, &mut workers).await {
                    Ok(window) => SpawnReply { error: None, free: serving.free(), started: serving.started(), window },
                    Err(error) => {
                        SpawnReply { error: Some(error), free: serving.free(), started: serving.started(), window: 0 }
                    }
                };
                if let Some(reply) = reply {
                    let body = serde_json::to_vec(&answer).unwrap_or_default();
                    let _ = client.publish(reply, body.into()).await;
                }
            }
            Some(_) = workers.join_next(), if !workers.is_empty() => {}
        }
    }
    // Leaving: every worker is terminated; each pump publishes its end before it returns.
    serving.stopping.send_replace(true);
    while workers.join_next().await.is_some() {}
    beating.abort();
    hosts::withdraw(&lattice.0.hosts, &id).await;
    let _ = client.flush().await;
    tracing::info!(host = %id, "left the lattice");
    Ok(())
}

/// Says every [`HEARTBEAT`] that this host is alive, records the placing sides' heartbeats,
/// and ends the workers of those gone silent.
async fn heartbeat(serving: Arc<Serving>, mut heartbeats: async_nats::Subscriber, subject: String) {
    let client = serving.lattice.0.client.clone();
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let _ = client.publish(subject.clone(), bytes::Bytes::new()).await;
                serving.parents.lock().unwrap_or_else(|p| p.into_inner()).check(std::time::Instant::now());
            }
            beat = heartbeats.next() => {
                let Some(beat) = beat else { return };
                if let Some(from) = beat.subject.strip_prefix(&format!("{}.heartbeat.", serving.lattice.prefix())) {
                    let mut parents = serving.parents.lock().unwrap_or_else(|p| p.into_inner());
                    parents.last_seen.insert(from.to_string(), std::time::Instant::now());
                }
            }
        }
    }
}

impl Serving {
    fn info(&self) -> HostInfo {
        let counts = self.host.message_counts();
        HostInfo {
            posted: counts.posted,
            delivered: counts.delivered,
            dropped: counts.dropped.total(),
            queue_full: counts.dropped.queue_full,
            id: self.options.id.clone(),
            cores: self.host.hardware_concurrency(),
            max_workers: self.options.max_workers,
            running: self.running.load(Ordering::Acquire),
            started: self.started.load(Ordering::Acquire),
            labels: self.options.labels.clone(),
        }
    }

    fn started(&self) -> u64 {
        self.started.load(Ordering::Acquire)
    }

    fn free(&self) -> usize {
        self.options.max_workers.saturating_sub(self.running.load(Ordering::Acquire))
    }

    /// Starts the worker `payload` asks for; its pump goes into `workers`. Returns the window
    /// its parent may send ahead.
    async fn start(self: &Arc<Self>, payload: &[u8], workers: &mut JoinSet<()>) -> Result<u64, String> {
        let asked = std::time::Instant::now();
        let request: SpawnRequest =
            serde_json::from_slice(payload).map_err(|error| format!("unreadable spawn request: {error}"))?;
        // The id names the worker's subjects: a wildcard (`*`, `>`) or a dot in it would
        // subscribe to other workers' traffic.
        let id_ok = !request.uid.is_empty()
            && request.uid.len() <= 200
            && request.uid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !id_ok || !super::valid_id(&request.from) {
            return Err("a spawn request whose worker or placing side is named unreadably".to_string());
        }
        self.allows(&request.component, &request.location)?;
        if self.running.load(Ordering::Acquire) >= self.options.max_workers {
            return Err(format!("it runs its limit of {} workers", self.options.max_workers));
        }
        let path = self.fetch(&request.component).await?;
        let far = Far {
            lattice: self.lattice.clone(),
            id: request.from.clone(),
            ledger: self.host.services().ledger.clone(),
        };
        // Its channels, each linked to its port on the placing side.
        let mut channels = Vec::with_capacity(request.channels.len());
        for (label, link) in &request.channels {
            if !super::valid_id(link) {
                return Err(format!("channel `{label}` names its link unreadably"));
            }
            channels.push((label.clone(), transfer::accept(&far, link).await?));
        }
        let host = self.host.clone();
        let name = request.name.clone();
        let limits = request.limits.into();
        let (id, base) = request.origin.clone();
        if !super::valid_id(&id) {
            return Err(format!("origin `{id}` is not a valid id"));
        }
        let origin = Origin(Arc::new(NatsOrigin { serving: self.clone(), id, base }));
        let handle = tokio::task::spawn_blocking(move || {
            let component = host.load(&path).map_err(|error| error.to_string())?;
            let options =
                WorkerOptions { name: Some(name), limits, channels, origin: Some(origin), ..WorkerOptions::default() };
            host.spawn(&component, options).map_err(|error| error.to_string())
        })
        .await
        .map_err(|error| error.to_string())??;
        let client = self.lattice.0.client.clone();
        let subject = format!("{}.worker.{}", self.lattice.prefix(), request.uid);
        let input = client.subscribe(format!("{subject}.in")).await.map_err(|error| error.to_string())?;
        let terminate = client.subscribe(format!("{subject}.terminate")).await.map_err(|error| error.to_string())?;
        // Subscribed before the answer: whatever the parent sends once it has it arrives.
        client.flush().await.map_err(|error| error.to_string())?;
        if asked.elapsed() >= super::REQUEST_TIMEOUT {
            // The placing side has stopped waiting for the answer: nobody would hold this
            // worker, which would run without a parent.
            handle.terminate();
            return Err(format!("it took longer than {} s to start", super::REQUEST_TIMEOUT.as_secs()));
        }
        self.running.fetch_add(1, Ordering::AcqRel);
        self.started.fetch_add(1, Ordering::AcqRel);
        tracing::info!(worker = %request.name, uid = %request.uid, from = %request.from, "started a worker for the lattice");
        let window = window(&handle);
        let orphaned = Arc::new(tokio::sync::Notify::new());
        {
            let mut parents = self.parents.lock().unwrap_or_else(|p| p.into_inner());
            // It asked just now.
            parents.last_seen.insert(request.from.clone(), std::time::Instant::now());
            parents.workers.push((request.from.clone(), orphaned.clone()));
        }
        let serving = self.clone();
        let subscriptions = Subscriptions { input, terminate, location: request.location.clone() };
        workers.spawn(async move {
            pump(&serving, handle, subscriptions, &subject, &orphaned, window, far).await;
            serving.running.fetch_sub(1, Ordering::AcqRel);
        });
        Ok(window)
    }

    /// Whether this host runs the component with SHA-256 `hash` (found at `location`).
    pub(super) fn allows(&self, hash: &str, location: &str) -> Result<(), String> {
        match &self.options.allowed {
            Some(allowed) if !allowed.contains(hash) => {
                Err(format!("component {hash} (`{location}`) is not one this host runs (--allow-component)"))
            }
            _ => Ok(()),
        }
    }

    /// The component with SHA-256 `hash`, from this host's directory or else the lattice's
    /// bucket (verified, then kept).
    pub(super) async fn fetch(&self, hash: &str) -> Result<PathBuf, String> {
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("`{hash}` is not a SHA-256"));
        }
        let path = self.options.component_dir.join(format!("{hash}.wasm"));
        if path.exists() {
            return Ok(path);
        }
        let components = &self.lattice.0.components;
        let max = self.host.services().max_component_size;
        // Each try bounded: on a cluster electing a new leader for the bucket, a read can wait
        // for chunks that do not come.
        let bytes = super::patiently(|| async {
            let read = async {
                let mut object = components
                    .get(hash)
                    .await
                    .map_err(|error| format!("component {hash} is not in the lattice's bucket: {error}"))?;
                let mut bytes = Vec::new();
                (&mut object)
                    .take(max + 1)
                    .read_to_end(&mut bytes)
                    .await
                    .map_err(|error| format!("cannot read component {hash}: {error}"))?;
                Ok::<_, String>(bytes)
            };
            tokio::time::timeout(FETCH_TIMEOUT, read)
                .await
                .unwrap_or_else(|_| Err(format!("component {hash} could not be read within {FETCH_TIMEOUT:?}")))
        })
        .await?;
        if bytes.len() as u64 > max {
            return Err(format!("component {hash} is larger than this host loads ({max} bytes)"));
        }
        let actual: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        if actual != hash {
            return Err(format!("component {hash} does not match its hash (its bytes hash to {actual})"));
        }
        write_atomically(&path, &bytes).map_err(|error| format!("cannot keep component {hash}: {error}"))?;
        Ok(path)
    }
}

/// The longest one try at reading a component from the lattice's bucket takes.
const FETCH_TIMEOUT: Duration = Duration::from_secs(2);

/// The most messages a parent may have on their way to one remote worker before it hears
/// that they were taken.
const MAX_WINDOW: u64 = 4096;

/// The window of a worker: what its queue holds, at most [`MAX_WINDOW`] (a subscription's
/// buffer holds 65,536 messages before the client drops them: a window keeps far below it).
fn window(handle: &WorkerHandle) -> u64 {
    let queued = handle.limits().queued_messages.unwrap_or(crate::limits::DEFAULT_QUEUED_MESSAGES) as u64;
    queued.clamp(1, MAX_WINDOW)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut file, bytes)?;
    file.persist(path).map_err(|error| error.error)?;
    Ok(())
}

/// Posts the `pending` messages to the worker in order until its queue is full; returns how
/// many left `pending` (each frees its place in the window). Refusals other than a full queue
/// are counted dropped, by their reason; so is a message larger than the queue's byte limit,
/// which can never fit.
fn offer(
    handle: &WorkerHandle,
    pending: &mut std::collections::VecDeque<Message>,
    pending_bytes: &mut usize,
    ledger: &crate::accounting::Ledger,
) -> u64 {
    let max_bytes = handle.limits().queued_bytes.unwrap_or(crate::limits::DEFAULT_QUEUED_BYTES);
    let mut taken = 0;
    while let Some(message) = pending.pop_front() {
        let len = message.data.len();
        match handle.try_post_message(message) {
            Err(refused) if refused.reason == DropReason::QueueFull && len <= max_bytes => {
                pending.push_front(refused.message);
                break;
            }
            Err(refused) if refused.reason == DropReason::QueueFull => {
                // Larger than the queue's byte limit: it never fits.
                drop(refused);
                ledger.posted(1);
                ledger.dropped(DropReason::TooLarge, 1);
            }
            // Taken, or refused and counted dropped by the post.
            Ok(()) | Err(_) => {}
        }
        *pending_bytes -= len;
        taken += 1;
    }
    taken
}

/// Whether a pump holds anything: messages waiting for room, or the worker's events not yet
/// passed on.
struct PumpProbe {
    pending: AtomicUsize,
    /// An event taken from the handle is being passed on (encoded, published).
    handling: std::sync::atomic::AtomicBool,
    events: Box<dyn Fn() -> bool + Send + Sync>,
}

impl PumpProbe {
    /// Marks an event taken from the handle as being passed on, until the loop comes round.
    fn handle<T>(&self, event: T) -> T {
        self.handling.store(true, Ordering::Release);
        event
    }
}

impl super::quiet::Probe for PumpProbe {
    fn busy(&self) -> bool {
        self.pending.load(Ordering::Acquire) > 0 || self.handling.load(Ordering::Acquire) || (self.events)()
    }
}

/// A placed worker's subjects from its parent (messages and its release, terminate), and
/// where its placing side loaded it from.
struct Subscriptions {
    input: async_nats::Subscriber,
    terminate: async_nats::Subscriber,
    location: String,
}

/// Carries one worker's traffic: the parent's messages in, its events out, until it ends.
/// `far` is its parent's side.
async fn pump(
    serving: &Serving,
    mut handle: WorkerHandle,
    subscriptions: Subscriptions,
    subject: &str,
    orphaned: &tokio::sync::Notify,
    window: u64,
    far: Far,
) {
    let Subscriptions { mut input, mut terminate, location } = subscriptions;
    let mut reconnected = serving.lattice.reconnected();
    reconnected.mark_unchanged();
    // Its parent let go (after the messages before): once those are in its queue, its input
    // ends, and it may end idle.
    let mut released = false;
    let client = serving.lattice.0.client.clone();
    let ledger = serving.host.services().ledger.clone();
    let out = format!("{subject}.out");
    let credit = format!("{subject}.credit");
    let room = handle.room();
    // Messages that arrived while the worker's queue was full, in order: at most a window.
    let mut pending: std::collections::VecDeque<Message> = std::collections::VecDeque::new();
    // For the lattice's quiescence: what is sent to and taken from the parent's side, and
    // whether this pump holds anything (waiting messages, events not yet passed on).
    let count = serving.lattice.traffic().peer(&far.id);
    let probe = Arc::new(PumpProbe {
        pending: AtomicUsize::new(0),
        handling: std::sync::atomic::AtomicBool::new(false),
        events: Box::new(handle.unread_events()),
    });
    serving.lattice.traffic().watch(Arc::downgrade(&probe) as std::sync::Weak<dyn super::quiet::Probe>);
    // Messages taken into the worker's queue and not yet credited back.
    let mut accepted = 0u64;
    // Messages taken into the worker's queue in all: what the credits say (a credit lost on
    // the way is made good by the next).
    let mut taken_total = 0u64;
    let mut stopping = serving.stopping.subscribe();
    // Whether the worker was told to end (by its parent, by this host leaving, or because its
    // parent's side fell silent): each is acted on once.
    let mut ending = false;
    // The bytes held in `pending`, at most what the worker's queue holds.
    let max_pending_bytes = handle.limits().queued_bytes.unwrap_or(crate::limits::DEFAULT_QUEUED_BYTES);
    let mut pending_bytes = 0usize;
    let max_size = handle.limits().message_size.unwrap_or(crate::limits::DEFAULT_MESSAGE_SIZE);
    let mut incoming = Incoming::new(max_size);
    let max_payload = client.server_info().max_payload;
    // Why the link from the parent broke, if it did: the worker is terminated, and its parent
    // hears this instead of a plain close.
    let mut failure: Option<String> = None;
    let mut out_seq = 0u64;
    let publish = |out_seq: &mut u64, kind: Kind, envelope: Envelope| {
        let parts = wire::parts(out_seq, kind, envelope, max_payload);
        let client = client.clone();
        let out = out.clone();
        let count = count.clone();
        async move {
            for (headers, payload) in parts {
                match client.publish_with_headers(out.clone(), headers, payload).await {
                    Ok(()) => count.sent(1),
                    Err(error) => tracing::warn!(%error, "cannot publish a worker's event"),
                }
            }
        }
    };
    let publish_credit = |total: u64| {
        let (client, credit, count) = (client.clone(), credit.clone(), count.clone());
        async move {
            if client.publish(credit, total.to_string().into()).await.is_ok() {
                count.sent(1);
            }
        }
    };
    loop {
        probe.pending.store(pending.len(), Ordering::Release);
        // Whatever was being passed on has gone (its publish is counted).
        probe.handling.store(false, Ordering::Release);
        tokio::select! {
            event = handle.recv() => match probe.handle(event) {
                Some(WorkerEvent::Message(message)) => match transfer::encode(&far, message).await {
                    // Its buffers travel with its data: together they must fit what the parent
                    // takes (its limits are the worker's), or the parent would refuse it whole.
                    Ok(envelope) if envelope.payload.len() > max_size => {
                        ledger.posted(1);
                        ledger.dropped(DropReason::TooLarge, 1);
                    }
                    Ok(envelope) => publish(&mut out_seq, Kind::Message, envelope).await,
                    Err(why) => {
                        // Delivered to this side's handle already: lost on the way, counted.
                        tracing::warn!(%why, "a worker's message could not be sent to its parent");
                        ledger.posted(1);
                        ledger.dropped(DropReason::LinkLost, 1);
                    }
                },
                Some(WorkerEvent::Closed(_)) if failure.is_some() => {
                    let message = failure.take().unwrap_or_default();
                    let error = WireError {
                        message,
                        worker: handle.name().to_string(),
                        location: location.clone(),
                        lineno: 0,
                        colno: 0,
                    };
                    let body = serde_json::to_vec(&error).unwrap_or_default();
                    publish(&mut out_seq, Kind::Error, Envelope::plain(Codec::Json, body)).await;
                    break;
                }
                Some(WorkerEvent::Closed(reason)) => {
                    let how = match reason {
                        CloseReason::Closed => "closed",
                        CloseReason::Idle => "idle",
                        CloseReason::Terminated => "terminated",
                    };
                    publish(&mut out_seq, Kind::Closed, Envelope::plain(Codec::Raw, how.as_bytes().to_vec())).await;
                    break;
                }
                Some(WorkerEvent::Error(error)) => {
                    // Where its placing side loaded it from, not where this host keeps it.
                    let error = WireError {
                        message: error.message,
                        worker: error.worker,
                        location: location.clone(),
                        lineno: error.lineno,
                        colno: error.colno,
                    };
                    let body = serde_json::to_vec(&error).unwrap_or_default();
                    publish(&mut out_seq, Kind::Error, Envelope::plain(Codec::Json, body)).await;
                    break;
                }
                None => break,
            },
            message = input.next() => {
                let Some(message) = message else { break };
                // Counted taken once handled (in the worker's queue, or waiting here).
                let _taking = super::quiet::Taking(&count);
                let envelope = match incoming.take(&message) {
                    Ok(Some((Kind::Sync, _))) => continue,
                    Ok(Some((Kind::Release, _))) => {
                        released = true;
                        if pending.is_empty() {
                            handle.end_input();
                        }
                        continue;
                    }
                    Ok(Some((_, envelope))) => envelope,
                    Ok(None) => continue,
                    Err(LinkError::Lost(skipped, then)) => {
                        // Lost in transit: counted here, where they were due (by the NATS
                        // messages missing, a part of a large message counting as one), with
                        // the one that showed the gap, and the link ends.
                        let lost = LinkError::lost(skipped, then);
                        ledger.posted(lost);
                        ledger.dropped(DropReason::LinkLost, lost);
                        failure = Some(format!("{skipped} messages from its parent were lost in transit"));
                        handle.terminate();
                        continue;
                    }
                    Err(LinkError::TooLarge) => {
                        ledger.posted(1);
                        ledger.dropped(DropReason::TooLarge, 1);
                        failure = Some(format!("its parent sent a message larger than it accepts ({max_size} bytes)"));
                        handle.terminate();
                        continue;
                    }
                    Err(LinkError::Broken(why)) => {
                        failure = Some(format!("the link from its parent broke: {why}"));
                        handle.terminate();
                        continue;
                    }
                };
                let message = match transfer::decode(&far, envelope).await {
                    Ok(message) => message,
                    Err(why) => {
                        ledger.posted(1);
                        ledger.dropped(DropReason::LinkLost, 1);
                        failure = Some(format!("a message from its parent could not be taken: {why}"));
                        handle.terminate();
                        continue;
                    }
                };
                if pending.len() as u64 >= window || pending_bytes + message.data.len() > max_pending_bytes {
                    // Beyond the window: the sender broke the protocol. Refused as full.
                    ledger.posted(1);
                    ledger.dropped(DropReason::QueueFull, 1);
                    continue;
                }
                pending_bytes += message.data.len();
                pending.push_back(message);
                accepted += offer(&handle, &mut pending, &mut pending_bytes, &ledger);
                if accepted > 0 && (accepted >= window / 4 || pending.is_empty()) {
                    taken_total += accepted;
                    publish_credit(taken_total).await;
                    accepted = 0;
                }
            }
            () = room.wait(pending.front().map_or(0, |m| m.data.len())), if !pending.is_empty() => {
                accepted += offer(&handle, &mut pending, &mut pending_bytes, &ledger);
                if accepted > 0 {
                    taken_total += accepted;
                    publish_credit(taken_total).await;
                    accepted = 0;
                }
                if released && pending.is_empty() {
                    handle.end_input();
                }
            }
            Ok(()) = reconnected.changed() => {
                // What was lost at the end of the run before the reconnection shows as a gap,
                // and a credit lost is made good.
                publish(&mut out_seq, Kind::Sync, Envelope::plain(Codec::Raw, Vec::new())).await;
                publish_credit(taken_total).await;
            }
            _ = terminate.next(), if !ending => {
                count.taken(1);
                ending = true;
                handle.terminate();
            }
            () = async { let _ = stopping.wait_for(|stop| *stop).await; }, if !ending => {
                ending = true;
                handle.terminate();
            }
            () = orphaned.notified(), if !ending => {
                ending = true;
                failure = Some("its parent's side stopped answering".to_string());
                handle.terminate();
            }
        }
    }
    // What waited for room when the worker ended was sent to it: counted here, as it would
    // have been had it been posted, and dropped.
    ledger.posted(pending.len());
    ledger.dropped(DropReason::ReceiverGone, pending.len());
    let _ = client.flush().await;
}
