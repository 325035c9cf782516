//! Workers on other hosts: a child placed on a lattice host is stood for here by a *proxy*,
//! which its parent holds exactly as it holds a local child (a sender to a queue, a control).
//!
//! The proxy's queue takes the parent's messages as a local child's does, and the proxy's
//! thread forwards them, in order, through a [`RemoteWorker`]. What the remote worker sends
//! back reaches the parent through [`RemoteEvents`]: its messages as messages from that
//! child, its end as the child's end. How the far side is reached (NATS, today) is the
//! [`Placer`]'s business, set on the host by the layer that joins a lattice: nothing here
//! names it.
//!
//! While the remote worker runs, its proxy counts as busy at this host (a remote worker may be
//! computing), and it keeps its parent alive as an active child does. It is also counted
//! among the host's live proxies: when all else here waits, the lattice is asked whether the
//! remote workers, and all they reach, are quiet too (see `Host::quiescent`).

use std::sync::{Arc, Mutex};

use crate::accounting::{DropReason, Ledger};
use crate::event_loop::{self, Control, DirectChild, LoopTask, Next, Patience, WorkerQueue, WorkerSender};
use crate::limits::Limits;
use crate::messaging::Message;
use crate::stats::WorkerStats;
use wasm_workers_protocol::ErrorEvent;

use super::component::Component;
use super::handle::CloseReason;
use super::options::Placement;
use super::parent::{Exit, ParentLink};
use super::services::Services;

/// Starts workers on other hosts. Set on a host when it joins a lattice.
pub(crate) trait Placer: Send + Sync {
    /// Starts `component` on a host that matches `placement`, named `name`, under `limits`;
    /// what it sends back goes to `events`. Returns the way to it and the id of its host.
    ///
    /// # Errors
    ///
    /// A one-line reason: no host matches or has room, the host refused, the lattice is
    /// unreachable.
    /// `channels` are handed to it at start, by label, as a local worker's are.
    fn place(&self, request: PlaceRequest<'_>, events: RemoteEvents)
        -> Result<(Arc<dyn RemoteWorker>, String), String>;
}

/// What a [`Placer`] is asked to start.
pub(crate) struct PlaceRequest<'a> {
    pub(crate) component: &'a Component,
    pub(crate) placement: &'a Placement,
    pub(crate) name: &'a str,
    pub(crate) limits: Limits,
    /// Ports handed to it at start, by label.
    pub(crate) channels: Vec<(String, crate::messaging::MessagePort)>,
    /// Where the locations it names resolve, if not beside `component` on this host (it
    /// was itself placed here from another host).
    pub(crate) origin: Option<super::origin::Origin>,
}

/// A worker on another host, as its parent here sends to it: a receiver behind the delivery
/// seam (messages one thread delivers arrive in that order; one refused for want of room
/// there comes back `queue-full`, as from a local child's queue), its release and its
/// termination. A delivered message is settled here, as handed to the link.
pub(crate) trait RemoteWorker: DirectChild {
    /// Terminates the worker (its parent here no longer waits for it).
    fn terminate(&self);

    /// Whether a post would find room now (or the worker has ended: a post then fails for
    /// that).
    fn has_room(&self) -> bool;

    /// The id of the host it runs on.
    fn host(&self) -> &str;

    /// Resolves once a post would find room, or the worker has ended.
    fn room(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>;
}

/// Where a remote worker's events go: to its parent here, as the events of a child.
#[derive(Clone)]
pub(crate) struct RemoteEvents(Arc<EventsInner>);

struct EventsInner {
    /// Its parent; taken when it is told of the end (nothing reaches it after that), so that
    /// the way to the parent (a host program's channel) closes with the worker's end.
    to_parent: Mutex<Option<ParentLink>>,
    /// The proxy's own queue, interrupted when the remote worker has ended.
    proxy: Arc<WorkerQueue>,
    ended: Mutex<Option<Exit>>,
    /// Set by the first end.
    finished: std::sync::atomic::AtomicBool,
    /// The proxy's control: once its parent has terminated it, nothing more is sent.
    control: Arc<Control>,
    stats: Arc<WorkerStats>,
    services: Arc<Services>,
    /// The proxy's place among the host's live proxies, given up at the remote worker's end:
    /// from then on the proxy is busy passing the end on, not waiting for a worker elsewhere
    /// (so the lattice's quiet cannot excuse it before its parent has the end).
    live: Mutex<Option<LiveProxy>>,
}

impl RemoteEvents {
    /// A message of `len` bytes was sent to the remote worker.
    pub(crate) fn sent(&self, len: usize) {
        self.0.stats.received(1, len);
    }

    /// The remote worker posted `message` to its parent.
    pub(crate) fn message(&self, message: Message) {
        let inner = &self.0;
        inner.stats.posted(message.data.len());
        let mut message = message;
        message.count_posted(&inner.services.ledger);
        let parent = inner.to_parent.lock().unwrap_or_else(|p| p.into_inner());
        match &*parent {
            Some(parent) => {
                let _ = parent.post(message, &inner.services.ledger);
            }
            None => message.settle(&inner.services.ledger, Some(DropReason::ReceiverGone)),
        }
    }

    /// The remote worker has ended: it closed (`reason`), or failed with `error`. Only the
    /// first end counts.
    pub(crate) fn ended(&self, exit: Exit) {
        let inner = &self.0;
        let mut ended = inner.ended.lock().unwrap_or_else(|p| p.into_inner());
        if !inner.finished.swap(true, std::sync::atomic::Ordering::AcqRel) {
            *ended = Some(exit);
            drop(ended);
            // Still busy (its running keepalive is held): out of the live proxies first.
            self.uncount_live();
            inner.proxy.interrupt();
        }
    }

    /// Counts the proxy out of the host's live proxies (once; later calls do nothing).
    fn uncount_live(&self) {
        self.0.live.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// The remote worker failed with `message` (a lost link, say).
    pub(crate) fn failed(&self, message: String) {
        let error = ErrorEvent::new(message, self.0.stats.name.clone(), self.0.stats.location.clone());
        self.ended(Exit::Failed(error));
    }

    /// The ledger of this host, where the remote worker's messages are counted here.
    pub(crate) fn ledger(&self) -> &crate::accounting::Ledger {
        &self.0.services.ledger
    }

    /// The largest message its parent accepts.
    pub(crate) fn message_size(&self) -> usize {
        let parent = self.0.to_parent.lock().unwrap_or_else(|p| p.into_inner());
        parent.as_ref().map_or(usize::MAX, ParentLink::message_size)
    }

    /// Whether the remote worker has ended (or been given up), or its parent has terminated
    /// it: a sender waiting to send to it stops waiting.
    pub(crate) fn is_finished(&self) -> bool {
        self.0.finished.load(std::sync::atomic::Ordering::Acquire) || self.0.control.is_terminated()
    }

    fn take_exit(&self) -> Option<Exit> {
        self.0.ended.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// Starts a worker on a lattice host through `placer`, as `request` says, whose messages and
/// end go to `parent` (a worker here, or the host program). Returns what the parent keeps: a
/// sender and a control, as for a local worker, and where its messages go.
///
/// # Errors
///
/// Why it could not be placed, in one line.
pub(crate) fn spawn_remote(
    services: &Arc<Services>,
    placer: &dyn Placer,
    request: PlaceRequest<'_>,
    parent: ParentLink,
) -> Result<RemoteChild, String> {
    let (component, name, limits) = (request.component, request.name.to_string(), request.limits);
    let parent_queue = match &parent {
        ParentLink::Worker(to) => Some(to.queue.clone()),
        ParentLink::Host(_) | ParentLink::None => None,
    };
    let (queue, sender) = WorkerQueue::new(parent_queue, services.quiescence.clone(), Patience::BLOCK, limits.queue());
    // Held while the remote worker runs: the proxy stays busy here (a remote worker may be
    // computing) and keeps its parent alive, as an active child does. It is counted among the
    // host's proxies, so that the lattice can be asked whether all the rest is quiet
    // (`Host::quiescent`): counted after its queue counts busy, and out before it stops.
    let running = queue.timer_sender();
    services.live_proxies.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    let counted = Some(LiveProxy(services.clone()));
    let control = Arc::new(Control::new(queue.clone(), component.engine().clone()));
    let stats = services.register_stats(&name, component.location());
    let events = RemoteEvents(Arc::new(EventsInner {
        to_parent: Mutex::new(Some(parent)),
        proxy: queue.clone(),
        ended: Mutex::new(None),
        finished: std::sync::atomic::AtomicBool::new(false),
        control: control.clone(),
        stats: stats.clone(),
        services: services.clone(),
        live: Mutex::new(counted),
    }));
    let (remote, host) = match placer.place(request, events.clone()) {
        Ok(placed) => placed,
        Err(why) => {
            events.uncount_live();
            drop(running);
            queue.close();
            queue.finish();
            return Err(why);
        }
    };
    stats.set_host(&host);
    tracing::debug!(worker = %name, host = %host, "placed on the lattice");
    let direct: Arc<dyn RemoteWorker> = remote.clone();
    let (queue_guard, direct_terminate) = (queue.clone(), remote.clone());
    let job_services = services.clone();
    let job_control = control.clone();
    let job = Box::new(move || {
        let services = job_services;
        let exit = forward(&queue, &job_control, remote, &events, &services);
        events.uncount_live();
        drop(running);
        stats.ended_elsewhere(match &exit {
            Exit::Closed(CloseReason::Closed) => "closed".to_string(),
            Exit::Closed(CloseReason::Idle) => "idle".to_string(),
            Exit::Closed(CloseReason::Terminated) => "terminated".to_string(),
            Exit::Failed(error) => format!("failed: {}", error.message),
        });
        let discarded = queue.close();
        event_loop::discard(discarded, &services.ledger);
        let parent = events.0.to_parent.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(parent) = parent {
            parent.exit(exit, &services);
        }
        queue.finish();
        job_control.set_stopped();
    });
    let thread = format!("proxy {name}").replace('\0', "\u{FFFD}");
    if let Err(error) = services.threads.run(thread, job) {
        // The job never ran: undo what it would have, and stop the worker placed already.
        // (The job, dropped with its keepalive, released that already.)
        direct_terminate.terminate();
        queue_guard.close();
        queue_guard.finish();
        return Err(format!("cannot start its proxy thread: {error}"));
    }
    Ok(RemoteChild { sender, control, to: direct, queue: queue_guard })
}

/// A worker started for a parent that is not a worker (the host program, a pool).
pub(crate) struct Started {
    pub(crate) sender: WorkerSender,
    pub(crate) control: Arc<Control>,
    pub(crate) queue: Arc<WorkerQueue>,
    /// For a worker on another host: where its messages go.
    pub(crate) remote: Option<Arc<dyn RemoteWorker>>,
}

/// Starts a worker whose events go to `parent`: on a lattice host if `options.placement`
/// asks for one and this host has joined a lattice, here otherwise.
///
/// # Errors
///
/// As for [`spawn`](super::spawn::spawn), and why it could not be placed.
pub(crate) fn spawn_anywhere(
    services: &Arc<Services>,
    component: &Component,
    options: super::options::WorkerOptions,
    parent: ParentLink,
) -> Result<Started, super::spawn::SpawnFailure> {
    use super::spawn::SpawnFailure;
    let placed = options.placement.as_ref().and_then(|placement| Some((placement.clone(), services.placer.get()?)));
    let Some((placement, placer)) = placed else {
        let (sender, control, queue) = super::spawn::spawn(services, component, options, parent, None)?;
        return Ok(Started { sender, control, queue, remote: None });
    };
    if options.capabilities != super::options::Capabilities::default() {
        return Err(SpawnFailure::Placement(
            "a worker placed on another host is granted nothing of this one (files, environment, arguments, \
             the time of day)"
                .to_string(),
        ));
    }
    let name = options.name.clone().unwrap_or_default();
    let limits = options.limits.or(services.default_limits);
    let request = PlaceRequest {
        component,
        placement: &placement,
        name: &name,
        limits,
        channels: options.channels,
        origin: options.origin,
    };
    let child = spawn_remote(services, &**placer, request, parent).map_err(SpawnFailure::Placement)?;
    Ok(Started { sender: child.sender, control: child.control, queue: child.queue, remote: Some(child.to) })
}

/// Counts a proxy out of the host's live proxies when dropped.
struct LiveProxy(Arc<Services>);

impl Drop for LiveProxy {
    fn drop(&mut self) {
        self.0.live_proxies.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// A child started on another host, as [`spawn_remote`] hands it to its parent.
pub(crate) struct RemoteChild {
    /// Keeps the proxy alive, as a local child's sender keeps it alive.
    pub(crate) sender: WorkerSender,
    pub(crate) control: Arc<Control>,
    /// Where the parent's messages to it go.
    pub(crate) to: Arc<dyn RemoteWorker>,
    /// The proxy's queue.
    pub(crate) queue: Arc<WorkerQueue>,
}

/// Forwards one message that reached the proxy's queue: if the remote worker's host has no
/// room for it yet, waits for room (the message was already taken here), unless the worker
/// ends or is terminated meanwhile.
fn forward_one(remote: &dyn RemoteWorker, message: Message, control: &Control, events: &RemoteEvents, ledger: &Ledger) {
    let mut message = message;
    loop {
        match remote.deliver(message, Some(ledger)) {
            Ok(()) => return,
            Err((DropReason::QueueFull, back)) if !control.is_terminated() && !events.is_finished() => {
                message = back;
                // Waits for room, or for the worker's end or its termination (which only
                // interrupts the proxy's queue, not this wait): checked ever less often, up to
                // every 10 ms.
                let mut pause = std::time::Duration::from_micros(100);
                while !remote.has_room() && !control.is_terminated() && !events.is_finished() {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(std::time::Duration::from_millis(10));
                }
            }
            Err((reason, mut back)) => {
                back.settle(ledger, Some(reason));
                return;
            }
        }
    }
}

/// The proxy's loop: waits until the remote worker ends or the parent terminates it. The
/// parent's messages go to the remote worker from the parent's own thread; one that reached
/// the proxy's queue even so is forwarded from here.
fn forward(
    queue: &WorkerQueue,
    control: &Control,
    remote: Arc<dyn RemoteWorker>,
    events: &RemoteEvents,
    services: &Services,
) -> Exit {
    let mut batch = std::collections::VecDeque::new();
    loop {
        match queue.next(&mut batch) {
            Next::Tasks => {
                for task in batch.drain(..) {
                    if let LoopTask::Message { mut message, .. } = task {
                        if control.is_terminated() {
                            // Terminated: what was queued is discarded, as a local child's is.
                            message.settle(&services.ledger, Some(DropReason::Discarded));
                            continue;
                        }
                        forward_one(&*remote, message, control, events, &services.ledger);
                    }
                }
            }
            // Never: the proxy's queue does not let its thread go (`Patience::BLOCK`); and
            // waiting again would be right anyway.
            Next::Dormant(_) => {}
            Next::Interrupted | Next::Idle => {
                return match events.take_exit() {
                    // Given up here (its link broke, or its host fell silent): if it still
                    // runs there, it is told to stop, so that it does not hold a slot.
                    Some(exit @ Exit::Failed(_)) => {
                        remote.terminate();
                        exit
                    }
                    Some(exit) => exit,
                    None => {
                        remote.terminate();
                        Exit::Closed(CloseReason::Terminated)
                    }
                };
            }
        }
    }
}
