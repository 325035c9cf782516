//! The state each worker's [`Store`](wasmtime::Store) holds, and what the WIT interfaces
//! ([`super::types`], [`super::global_scope`]) share of it.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use thin_vec::ThinVec;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

use crate::accounting::DropReason;
use crate::bindings::types;
use crate::budget::{Budget, Charge, OverBudget, MESSAGE_COST, TIMER_COST};
use crate::buffer::Buffer;
use crate::event_loop::{terminate_all, Control, WorkerQueue};
use crate::limits::{Limiter, Limits};
use crate::location::ComponentDir;
use crate::messaging::{Message, MessagePort};
use crate::stats::WorkerStats;
use crate::stdio::GuestOutput;

use super::component::Component;
use super::options::{Placement, WorkerOptions};
use super::origin::Origin;
use super::parent::ParentLink;
use super::services::Services;
use super::timers::TimerKey;

/// The fewest children a worker keeps before it prunes those that have stopped.
pub(super) const MIN_PRUNE: usize = 64;

/// Everything one worker's [`Store`](wasmtime::Store) holds.
pub(crate) struct WorkerState {
    pub(crate) name: String,
    pub(crate) location: String,
    /// The directory of this worker's component: what its locations are resolved beneath.
    pub(super) dir: ComponentDir,
    pub(super) services: Arc<Services>,
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    /// This worker's own queue; senders to it are made only for children.
    pub(crate) queue: Arc<WorkerQueue>,
    pub(crate) control: Arc<Control>,
    pub(super) parent: ParentLink,
    /// Live children by id, so that they can be terminated when this worker ends.
    pub(super) children: HashMap<u32, (Arc<Control>, Charge)>,
    /// Shared workers this worker started (not connected to), while they run: they count
    /// against its children limit and its budget, though they are not its children.
    pub(super) started_shared: Vec<(Arc<Control>, Charge)>,
    /// Children this worker terminated: their events in flight are dropped.
    pub(super) terminated_children: HashSet<u32>,
    /// When `children` reaches this size, terminated children that have stopped are dropped.
    pub(super) prune_at: usize,
    pub(super) next_child: u32,
    /// The closing flag (10.2.2).
    pub(crate) closing: bool,
    /// The guest's own description of the error it is about to raise (`report-error`).
    pub(crate) reported_error: Option<ReportedError>,
    /// The thread's CPU time when the running task started, if the worker has a deadline.
    pub(crate) task_started: Option<std::time::Duration>,
    pub(super) next_port: u32,
    /// Pending timers by id, with whether each is an interval.
    pub(super) timers: HashMap<u32, (TimerKey, bool, Charge)>,
    pub(super) next_timer: u32,
    /// The name under which this worker is registered as a shared worker.
    pub(super) shared: Option<String>,
    /// Ports its graph handed it, by label, until taken.
    pub(super) channels: HashMap<String, MessagePort>,
    pub(super) limiter: Limiter,
    /// This worker's limits, which its children inherit.
    pub(crate) limits: Limits,
    /// Where the workers it spawns run (`None`: here).
    pub(super) spawn_placement: Option<Placement>,
    /// Where the locations it names are resolved, if it was placed here by another host.
    pub(super) origin: Option<Origin>,
    /// What this worker makes the host hold, its linear memory included.
    pub(super) budget: Arc<Budget>,
    pub(super) stats: Arc<WorkerStats>,
}

impl WorkerState {
    /// The state of a new worker.
    ///
    /// # Errors
    ///
    /// If a granted directory cannot be opened.
    pub(crate) fn new(
        services: Arc<Services>,
        component: &Component,
        options: WorkerOptions,
        queue: Arc<WorkerQueue>,
        control: Arc<Control>,
        parent: ParentLink,
        shared: Option<String>,
    ) -> std::io::Result<Self> {
        let name = options.name.unwrap_or_default();
        // No ambient authority: only what `capabilities` grants. The guest's stdout and stderr
        // go to the host's stderr, each line prefixed with the worker's name; no stdin.
        let mut wasi = WasiCtx::builder();
        // One prefix for both streams.
        let output = GuestOutput::new(&name, component.location());
        wasi.stdout(output.clone()).stderr(output).args(&options.capabilities.args);
        for (key, value) in &options.capabilities.env {
            wasi.env(key, value);
        }
        if !options.capabilities.wall_clock {
            wasi.wall_clock(EpochClock);
        }
        for dir in &options.capabilities.dirs {
            let perms = if dir.read_only { FsPerms::ReadOnly } else { FsPerms::ReadWrite };
            wasi.preopened_dir(&dir.host, &dir.guest, perms).map_err(|error| {
                std::io::Error::other(format!("cannot grant directory {}: {error:#}", dir.host.display()))
            })?;
        }
        let stats = services.register_stats(&name, component.location());
        let budget = Budget::new(options.limits.memory, &services.memory_budget);
        let mut state = WorkerState {
            location: component.location().to_string(),
            dir: component.dir().clone(),
            name,
            services,
            wasi: wasi.build(),
            table: ResourceTable::new(),
            queue,
            control,
            parent,
            children: HashMap::new(),
            started_shared: Vec::new(),
            terminated_children: Default::default(),
            prune_at: MIN_PRUNE,
            next_child: 0,
            closing: false,
            reported_error: None,
            task_started: None,
            next_port: 0,
            timers: HashMap::new(),
            next_timer: 0,
            shared,
            channels: HashMap::new(),
            limiter: Limiter::new(options.limits, budget.clone()),
            limits: options.limits,
            spawn_placement: options.spawn_placement,
            origin: options.origin,
            budget,
            stats,
        };
        for (label, port) in options.channels {
            state.channels.insert(label, port);
        }
        Ok(state)
    }

    /// The limit that refused a growth of its memory, if one did.
    pub(crate) fn memory_limit_hit(&self) -> Option<OverBudget> {
        self.limiter.memory_limit_hit
    }

    pub(crate) fn limiter(&mut self) -> &mut Limiter {
        &mut self.limiter
    }

    pub(crate) fn stats(&self) -> &WorkerStats {
        &self.stats
    }

    /// Records how the worker ended, with its peak memory and CPU time.
    pub(crate) fn record_end(&self, how: String) {
        self.stats.ended(how, self.limiter.peak_memory);
    }

    /// Takes a port into this worker: it gets an id here and a place in the resource table.
    pub(crate) fn adopt_port(&mut self, mut port: MessagePort) -> wasmtime::Result<Resource<MessagePort>> {
        let id = self.next_port;
        self.next_port += 1;
        port.attach_to_worker(self.queue.clone(), id, self.limits.queue(), &self.services.ledger);
        port.charge.move_to(&self.budget);
        Ok(self.table.push(port)?)
    }

    /// Lowers what `message` transfers for delivery to this worker's guest: its ports and
    /// buffers move into this worker's resource table, and their handles are appended to
    /// `into`. Returns how many were appended.
    #[inline]
    pub(crate) fn lower_transfer(
        &mut self,
        message: &mut Message,
        into: &mut Vec<types::Transferable>,
    ) -> wasmtime::Result<u32> {
        if message.ports.is_empty() && message.buffers.is_empty() {
            // Almost every message: no call, no iterators set up and dropped.
            return Ok(0);
        }
        self.lower_transferred(message, into)
    }

    /// [`lower_transfer`](Self::lower_transfer) of a message that transfers something.
    fn lower_transferred(
        &mut self,
        message: &mut Message,
        into: &mut Vec<types::Transferable>,
    ) -> wasmtime::Result<u32> {
        let count = message.ports.len() + message.buffers.len();
        for port in message.ports.drain(..) {
            into.push(types::Transferable::Port(self.adopt_port(port)?));
        }
        for buffer in message.buffers.drain(..) {
            into.push(types::Transferable::Buffer(self.hold_buffer(buffer)?));
        }
        Ok(count as u32)
    }

    /// Puts a buffer into this worker's table, charging it to this worker.
    pub(super) fn hold_buffer(&mut self, mut buffer: Buffer) -> wasmtime::Result<Resource<Buffer>> {
        buffer.charge.move_to(&self.budget);
        Ok(self.table.push(buffer)?)
    }

    /// How many more buffer bytes this worker may hold: its memory limit (linear memory and
    /// buffers together), or the host's largest buffer.
    /// Traps the guest: a host call with no error of its own to return found this worker's
    /// budget (or the host's) spent.
    pub(super) fn over_budget(&self, what: &str, over: OverBudget) -> wasmtime::Error {
        wasmtime::format_err!("cannot {what}: it would pass {over}")
    }

    /// Lifts a message the guest posted: its ports and buffers leave this worker's table
    /// (the guest's handles were consumed by the call) and travel with the message, its
    /// bytes charged to this worker until delivered. A message this worker's budget cannot
    /// pay for is refused as "queue full" (its earlier messages are still on their way),
    /// counted posted and dropped — unless it is larger than its receiver accepts
    /// (`max_size`, asked only then), which is refused as too large.
    pub(super) fn lift_message(
        &mut self,
        message: types::Message,
        max_size: impl FnOnce(&Self) -> wasmtime::Result<usize>,
    ) -> wasmtime::Result<Result<Message, types::PostError>> {
        self.stats.posted(message.data.len());
        let charge = match self.budget.charge(message.data.len() as u64 + MESSAGE_COST) {
            Ok(charge) => Ok(charge),
            Err(_) if message.data.len() > max_size(self)? => Err(None),
            Err(over) => Err(Some(over)),
        };
        let (mut ports, mut buffers) = (ThinVec::new(), ThinVec::new());
        for object in message.transfer {
            match object {
                types::Transferable::Port(port) => {
                    let mut port = self.table.delete(port)?;
                    port.detach();
                    ports.push(port);
                }
                types::Transferable::Buffer(buffer) => {
                    buffers.push(self.table.delete(buffer)?);
                }
            }
        }
        let mut message = Message::new(message.codec.into(), message.data);
        message.ports = ports;
        message.buffers = buffers;
        message.count_posted(&self.services.ledger);
        match charge {
            Ok(charge) => {
                message.charge = charge;
                Ok(Ok(message))
            }
            // Larger than the receiver accepts, or than this worker's budget could ever hold.
            Err(None) => {
                message.settle(&self.services.ledger, Some(DropReason::TooLarge));
                Ok(Err(types::PostError::TooLarge))
            }
            Err(Some(OverBudget::Worker(limit))) if message.data.len() as u64 + MESSAGE_COST > limit => {
                message.settle(&self.services.ledger, Some(DropReason::TooLarge));
                Ok(Err(types::PostError::TooLarge))
            }
            // Its earlier messages, on their way, hold the budget: the queue is full.
            Err(_) => {
                message.settle(&self.services.ledger, Some(DropReason::QueueFull));
                Ok(Err(types::PostError::QueueFull))
            }
        }
    }

    /// Whether timer `id` is still set; a fired timeout is forgotten, a fired interval is
    /// armed again (only now, so that a slow handler never piles up its ticks).
    pub(crate) fn timer_fired(&mut self, id: u32) -> bool {
        match self.timers.get(&id) {
            Some(&(key, true, _)) => {
                self.services.timers.rearm(key);
                true
            }
            Some(&(_, false, _)) => {
                self.timers.remove(&id);
                true
            }
            None => false,
        }
    }

    pub(super) fn set_timer(&mut self, delay: Duration, interval: bool) -> wasmtime::Result<u32> {
        let charge = self.budget.charge(TIMER_COST).map_err(|over| self.over_budget("set a timer", over))?;
        self.next_timer += 1;
        let id = self.next_timer;
        let key = self.services.timers.set(self.queue.timer_sender(), id, delay, interval.then_some(delay));
        self.timers.insert(id, (key, interval, charge));
        Ok(id)
    }

    /// Loads the component at `location`, relative to this worker's own component's
    /// directory and beneath it (see [`crate::location`]): a worker reaches only components
    /// in its own directory and below it, as a browser worker reaches only its own origin,
    /// however the tree is linked. The error is one a guest may see: it never quotes a file.
    /// The component at `location`, relative to this worker's own, and the origin of a worker
    /// that runs it: from this worker's origin if it has one, else beside it here.
    pub(super) fn load(&self, location: &str) -> Result<(Component, Option<Origin>), String> {
        if let Some(origin) = &self.origin {
            return origin.fetch(location).map(|(component, origin)| (component, Some(origin)));
        }
        // Named as the host shows it (beside this worker's own location); opened beneath the
        // directory, whatever that path now leads to.
        let shown = Path::new(&self.location).parent().unwrap_or(Path::new("")).join(location);
        let loaded = self.services.load_beneath(&self.dir, location, &shown.display().to_string());
        loaded.map(|component| (component, None)).map_err(|error| {
            tracing::debug!(worker = %self.name, "cannot load `{location}`: {error}");
            error.redacted()
        })
    }

    pub(crate) fn services(&self) -> &Arc<Services> {
        &self.services
    }

    /// Whether this worker terminated child `id`.
    pub(crate) fn terminated_child(&self, id: u32) -> bool {
        self.terminated_children.contains(&id)
    }

    /// Forgets a child this worker terminated, once it has ended.
    pub(crate) fn forget_terminated_child(&mut self, child: u32) {
        self.terminated_children.remove(&child);
        self.children.remove(&child);
    }

    /// Forgets a child that has ended.
    pub(crate) fn forget_child(&mut self, child: u32) {
        self.children.remove(&child);
    }

    /// Ends the worker: cancels its timers, leaves the shared-worker registry, terminates its
    /// children, closes its ports, then hands the parent link to `tell_parent`.
    pub(crate) fn end(mut self, tell_parent: impl FnOnce(ParentLink)) {
        for (key, _, _) in self.timers.values() {
            self.services.timers.clear(*key);
        }
        // Its charges go before its parent hears of its end (whoever has heard of it finds
        // them released): timers, ports it never took, its linear memory.
        self.timers.clear();
        self.channels.clear();
        self.started_shared.clear();
        self.limiter.release();
        if let Some(name) = &self.shared {
            self.services.shared.ended(&self.services, name, &self.control);
        }
        terminate_all(self.children.into_values().map(|(child, _)| child).collect());
        // Dropping the table closes the ports still in it; their peers learn it.
        drop(self.table);
        // Its share of the host's budget goes back, but for what is still on its way.
        self.budget.end();
        tell_parent(self.parent);
    }
}

impl WasiView for WorkerState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// The wall clock of a worker not granted the time of day: always the Unix epoch.
struct EpochClock;

impl wasmtime_wasi::HostWallClock for EpochClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

/// What a guest said of the error it is about to raise (`report-error`).
pub(crate) struct ReportedError {
    pub(crate) message: String,
    /// The line and column of its script where it was raised; 0 if unknown.
    pub(crate) lineno: u32,
    pub(crate) colno: u32,
}
