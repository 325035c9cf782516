//! The worker global scope (10.2.1 `WorkerGlobalScope`, `DedicatedWorkerGlobalScope`): the
//! host side of the WIT `scope` interface, and the state each worker's [`Store`] holds.
//!
//! [`Store`]: wasmtime::Store

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::{self, scope::{Host as ScopeHost, HostWorker}};
use crate::bindings::types::{self, Host as TypesHost};
use crate::engine::Component;
use crate::event_loop::{Task, TaskQueue};
use crate::host::Host;
use crate::stdio::GuestOutput;
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
}

impl WorkerState {
    pub(crate) fn new(
        host: Host,
        component: &Component,
        name: String,
        queue: Arc<TaskQueue>,
        control: Arc<Control>,
        parent: ParentLink,
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
        }
    }

    pub(crate) fn host(&self) -> &Host {
        &self.host
    }

    /// Forgets a child that has ended.
    pub(crate) fn forget_child(&mut self, child: u32) {
        self.children.remove(&child);
    }

    /// Ends the worker: terminates its children, then hands the parent link to `tell_parent`.
    pub(crate) fn end(self, tell_parent: impl FnOnce(ParentLink)) {
        worker::terminate_all(self.children);
        tell_parent(self.parent);
    }
}

impl WasiView for WorkerState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl TypesHost for WorkerState {}

// No port or buffer can exist in this version of the world (nothing creates one), so there is
// nothing to drop; the types are declared so that `message` has its final shape.
impl types::HostMessagePort for WorkerState {
    fn drop(&mut self, _: Resource<types::MessagePort>) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl types::HostBuffer for WorkerState {
    fn drop(&mut self, _: Resource<types::Buffer>) -> wasmtime::Result<()> {
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
        self.parent.post(bindings::lift_message(message)?);
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
        // A relative location is resolved against the directory of this worker's location.
        let base = Path::new(&self.location).parent().unwrap_or(Path::new(""));
        let path = base.join(&location);
        let component = match self.host.load(&path) {
            Ok(component) => component,
            Err(error) => return Ok(Err(error.to_string())),
        };
        let id = self.next_child;
        self.next_child += 1;
        let parent = ParentLink::Worker { queue: self.queue.sender(), child: id };
        let options = WorkerOptions { name: options.name };
        let (sender, control) = match worker::spawn(&self.host, &component, options, parent) {
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
        let message = bindings::lift_message(message)?;
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
