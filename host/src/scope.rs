//! The worker global scope (10.2.1 `WorkerGlobalScope`, `DedicatedWorkerGlobalScope`): the
//! host side of the WIT `scope` interface, and the state each worker's [`Store`] holds.
//!
//! [`Store`]: wasmtime::Store

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use std::time::Duration;

use crate::bindings::scope::{Host as ScopeHost, HostWorker};
use crate::bindings::types::{self, Host as TypesHost, HostBuffer, HostMessagePort};
use crate::buffer::Buffer;
use crate::engine::Component;
use crate::event_loop::{Task, TaskQueue};
use crate::host::Host;
use crate::message::Message;
use crate::port::{self, MessagePort};
use crate::stdio::GuestOutput;
use crate::timers::TimerKey;
use crate::worker::{self, ChildWorker, Control, ParentLink, Source, WorkerOptions};

const MIN_PRUNE: usize = 64;

/// Everything one worker's [`Store`](wasmtime::Store) holds.
pub(crate) struct WorkerState {
    pub(crate) name: String,
    pub(crate) location: String,
    host: Host,
    wasi: WasiCtx,
    table: ResourceTable,
    /// This worker's own queue; senders to it are made only for children.
    pub(crate) queue: Arc<TaskQueue>,
    pub(crate) control: Arc<Control>,
    parent: ParentLink,
    /// Live children by id, so that they can be terminated when this worker ends.
    children: HashMap<u32, Arc<Control>>,
    /// When `children` reaches this size, terminated children that have stopped are dropped.
    prune_at: usize,
    next_child: u32,
    /// The closing flag (10.2.2).
    pub(crate) closing: bool,
    /// The guest's own description of the error it is about to raise (`report-error`).
    pub(crate) reported_error: Option<String>,
    next_port: u32,
    /// Pending timers by id, with whether each is an interval.
    timers: HashMap<u32, (TimerKey, bool)>,
    next_timer: u32,
    /// The name under which this worker is registered as a shared worker.
    shared: Option<String>,
}

impl WorkerState {
    pub(crate) fn new(
        host: Host,
        component: &Component,
        name: String,
        queue: Arc<TaskQueue>,
        control: Arc<Control>,
        parent: ParentLink,
        shared: Option<String>,
    ) -> Self {
        // No ambient authority: no files, environment, arguments or stdin. The guest's
        // stdout and stderr go to the host's stderr, each line prefixed with the worker's name.
        let wasi = WasiCtx::builder()
            .stdout(GuestOutput::new(&name, component.location()))
            .stderr(GuestOutput::new(&name, component.location()))
            .build();
        WorkerState {
            location: component.location().to_string(),
            name,
            host,
            wasi,
            table: ResourceTable::new(),
            queue,
            control,
            parent,
            children: HashMap::new(),
            prune_at: MIN_PRUNE,
            next_child: 0,
            closing: false,
            reported_error: None,
            next_port: 0,
            timers: HashMap::new(),
            next_timer: 0,
            shared,
        }
    }

    /// Takes a port into this worker: it gets an id here and a place in the resource table.
    pub(crate) fn adopt_port(&mut self, mut port: MessagePort) -> wasmtime::Result<Resource<MessagePort>> {
        let id = self.next_port;
        self.next_port += 1;
        port.attach_to_worker(self.queue.clone(), id);
        Ok(self.table.push(port)?)
    }

    /// Lowers a message for delivery to this worker's guest: its ports and buffers move into
    /// this worker's resource table.
    pub(crate) fn lower_message(&mut self, message: Message) -> wasmtime::Result<types::Message> {
        let ports = message.ports.into_iter().map(|port| self.adopt_port(port)).collect::<wasmtime::Result<_>>()?;
        let buffers =
            message.buffers.into_iter().map(|buffer| Ok(self.table.push(buffer)?)).collect::<wasmtime::Result<_>>()?;
        Ok(types::Message { codec: message.codec.into(), data: message.data, ports, buffers })
    }

    /// Lifts a message the guest posted: its ports and buffers leave this worker's table
    /// (the guest's handles were consumed by the call) and travel with the message.
    fn lift_message(&mut self, message: types::Message) -> wasmtime::Result<Message> {
        let mut ports = Vec::with_capacity(message.ports.len());
        for port in message.ports {
            let mut port = self.table.delete(port)?;
            port.detach();
            ports.push(port);
        }
        let mut buffers = Vec::with_capacity(message.buffers.len());
        for buffer in message.buffers {
            buffers.push(self.table.delete(buffer)?);
        }
        Ok(Message { codec: message.codec.into(), data: message.data, ports, buffers })
    }

    /// Whether timer `id` is still set; a fired timeout is forgotten.
    pub(crate) fn timer_fired(&mut self, id: u32) -> bool {
        match self.timers.get(&id) {
            Some(&(_, true)) => true,
            Some(&(_, false)) => {
                self.timers.remove(&id);
                true
            }
            None => false,
        }
    }

    fn set_timer(&mut self, delay: Duration, interval: bool) -> u32 {
        self.next_timer += 1;
        let id = self.next_timer;
        let key = self.host.timers().set(self.queue.sender(), id, delay, interval.then_some(delay));
        self.timers.insert(id, (key, interval));
        id
    }

    /// Resolves a location against the directory of this worker's own location.
    fn resolve(&self, location: &str) -> std::path::PathBuf {
        Path::new(&self.location).parent().unwrap_or(Path::new("")).join(location)
    }

    pub(crate) fn host(&self) -> &Host {
        &self.host
    }

    /// Forgets a child that has ended.
    pub(crate) fn forget_child(&mut self, child: u32) {
        self.children.remove(&child);
    }

    /// Ends the worker: cancels its timers, leaves the shared-worker registry, terminates its
    /// children, closes its ports, then hands the parent link to `tell_parent`.
    pub(crate) fn end(self, tell_parent: impl FnOnce(ParentLink)) {
        for (key, _) in self.timers.values() {
            self.host.timers().clear(*key);
        }
        if let Some(name) = &self.shared {
            self.host.shared().ended(name, &self.control);
        }
        worker::terminate_all(self.children);
        // Dropping the table closes the ports still in it; their peers learn it.
        drop(self.table);
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
    fn post_message(&mut self, port: Resource<MessagePort>, message: types::Message) -> wasmtime::Result<()> {
        let message = self.lift_message(message)?;
        // Posting on a port this worker closed discards the message, as the chapter does.
        let _ = self.table.get(&port)?.post_message(message);
        Ok(())
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
        match Buffer::zeroed(len, self.host.max_buffer_len()) {
            Ok(buffer) => Ok(Ok(self.table.push(buffer)?)),
            Err(error) => Ok(Err(error.to_string())),
        }
    }

    fn from_bytes(&mut self, bytes: Vec<u8>) -> wasmtime::Result<Resource<Buffer>> {
        self.host.count_copied(bytes.len());
        Ok(self.table.push(Buffer::from_vec(bytes))?)
    }

    fn len(&mut self, buffer: Resource<Buffer>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&buffer)?.len())
    }

    fn read(&mut self, buffer: Resource<Buffer>, offset: u64, len: u64) -> wasmtime::Result<Result<Vec<u8>, String>> {
        let buffer = self.table.get(&buffer)?;
        match buffer.range(offset, len) {
            Ok(range) => {
                self.host.count_copied(range.len());
                Ok(Ok(buffer.as_slice()[range].to_vec()))
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

    fn post_message(&mut self, message: types::Message) -> wasmtime::Result<()> {
        let message = self.lift_message(message)?;
        self.parent.post(message);
        Ok(())
    }

    fn message_channel(&mut self) -> wasmtime::Result<(Resource<MessagePort>, Resource<MessagePort>)> {
        let (one, two) = port::channel();
        Ok((self.adopt_port(one)?, self.adopt_port(two)?))
    }

    fn connect_shared_worker(&mut self, location: String, name: String) -> wasmtime::Result<Result<Resource<MessagePort>, String>> {
        let path = self.resolve(&location);
        let connected = self.host.load(&path).map_err(crate::ConnectError::from).and_then(|component| {
            self.host.shared().connect(&self.host, &component, &name)
        });
        match connected {
            Ok(port) => Ok(Ok(self.adopt_port(port)?)),
            Err(error) => Ok(Err(error.to_string())),
        }
    }

    fn set_timeout(&mut self, delay_ms: u32) -> wasmtime::Result<u32> {
        Ok(self.set_timer(Duration::from_millis(delay_ms.into()), false))
    }

    fn set_interval(&mut self, interval_ms: u32) -> wasmtime::Result<u32> {
        Ok(self.set_timer(Duration::from_millis(interval_ms.into()), true))
    }

    fn clear_timer(&mut self, id: u32) -> wasmtime::Result<()> {
        if let Some((key, _)) = self.timers.remove(&id) {
            self.host.timers().clear(key);
        }
        Ok(())
    }

    fn close(&mut self) -> wasmtime::Result<()> {
        self.closing = true;
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
        let path = self.resolve(&location);
        let component = match self.host.load(&path) {
            Ok(component) => component,
            Err(error) => return Ok(Err(error.to_string())),
        };
        let id = self.next_child;
        self.next_child += 1;
        let parent = ParentLink::Worker { queue: self.queue.sender(), child: id };
        let options = WorkerOptions { name: options.name };
        let (sender, control, _) = match worker::spawn(&self.host, &component, options, parent, None) {
            Ok(spawned) => spawned,
            Err(error) => return Ok(Err(format!("cannot start a thread for {location}: {error}"))),
        };
        if self.children.len() >= self.prune_at {
            self.children.retain(|_, child| !child.has_stopped());
            self.prune_at = (self.children.len() * 2).max(MIN_PRUNE);
        }
        self.children.insert(id, control.clone());
        Ok(Ok(self.table.push(ChildWorker { id, sender, control })?))
    }

    fn id(&mut self, worker: Resource<ChildWorker>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&worker)?.id)
    }

    fn post_message(&mut self, worker: Resource<ChildWorker>, message: types::Message) -> wasmtime::Result<()> {
        let message = self.lift_message(message)?;
        let child = self.table.get(&worker)?;
        // A child that has ended discards the message, as a closed event loop does.
        let _ = child.sender.send(Task::Message { source: Source::Parent, message });
        Ok(())
    }

    fn terminate(&mut self, worker: Resource<ChildWorker>) -> wasmtime::Result<()> {
        // The child stays in `children` until its thread is seen to have ended, so that this
        // worker's own end still waits for it.
        self.table.get(&worker)?.control.terminate();
        Ok(())
    }

    fn drop(&mut self, worker: Resource<ChildWorker>) -> wasmtime::Result<()> {
        // Dropping the handle gives up the right to post; the child keeps running.
        self.table.delete(worker)?;
        Ok(())
    }
}
