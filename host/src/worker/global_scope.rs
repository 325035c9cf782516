//! The worker global scope (10.2.1 `WorkerGlobalScope`, `DedicatedWorkerGlobalScope`): the
//! host side of the WIT interface `scope` — a worker's name and location, posting to its
//! parent, channels, shared workers, timers, closing, and the child workers it spawns.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::Resource;

use crate::accounting::DropReason;
use crate::bindings::scope::{Host as ScopeHost, HostWorker};
use crate::bindings::types;
use crate::budget::{Budget, Charge, PORT_COST, WORKER_COST};
use crate::event_loop::{discard, ChildWorker, Control, FromChild};
use crate::limits::Limits;
use crate::messaging::{self, MessagePort};

use super::options::{Placement, WorkerOptions};
use super::parent::ParentLink;
use super::remote::{spawn_remote, PlaceRequest};
use super::shared_workers::Starter;
use super::spawn::spawn;
use super::state::ReportedError;
use super::state::{WorkerState, MIN_PRUNE};

/// The longest error message a guest may report (longer ones are cut): it is held by the
/// host and travels in the error event.
const MAX_REPORTED_ERROR: usize = 16 << 10;

impl ScopeHost for WorkerState {
    fn name(&mut self) -> wasmtime::Result<String> {
        Ok(self.name.clone())
    }

    fn location(&mut self) -> wasmtime::Result<String> {
        Ok(self.location.clone())
    }

    fn hardware_concurrency(&mut self) -> wasmtime::Result<u32> {
        Ok(self.services.hardware_concurrency)
    }

    fn post_message(&mut self, message: types::Message) -> wasmtime::Result<Result<(), types::PostError>> {
        let max_size = |this: &Self| Ok(this.parent.message_size());
        let message = match self.lift_message(message, max_size)? {
            Ok(message) => message,
            Err(error) => return Ok(Err(error)),
        };
        Ok(self.parent.post(message, &self.services.ledger).map_or_else(post_error, Ok))
    }

    fn message_channel(&mut self) -> wasmtime::Result<(Resource<MessagePort>, Resource<MessagePort>)> {
        let charges = self.budget.charge(PORT_COST).and_then(|one| Ok((one, self.budget.charge(PORT_COST)?)));
        let (one_charge, two_charge) = charges.map_err(|over| self.over_budget("make a message channel", over))?;
        let (mut one, mut two) = messaging::channel();
        (one.charge, two.charge) = (one_charge, two_charge);
        Ok((self.adopt_port(one)?, self.adopt_port(two)?))
    }

    fn connect_shared_worker(
        &mut self,
        location: String,
        name: String,
    ) -> wasmtime::Result<Result<Resource<MessagePort>, String>> {
        let component = match self.load(&location) {
            Ok((component, _)) => component,
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
        match self.services.shared.connect(&self.services, &component, &name, self.limits, Some(starter)) {
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
            self.services.timers.clear(key);
        }
        Ok(())
    }

    fn close(&mut self) -> wasmtime::Result<()> {
        // The closing flag: what is queued is discarded now, and so is every later task
        // (posts to this worker fail from now on, and a shared worker is not reused).
        self.closing = true;
        discard(self.queue.close(), &self.services.ledger);
        Ok(())
    }

    fn report_error(&mut self, mut message: String, lineno: u32, colno: u32) -> wasmtime::Result<()> {
        if message.len() > MAX_REPORTED_ERROR {
            let mut end = MAX_REPORTED_ERROR;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        self.reported_error = Some(ReportedError { message, lineno, colno });
        Ok(())
    }
}

impl WorkerState {
    /// Spawns a child: on a lattice host if `placement` says so and this host has joined a
    /// lattice, here otherwise.
    fn spawn_child(
        &mut self,
        location: String,
        options: types::WorkerOptions,
        placement: Option<Placement>,
    ) -> wasmtime::Result<Result<Resource<ChildWorker>, String>> {
        let (component, origin) = match self.load(&location) {
            Ok(loaded) => loaded,
            Err(error) => return Ok(Err(error)),
        };
        let admitted = admit_worker(&mut self.children, &mut self.started_shared, &self.budget, &self.limits);
        let charge = match admitted {
            Ok(charge) => charge,
            Err(why) => return Ok(Err(format!("cannot start `{location}`: {why}"))),
        };
        let id = self.next_child;
        self.next_child += 1;
        let placer = placement.as_ref().and_then(|placement| Some((placement, self.services.placer.get()?)));
        if let Some((placement, placer)) = placer {
            // Placed on another host: the same limits travel with it; no capabilities do.
            let name = options.name.unwrap_or_default();
            let parent = ParentLink::Worker(FromChild { queue: self.queue.clone(), child: id });
            let request = PlaceRequest {
                component: &component,
                placement,
                name: &name,
                limits: self.limits,
                channels: Vec::new(),
                origin,
            };
            let child = match spawn_remote(&self.services, &**placer, request, parent) {
                Ok(spawned) => spawned,
                Err(why) => return Ok(Err(format!("cannot start `{location}` on the lattice: {why}"))),
            };
            self.children.insert(id, (child.control.clone(), charge));
            let child = ChildWorker { id, sender: child.sender, control: child.control, direct: Some(child.to) };
            return Ok(Ok(self.table.push(child)?));
        }
        let parent = ParentLink::Worker(FromChild { queue: self.queue.clone(), child: id });
        // A child gets no capabilities and no channels (only what its parent sends it), and
        // its parent's limits: spawning is no way around them.
        let options = WorkerOptions { name: options.name, limits: self.limits, origin, ..WorkerOptions::default() };
        let (sender, control, _) = match spawn(&self.services, &component, options, parent, None) {
            Ok(spawned) => spawned,
            Err(failure) => return Ok(Err(format!("cannot start `{location}`: {failure}"))),
        };
        if self.children.len() >= self.prune_at {
            self.children.retain(|_, (child, _)| !child.has_stopped());
            self.prune_at = (self.children.len() * 2).max(MIN_PRUNE);
        }
        self.children.insert(id, (control.clone(), charge));
        Ok(Ok(self.table.push(ChildWorker { id, sender, control, direct: None })?))
    }
}

impl HostWorker for WorkerState {
    fn spawn(
        &mut self,
        location: String,
        options: types::WorkerOptions,
    ) -> wasmtime::Result<Result<Resource<ChildWorker>, String>> {
        let placement = self.spawn_placement.clone();
        self.spawn_child(location, options, placement)
    }

    fn spawn_placed(
        &mut self,
        location: String,
        options: types::WorkerOptions,
        placement: types::Placement,
    ) -> wasmtime::Result<Result<Resource<ChildWorker>, String>> {
        let placement = match placement {
            types::Placement::Any => Placement::Any,
            types::Placement::Host(id) => Placement::Host(id),
            types::Placement::Labels(labels) => Placement::Labels(labels.into_iter().collect()),
        };
        self.spawn_child(location, options, Some(placement))
    }

    fn id(&mut self, worker: Resource<ChildWorker>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&worker)?.id)
    }

    fn post_message(
        &mut self,
        worker: Resource<ChildWorker>,
        message: types::Message,
    ) -> wasmtime::Result<Result<(), types::PostError>> {
        let max_size = |this: &Self| Ok(this.table.get(&worker)?.to().message_size());
        let message = match self.lift_message(message, max_size)? {
            Ok(message) => message,
            Err(error) => return Ok(Err(error)),
        };
        let child = self.table.get(&worker)?;
        // A child that has ended discards the message, as a closed event loop does.
        Ok(messaging::post(child.to(), message, &self.services.ledger).map_or_else(post_error, Ok))
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
pub(super) fn post_error(reason: DropReason) -> Result<(), types::PostError> {
    match reason {
        DropReason::QueueFull => Err(types::PostError::QueueFull),
        DropReason::TooLarge => Err(types::PostError::TooLarge),
        DropReason::ReceiverGone
        | DropReason::InputEnded
        | DropReason::Discarded
        | DropReason::PortClosed
        | DropReason::OutputClosed
        | DropReason::LinkLost => Ok(()),
    }
}
