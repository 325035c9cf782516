//! Shared workers (10.2.6.4, `SharedWorker`): one instance per name, many clients, each
//! connected through a message channel.
//!
//! The registry maps a name to the running worker and the component it runs. Connecting makes
//! a channel, keeps one end for the client and queues a [`LoopTask::Connect`] with the other end
//! at the shared worker, whose `on-connect` receives it. The registry does not keep the worker
//! alive: the worker lives while some client's port is entangled with one of its ports (or a
//! timer or child keeps it busy), or until it closes; then it leaves the registry, and the
//! next connect starts a new instance.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::budget::Charge;
use crate::error::{LoadError, SpawnError};
use crate::event_loop::{Control, LoopTask, WorkerQueue};
use crate::limits::Limits;
use crate::messaging::{self, MessagePort};

use super::component::Component;
use super::options::WorkerOptions;
use super::parent::ParentLink;
use super::services::Services;
use super::spawn::spawn;

/// A client could not connect to a shared worker.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The component could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A shared worker of that name runs another component (the chapter's URL mismatch).
    #[error("shared worker `{name}` runs `{running}`, not `{requested}`")]
    Mismatch {
        /// The shared worker's name.
        name: String,
        /// The component it runs.
        running: String,
        /// The component the client asked for.
        requested: String,
    },
    /// It could not be started.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
}

/// A shared worker a connect started, with what starting it was charged.
pub(crate) type Started = (Arc<Control>, Charge);

/// A worker that connects to a shared worker, as the registry needs it.
pub(crate) struct Starter<'a> {
    /// The server end's charge to the worker, until the shared worker takes the port.
    pub(crate) server_charge: Charge,
    /// Admits a new instance against the worker's limits, charging it; or says why not.
    pub(crate) admit: &'a mut dyn FnMut() -> Result<Charge, String>,
}

/// Shared-worker names across the hosts of a lattice: exactly one instance per name, on
/// whichever host claimed it first. Set on a host by the layer that joins a lattice.
pub(crate) trait SharedNames: Send + Sync {
    /// For a connect to `name` (running `component`) that found no instance here: claims the
    /// name for an instance here and gives `server` back, to be handed to it; or hands
    /// `server` to the instance that runs on another host (its `on-connect` receives it
    /// there) and returns `None`.
    ///
    /// # Errors
    ///
    /// [`ConnectError::Mismatch`] if the instance elsewhere runs another component; a
    /// one-line reason if the lattice cannot be asked.
    fn claim_or_connect(
        &self,
        name: &str,
        component: &Component,
        server: MessagePort,
    ) -> Result<Option<MessagePort>, ConnectError>;

    /// The instance here of `name` has ended: the name is free again.
    fn release(&self, name: &str);
}

#[derive(Default)]
pub(crate) struct SharedWorkers {
    running: Mutex<Registry>,
    /// Told when a name's claim on the lattice is settled (see [`Registry::claiming`]).
    settled: std::sync::Condvar,
}

#[derive(Default)]
struct Registry {
    running: HashMap<String, Running>,
    /// Names being claimed on the lattice by a connect here, which asks other hosts without
    /// the registry's lock (holding it would stall this host, and two hosts asking each other
    /// would wait on each other's locks). Another connect to one of these names, here or from
    /// another host, waits until the claim is settled and the instance (if it is here) runs.
    claiming: std::collections::HashSet<String>,
}

impl std::ops::Deref for Registry {
    type Target = HashMap<String, Running>;

    fn deref(&self) -> &Self::Target {
        &self.running
    }
}

impl std::ops::DerefMut for Registry {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.running
    }
}

struct Running {
    key: PathBuf,
    location: String,
    queue: Arc<WorkerQueue>,
    control: Arc<Control>,
}

impl SharedWorkers {
    /// Connects a client to the shared worker `name` running `component`. Returns the
    /// client's port. The server's end waits for the shared worker's `on-connect` charged to
    /// `starter`'s budget, if a worker connects.
    ///
    /// If none of that name runs, one is started with `limits` — if `starter` admits it: a
    /// worker that starts a shared worker counts it against its own limits, and gets back
    /// the new worker with the charge that `admit` made, decided under the registry's lock
    /// (so that no instance starts uncounted).
    pub(crate) fn connect(
        &self,
        services: &Arc<Services>,
        component: &Component,
        name: &str,
        limits: Limits,
        starter: Option<Starter<'_>>,
    ) -> Result<(MessagePort, Option<Started>), ConnectError> {
        let (client, mut server) = messaging::channel();
        let mut admit = None;
        if let Some(starter) = starter {
            server.charge = starter.server_charge;
            admit = Some(starter.admit);
        }
        let started = self.connect_inner(services, component, name, server, limits, admit)?;
        Ok((client, started))
    }

    /// Hands `server` (one end of a channel) to the shared worker `name` running `component`
    /// through its `on-connect`, starting the worker with `limits` (the host's defaults fill
    /// in what they leave open) if none runs. Returns the new worker if it started one.
    pub(crate) fn connect_port(
        &self,
        services: &Arc<Services>,
        component: &Component,
        name: &str,
        server: MessagePort,
        limits: Limits,
    ) -> Result<Option<Arc<Control>>, ConnectError> {
        Ok(self.connect_inner(services, component, name, server, limits, None)?.map(|(control, _)| control))
    }

    fn connect_inner(
        &self,
        services: &Arc<Services>,
        component: &Component,
        name: &str,
        server: MessagePort,
        limits: Limits,
        admit: Option<&mut dyn FnMut() -> Result<Charge, String>>,
    ) -> Result<Option<Started>, ConnectError> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        // Another connect is claiming the name: its instance may be the one to connect to.
        while running.claiming.contains(name) {
            running = self.settled.wait(running).unwrap_or_else(|p| p.into_inner());
        }
        let server = match running.get(name) {
            Some(worker) if worker.key != component.key() => {
                return Err(ConnectError::Mismatch {
                    name: name.to_string(),
                    running: worker.location.clone(),
                    requested: component.location().to_string(),
                });
            }
            Some(worker) => match worker.queue.push(LoopTask::Connect(server)) {
                Ok(()) => return Ok(None),
                // It has just ended: start a new one.
                Err(LoopTask::Connect(server)) => server,
                Err(_) => unreachable!("push returns the task it was given"),
            },
            None => server,
        };
        // None runs here: on a lattice, the name is the lattice's, and its instance may run
        // on another host.
        let server = match services.shared_names.get() {
            Some(names) => {
                running.claiming.insert(name.to_string());
                drop(running);
                let claimed = names.claim_or_connect(name, component, server);
                running = self.running.lock().unwrap_or_else(|p| p.into_inner());
                // Settled: the connects waiting for it go on once this lock is let go, by which
                // time an instance claimed here runs (it starts under the lock, below).
                running.claiming.remove(name);
                self.settled.notify_all();
                match claimed? {
                    Some(server) => server,
                    None => return Ok(None),
                }
            }
            None => server,
        };
        let charge = match admit {
            Some(admit) => admit().map_err(|limit| {
                ConnectError::Spawn(SpawnError::Limit {
                    worker: name.to_string(),
                    location: component.location().to_string(),
                    limit,
                })
            })?,
            None => Charge::default(),
        };
        let options = WorkerOptions { limits, ..WorkerOptions::named(name) };
        let (sender, control, queue) = spawn(services, component, options, ParentLink::None, Some(name.to_string()))
            .map_err(|failure| failure.into_error(name, component.location()))?;
        // The connect task goes first; the sender is dropped so that only clients (and what
        // the worker itself starts) keep it alive. If the worker already failed to start, the
        // task is refused and the client's port is closed at once.
        let _ = sender.send(LoopTask::Connect(server));
        running.insert(
            name.to_string(),
            Running {
                key: component.key().to_path_buf(),
                location: component.location().to_string(),
                queue,
                control: control.clone(),
            },
        );
        Ok(Some((control, charge)))
    }

    /// Forgets the shared worker `name` if it is the one with `control` (it has ended); on a
    /// lattice, its name is released.
    pub(crate) fn ended(&self, services: &Services, name: &str, control: &Arc<Control>) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.get(name).is_some_and(|worker| Arc::ptr_eq(&worker.control, control)) {
            running.remove(name);
            if let Some(names) = services.shared_names.get() {
                names.release(name);
            }
        }
    }

    /// Hands `server` to the shared worker `name` running here, if it runs (a client on
    /// another host connects); gives it back if it does not.
    pub(crate) fn connect_running(&self, name: &str, server: MessagePort) -> Result<(), MessagePort> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        // Claimed here just now: the instance is starting.
        while running.claiming.contains(name) {
            running = self.settled.wait(running).unwrap_or_else(|p| p.into_inner());
        }
        match running.get(name) {
            Some(worker) => match worker.queue.push(LoopTask::Connect(server)) {
                Ok(()) => Ok(()),
                Err(LoopTask::Connect(server)) => Err(server),
                Err(_) => unreachable!("push returns the task it was given"),
            },
            None => Err(server),
        }
    }
}
