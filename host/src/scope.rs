//! The worker global scope (10.2.1 `WorkerGlobalScope`, `DedicatedWorkerGlobalScope`): the
//! host side of the WIT `scope` interface, and the state each worker's [`Store`] holds.
//!
//! [`Store`]: wasmtime::Store

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

use std::time::Duration;

use crate::accounting::DropReason;
use crate::bindings::scope::{Host as ScopeHost, HostWorker};
use crate::bindings::types::{self, Host as TypesHost, HostBuffer, HostMessagePort};
use crate::budget::{Budget, Charge, OverBudget, MESSAGE_COST, PORT_COST, TIMER_COST, WORKER_COST};
use crate::buffer::Buffer;
use crate::engine::Component;
use crate::event_loop::TaskQueue;
use crate::host::Host;
use crate::limits::{Limiter, Limits};
use crate::location::ComponentDir;
use crate::message::Message;
use crate::port::{self, MessagePort};
use crate::shared::Starter;
use crate::stats::WorkerStats;
use crate::stdio::GuestOutput;
use crate::timers::TimerKey;
use crate::worker::{self, ChildWorker, Control, ParentLink, WorkerOptions};

const MIN_PRUNE: usize = 64;

/// Everything one worker's [`Store`](wasmtime::Store) holds.
pub(crate) struct WorkerState {
    pub(crate) name: String,
    pub(crate) location: String,
    /// The directory of this worker's component: what its locations are resolved beneath.
    dir: ComponentDir,
    host: Host,
    wasi: WasiCtx,
    table: ResourceTable,
    /// This worker's own queue; senders to it are made only for children.
    pub(crate) queue: Arc<TaskQueue>,
    pub(crate) control: Arc<Control>,
    parent: ParentLink,
    /// Live children by id, so that they can be terminated when this worker ends.
    children: HashMap<u32, (Arc<Control>, Charge)>,
    /// Shared workers this worker started (not connected to), while they run: they count
    /// against its children limit and its budget, though they are not its children.
    started_shared: Vec<(Arc<Control>, Charge)>,
    /// Children this worker terminated: their events in flight are dropped.
    terminated_children: std::collections::HashSet<u32>,
    /// When `children` reaches this size, terminated children that have stopped are dropped.
    prune_at: usize,
    next_child: u32,
    /// The closing flag (10.2.2).
    pub(crate) closing: bool,
    /// The guest's own description of the error it is about to raise (`report-error`).
    pub(crate) reported_error: Option<String>,
    /// The thread's CPU time when the running task started, if the worker has a deadline.
    pub(crate) task_started: Option<std::time::Duration>,
    next_port: u32,
    /// Pending timers by id, with whether each is an interval.
    timers: HashMap<u32, (TimerKey, bool, Charge)>,
    next_timer: u32,
    /// The name under which this worker is registered as a shared worker.
    shared: Option<String>,
    /// Ports its graph handed it, by label, until taken.
    channels: HashMap<String, MessagePort>,
    limiter: Limiter,
    /// This worker's limits, which its children inherit.
    pub(crate) limits: Limits,
    /// What this worker makes the host hold, its linear memory included.
    budget: Arc<Budget>,
    stats: Arc<WorkerStats>,
}

impl WorkerState {
    /// The state of a new worker.
    ///
    /// # Errors
    ///
    /// If a granted directory cannot be opened.
    pub(crate) fn new(
        host: Host,
        component: &Component,
        options: WorkerOptions,
        queue: Arc<TaskQueue>,
        control: Arc<Control>,
        parent: ParentLink,
        shared: Option<String>,
    ) -> std::io::Result<Self> {
        let name = options.name.unwrap_or_default();
        // No ambient authority: only what `capabilities` grants. The guest's stdout and stderr
        // go to the host's stderr, each line prefixed with the worker's name; no stdin.
        let mut wasi = WasiCtx::builder();
        wasi.stdout(GuestOutput::new(&name, component.location()))
            .stderr(GuestOutput::new(&name, component.location()))
            .args(&options.capabilities.args);
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
        let stats = host.register_stats(&name, component.location());
        let budget = Budget::new(options.limits.memory, host.host_budget());
        let mut state = WorkerState {
            location: component.location().to_string(),
            dir: component.dir().clone(),
            name,
            host,
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
        port.attach_to_worker(self.queue.clone(), id, self.limits.queue(), self.host.ledger());
        port.charge.move_to(&self.budget);
        Ok(self.table.push(port)?)
    }

    /// Lowers what `message` transfers for delivery to this worker's guest: its ports and
    /// buffers move into this worker's resource table, and their handles are appended to
    /// `into`. Returns how many were appended.
    pub(crate) fn lower_transfer(
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
    fn hold_buffer(&mut self, mut buffer: Buffer) -> wasmtime::Result<Resource<Buffer>> {
        buffer.charge.move_to(&self.budget);
        Ok(self.table.push(buffer)?)
    }

    /// How many more buffer bytes this worker may hold: its memory limit (linear memory and
    /// buffers together), or the host's largest buffer.
    /// Traps the guest: a host call with no error of its own to return found this worker's
    /// budget (or the host's) spent.
    fn over_budget(&self, what: &str, over: OverBudget) -> wasmtime::Error {
        wasmtime::format_err!("cannot {what}: it would pass {over}")
    }

    /// Lifts a message the guest posted: its ports and buffers leave this worker's table
    /// (the guest's handles were consumed by the call) and travel with the message, its
    /// bytes charged to this worker until delivered. A message this worker's budget cannot
    /// pay for is refused as "queue full" (its earlier messages are still on their way),
    /// counted posted and dropped — unless it is larger than its receiver accepts
    /// (`max_size`, asked only then), which is refused as too large.
    fn lift_message(
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
        let (mut ports, mut buffers) = (Vec::new(), Vec::new());
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
        message.count_posted(self.host.ledger());
        match charge {
            Ok(charge) => {
                message.charge = charge;
                Ok(Ok(message))
            }
            // Larger than the receiver accepts, or than this worker's budget could ever hold.
            Err(None) => {
                message.settle(self.host.ledger(), Some(DropReason::TooLarge));
                Ok(Err(types::PostError::TooLarge))
            }
            Err(Some(OverBudget::Worker(limit))) if message.data.len() as u64 + MESSAGE_COST > limit => {
                message.settle(self.host.ledger(), Some(DropReason::TooLarge));
                Ok(Err(types::PostError::TooLarge))
            }
            // Its earlier messages, on their way, hold the budget: the queue is full.
            Err(_) => {
                message.settle(self.host.ledger(), Some(DropReason::QueueFull));
                Ok(Err(types::PostError::QueueFull))
            }
        }
    }

    /// Whether timer `id` is still set; a fired timeout is forgotten, a fired interval is
    /// armed again (only now, so that a slow handler never piles up its ticks).
    pub(crate) fn timer_fired(&mut self, id: u32) -> bool {
        match self.timers.get(&id) {
            Some(&(key, true, _)) => {
                self.host.timers().rearm(key);
                true
            }
            Some(&(_, false, _)) => {
                self.timers.remove(&id);
                true
            }
            None => false,
        }
    }

    fn set_timer(&mut self, delay: Duration, interval: bool) -> wasmtime::Result<u32> {
        let charge = self.budget.charge(TIMER_COST).map_err(|over| self.over_budget("set a timer", over))?;
        self.next_timer += 1;
        let id = self.next_timer;
        let key = self.host.timers().set(self.queue.timer_sender(), id, delay, interval.then_some(delay));
        self.timers.insert(id, (key, interval, charge));
        Ok(id)
    }

    /// Loads the component at `location`, relative to this worker's own component's
    /// directory and beneath it (see [`crate::location`]): a worker reaches only components
    /// in its own directory and below it, as a browser worker reaches only its own origin,
    /// however the tree is linked. The error is one a guest may see: it never quotes a file.
    fn load(&self, location: &str) -> Result<Component, String> {
        // Named as the host shows it (beside this worker's own location); opened beneath the
        // directory, whatever that path now leads to.
        let shown = Path::new(&self.location).parent().unwrap_or(Path::new("")).join(location);
        self.host.load_beneath(&self.dir, location, &shown.display().to_string()).map_err(|error| {
            tracing::debug!(worker = %self.name, "cannot load `{location}`: {error}");
            error.redacted()
        })
    }

    pub(crate) fn host(&self) -> &Host {
        &self.host
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
            self.host.timers().clear(*key);
        }
        // Its charges go before its parent hears of its end (whoever has heard of it finds
        // them released): timers, ports it never took, its linear memory.
        self.timers.clear();
        self.channels.clear();
        self.started_shared.clear();
        self.limiter.release();
        if let Some(name) = &self.shared {
            self.host.shared().ended(name, &self.control);
        }
        worker::terminate_all(self.children.into_values().map(|(child, _)| child).collect());
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

impl TypesHost for WorkerState {}

impl HostMessagePort for WorkerState {
    fn post_message(
        &mut self,
        port: Resource<MessagePort>,
        message: types::Message,
    ) -> wasmtime::Result<Result<(), types::PostError>> {
        let max_size = |this: &Self| Ok(this.table.get(&port)?.core().peer_message_size());
        let message = match self.lift_message(message, max_size)? {
            Ok(message) => message,
            Err(error) => return Ok(Err(error)),
        };
        // Posting on a port this worker closed discards the message, as the chapter does.
        Ok(self.table.get(&port)?.post_counted(message, self.host.ledger()).map_or_else(post_error, Ok))
    }

    fn start(&mut self, port: Resource<MessagePort>) -> wasmtime::Result<()> {
        self.table.get(&port)?.core().start();
        Ok(())
    }

    fn close(&mut self, port: Resource<MessagePort>) -> wasmtime::Result<()> {
        self.table.get(&port)?.close();
        Ok(())
    }

    fn id(&mut self, port: Resource<MessagePort>) -> wasmtime::Result<u32> {
        let port = self.table.get(&port)?;
        port.core().id_in(&self.queue).ok_or_else(|| wasmtime::format_err!("the port is not held by this worker"))
    }

    fn drop(&mut self, port: Resource<MessagePort>) -> wasmtime::Result<()> {
        // Dropping a port closes it (`MessagePort`'s `Drop`).
        self.table.delete(port)?;
        Ok(())
    }
}

impl HostBuffer for WorkerState {
    fn create(&mut self, len: u64) -> wasmtime::Result<Result<Resource<Buffer>, String>> {
        if len > self.host.max_buffer_len() {
            return Ok(Err(format!("a buffer of {len} bytes is over the host's largest buffer")));
        }
        // Charged before it is made: the check and the charge are one step.
        let charge = match self.budget.charge(len) {
            Ok(charge) => charge,
            Err(over) => return Ok(Err(format!("a buffer of {len} bytes would pass {over}"))),
        };
        match Buffer::zeroed(len, self.host.max_buffer_len()) {
            Ok(mut buffer) => {
                buffer.charge = charge;
                Ok(Ok(self.hold_buffer(buffer)?))
            }
            Err(error) => Ok(Err(error.to_string())),
        }
    }

    fn from_bytes(&mut self, bytes: Vec<u8>) -> wasmtime::Result<Resource<Buffer>> {
        // A copy of what the guest holds: it counts again, as a buffer made by `create` does.
        let charge = self.budget.charge(bytes.len() as u64).map_err(|over| self.over_budget("make a buffer", over))?;
        self.host.count_copied(bytes.len());
        let mut buffer = Buffer::from_vec(bytes);
        buffer.charge = charge;
        self.hold_buffer(buffer)
    }

    fn len(&mut self, buffer: Resource<Buffer>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&buffer)?.len())
    }

    fn read(&mut self, buffer: Resource<Buffer>, offset: u64, len: u64) -> wasmtime::Result<Result<Vec<u8>, String>> {
        // The copy must fit the guest's memory: refuse before allocating it on the host.
        let room = self.budget.room().min(u64::from(u32::MAX));
        if len > room {
            return Ok(Err(format!("reading {len} bytes would not fit this worker's memory")));
        }
        let buffer = self.table.get(&buffer)?;
        match buffer.range(offset, len) {
            Ok(range) => {
                let mut copy = Vec::new();
                if copy.try_reserve_exact(range.len()).is_err() {
                    return Ok(Err(format!("cannot allocate {len} bytes to read")));
                }
                copy.extend_from_slice(&buffer.as_slice()[range]);
                self.host.count_copied(copy.len());
                Ok(Ok(copy))
            }
            Err(error) => Ok(Err(error.to_string())),
        }
    }

    fn write(&mut self, buffer: Resource<Buffer>, offset: u64, bytes: Vec<u8>) -> wasmtime::Result<Result<(), String>> {
        let buffer = self.table.get_mut(&buffer)?;
        match buffer.range(offset, bytes.len() as u64) {
            Ok(range) => {
                buffer.as_mut_slice()[range].copy_from_slice(&bytes);
                self.host.count_copied(bytes.len());
                Ok(Ok(()))
            }
            Err(error) => Ok(Err(error.to_string())),
        }
    }

    fn drop(&mut self, buffer: Resource<Buffer>) -> wasmtime::Result<()> {
        // Its charge is released with it.
        self.table.delete(buffer)?;
        Ok(())
    }
}

impl ScopeHost for WorkerState {
    fn name(&mut self) -> wasmtime::Result<String> {
        Ok(self.name.clone())
    }

    fn location(&mut self) -> wasmtime::Result<String> {
        Ok(self.location.clone())
    }

    fn hardware_concurrency(&mut self) -> wasmtime::Result<u32> {
        Ok(self.host.hardware_concurrency())
    }

    fn post_message(&mut self, message: types::Message) -> wasmtime::Result<Result<(), types::PostError>> {
        let max_size = |this: &Self| Ok(this.parent.message_size().unwrap_or(this.limits.queue().message_size));
        let message = match self.lift_message(message, max_size)? {
            Ok(message) => message,
            Err(error) => return Ok(Err(error)),
        };
        Ok(self.parent.post(message, self.host.ledger()).map_or_else(post_error, Ok))
    }

    fn message_channel(&mut self) -> wasmtime::Result<(Resource<MessagePort>, Resource<MessagePort>)> {
        let charges = self.budget.charge(PORT_COST).and_then(|one| Ok((one, self.budget.charge(PORT_COST)?)));
        let (one_charge, two_charge) = charges.map_err(|over| self.over_budget("make a message channel", over))?;
        let (mut one, mut two) = port::channel();
        (one.charge, two.charge) = (one_charge, two_charge);
        Ok((self.adopt_port(one)?, self.adopt_port(two)?))
    }

    fn connect_shared_worker(
        &mut self,
        location: String,
        name: String,
    ) -> wasmtime::Result<Result<Resource<MessagePort>, String>> {
        let component = match self.load(&location) {
            Ok(component) => component,
            Err(error) => return Ok(Err(error)),
        };
        // The server's end waits for the shared worker charged to this worker. Starting one
        // (none of that name runs) counts against this worker's limits, and the shared
        // worker gets them, as a child would.
        let server_charge = match self.budget.charge(PORT_COST) {
            Ok(charge) => charge,
            Err(over) => return Ok(Err(format!("cannot connect to `{name}`: it would pass {over}"))),
        };
        let (children, started_shared, budget, limits) =
            (&mut self.children, &mut self.started_shared, &self.budget, &self.limits);
        let mut admit = || admit_worker(children, started_shared, budget, limits);
        let starter = Starter { server_charge, admit: &mut admit };
        match self.host.shared().connect(&self.host, &component, &name, self.limits, Some(starter)) {
            Ok((port, started)) => {
                if let Some(started) = started {
                    self.started_shared.push(started);
                }
                Ok(Ok(self.adopt_port(port)?))
            }
            Err(error) => Ok(Err(error.to_string())),
        }
    }

    fn take_channel(&mut self, label: String) -> wasmtime::Result<Option<Resource<MessagePort>>> {
        match self.channels.remove(&label) {
            Some(port) => Ok(Some(self.adopt_port(port)?)),
            None => Ok(None),
        }
    }

    fn set_timeout(&mut self, delay_ms: u32) -> wasmtime::Result<u32> {
        self.set_timer(Duration::from_millis(delay_ms.into()), false)
    }

    fn set_interval(&mut self, interval_ms: u32) -> wasmtime::Result<u32> {
        self.set_timer(Duration::from_millis(interval_ms.into()), true)
    }

    fn clear_timer(&mut self, id: u32) -> wasmtime::Result<()> {
        if let Some((key, _, _)) = self.timers.remove(&id) {
            self.host.timers().clear(key);
        }
        Ok(())
    }

    fn close(&mut self) -> wasmtime::Result<()> {
        // The closing flag: what is queued is discarded now, and so is every later task
        // (posts to this worker fail from now on, and a shared worker is not reused).
        self.closing = true;
        crate::event_loop::discard(self.queue.close(), self.host.ledger());
        Ok(())
    }

    fn report_error(&mut self, message: String) -> wasmtime::Result<()> {
        self.reported_error = Some(message);
        Ok(())
    }
}

impl HostWorker for WorkerState {
    fn spawn(
        &mut self,
        location: String,
        options: types::WorkerOptions,
    ) -> wasmtime::Result<Result<Resource<ChildWorker>, String>> {
        let component = match self.load(&location) {
            Ok(component) => component,
            Err(error) => return Ok(Err(error)),
        };
        let admitted = admit_worker(&mut self.children, &mut self.started_shared, &self.budget, &self.limits);
        let charge = match admitted {
            Ok(charge) => charge,
            Err(why) => return Ok(Err(format!("cannot start `{location}`: {why}"))),
        };
        let id = self.next_child;
        self.next_child += 1;
        let parent = ParentLink::Worker { queue: self.queue.clone(), child: id };
        // A child gets no capabilities and no channels (only what its parent sends it), and
        // its parent's limits: spawning is no way around them.
        let options = WorkerOptions { name: options.name, limits: self.limits, ..WorkerOptions::default() };
        let (sender, control, _) = match worker::spawn(&self.host, &component, options, parent, None) {
            Ok(spawned) => spawned,
            Err(failure) => return Ok(Err(format!("cannot start `{location}`: {failure}"))),
        };
        if self.children.len() >= self.prune_at {
            self.children.retain(|_, (child, _)| !child.has_stopped());
            self.prune_at = (self.children.len() * 2).max(MIN_PRUNE);
        }
        self.children.insert(id, (control.clone(), charge));
        Ok(Ok(self.table.push(ChildWorker { id, sender, control })?))
    }

    fn id(&mut self, worker: Resource<ChildWorker>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&worker)?.id)
    }

    fn post_message(
        &mut self,
        worker: Resource<ChildWorker>,
        message: types::Message,
    ) -> wasmtime::Result<Result<(), types::PostError>> {
        let max_size = |this: &Self| Ok(this.table.get(&worker)?.sender.message_size());
        let message = match self.lift_message(message, max_size)? {
            Ok(message) => message,
            Err(error) => return Ok(Err(error)),
        };
        let child = self.table.get(&worker)?;
        // A child that has ended discards the message, as a closed event loop does.
        match child.sender.send_message(message) {
            Ok(()) => Ok(Ok(())),
            Err((refusal, mut message)) => {
                message.settle(self.host.ledger(), Some(refusal));
                Ok(post_error(refusal))
            }
        }
    }

    fn terminate(&mut self, worker: Resource<ChildWorker>) -> wasmtime::Result<()> {
        // The child stays in `children` until its thread is seen to have ended, so that this
        // worker's own end still waits for it.
        let child = self.table.get(&worker)?;
        child.control.terminate();
        let id = child.id;
        self.terminated_children.insert(id);
        Ok(())
    }

    fn drop(&mut self, worker: Resource<ChildWorker>) -> wasmtime::Result<()> {
        // Dropping the handle gives up the right to post; the child keeps running.
        self.table.delete(worker)?;
        Ok(())
    }
}

/// Charges what starting a worker costs, if a worker with `children`, `started_shared`,
/// `budget` and `limits` may start one more (children and the shared workers it started,
/// together, within its children limit); else says why not.
fn admit_worker(
    children: &mut HashMap<u32, (Arc<Control>, Charge)>,
    started_shared: &mut Vec<(Arc<Control>, Charge)>,
    budget: &Arc<Budget>,
    limits: &Limits,
) -> Result<Charge, String> {
    // Shared workers that have stopped give their charge back (children do as their ends
    // are heard, or when `children` is pruned).
    started_shared.retain(|(worker, _)| !worker.has_stopped());
    if let Some(max) = limits.children {
        children.retain(|_, (child, _)| !child.has_stopped());
        if children.len() + started_shared.len() >= max {
            return Err(format!("this worker runs its limit of {max} children (shared workers it started included)"));
        }
    }
    budget.charge(WORKER_COST).map_err(|over| format!("it would pass {over}"))
}

/// What the guest learns of a refused post: queue full and too large are errors it can act
/// on; a receiver that has ended or a closed port discard the message silently, as the
/// chapter's `postMessage` does (the message is counted dropped either way).
fn post_error(reason: DropReason) -> Result<(), types::PostError> {
    match reason {
        DropReason::QueueFull => Err(types::PostError::QueueFull),
        DropReason::TooLarge => Err(types::PostError::TooLarge),
        DropReason::ReceiverGone
        | DropReason::InputEnded
        | DropReason::Discarded
        | DropReason::PortClosed
        | DropReason::OutputClosed => Ok(()),
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
