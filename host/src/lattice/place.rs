//! The placing side: choosing a host, sending it the component, starting the worker there,
//! and the link a proxy sends through.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::accounting::DropReason;
use crate::limits::Limits;
use crate::messaging::Message;
use crate::worker::{CloseReason, Component, Exit, Placement, Placer, RemoteEvents, RemoteWorker};
use wasm_workers_protocol::ErrorEvent;

use super::hosts::{self, HostInfo};
use super::wire::{self, Kind, Sequence, SpawnReply, SpawnRequest, WireLimits};
use super::{Lattice, REQUEST_TIMEOUT};

/// Places workers on the hosts of one lattice.
pub(super) struct NatsPlacer {
    lattice: Lattice,
    /// This side's id on the lattice, for the hosts' records.
    id: String,
    /// Components' hashes by file, computed once.
    hashes: Mutex<HashMap<std::path::PathBuf, String>>,
    /// Placements made per host since its last advertisement was read: a burst of spawns
    /// spreads over the hosts instead of all going to the one that looked freest.
    placed: Mutex<HashMap<String, usize>>,
    next_uid: AtomicU64,
}

impl NatsPlacer {
    pub(super) fn new(lattice: Lattice) -> Self {
        let id = format!("{}-{}", hostname(), std::process::id());
        NatsPlacer {
            lattice,
            id,
            hashes: Mutex::new(HashMap::new()),
            placed: Mutex::new(HashMap::new()),
            next_uid: AtomicU64::new(1),
        }
    }

    /// The component's bytes and hash.
    fn component(&self, component: &Component) -> Result<(Vec<u8>, String), String> {
        let path = component.key();
        let bytes = std::fs::read(path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        let mut hashes = self.hashes.lock().unwrap_or_else(|p| p.into_inner());
        let hash = hashes.entry(path.to_path_buf()).or_insert_with(|| hex(&Sha256::digest(&bytes))).clone();
        Ok((bytes, hash))
    }

    /// The host for `placement`: of the live hosts that match and have room, the one with the
    /// most free slots, counting this side's placements since.
    fn choose(&self, placement: &Placement, live: Vec<HostInfo>) -> Result<String, String> {
        let mut placed = self.placed.lock().unwrap_or_else(|p| p.into_inner());
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
            .map(|host| (host.free().saturating_sub(placed.get(&host.id).copied().unwrap_or(0)), *host))
            .filter(|(free, _)| *free > 0)
            .max_by(|(a, x), (b, y)| a.cmp(b).then_with(|| y.id.cmp(&x.id)));
        match best {
            Some((_, host)) => {
                *placed.entry(host.id.clone()).or_insert(0) += 1;
                Ok(host.id.clone())
            }
            None => Err(format!("no matching host has a free worker slot ({} match)", matching.len())),
        }
    }
}

impl Placer for NatsPlacer {
    fn place(
        &self,
        component: &Component,
        placement: &Placement,
        name: &str,
        limits: Limits,
        events: RemoteEvents,
    ) -> Result<(Box<dyn RemoteWorker>, String), String> {
        let (bytes, hash) = self.component(component)?;
        let lattice = &self.lattice;
        let live = lattice.block_on(hosts::live(&lattice.0.hosts))?;
        let host = self.choose(placement, live)?;
        let uid = format!("{}-{}", self.id, self.next_uid.fetch_add(1, Ordering::Relaxed));
        let prefix = lattice.prefix();
        let request = SpawnRequest {
            uid: uid.clone(),
            component: hash.clone(),
            location: component.location().to_string(),
            name: name.to_string(),
            limits: WireLimits::from(limits),
            from: self.id.clone(),
        };
        let client = lattice.0.client.clone();
        let components = lattice.0.components.clone();
        let out = lattice.block_on(async {
            // The component, unless the bucket has it already.
            if components.info(&hash).await.is_err() {
                components
                    .put(hash.as_str(), &mut bytes.as_slice())
                    .await
                    .map_err(|error| format!("cannot upload the component: {error}"))?;
            }
            // Subscribed before the worker can start, so that none of its events is missed.
            let out = client
                .subscribe(format!("{prefix}.worker.{uid}.out"))
                .await
                .map_err(|error| format!("cannot subscribe: {error}"))?;
            let body = serde_json::to_vec(&request).map_err(|error| error.to_string())?;
            let reply = tokio::time::timeout(
                REQUEST_TIMEOUT,
                client.request(format!("{prefix}.host.{host}.spawn"), body.into()),
            )
            .await
            .map_err(|_| format!("host `{host}` did not answer within {} s", REQUEST_TIMEOUT.as_secs()))?
            .map_err(|error| format!("host `{host}`: {error}"))?;
            let reply: SpawnReply = serde_json::from_slice(&reply.payload)
                .map_err(|error| format!("host `{host}` answered unreadably: {error}"))?;
            match reply.error {
                Some(error) => Err(format!("host `{host}` refused: {error}")),
                None => Ok(out),
            }
        });
        let out = match out {
            Ok(out) => out,
            Err(why) => {
                let mut placed = self.placed.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(count) = placed.get_mut(&host) {
                    *count = count.saturating_sub(1);
                }
                return Err(why);
            }
        };
        lattice.spawn(receive_events(out, events, host.clone()));
        let link = Link { lattice: lattice.clone(), subject: format!("{prefix}.worker.{uid}"), seq: 0 };
        Ok((Box::new(link), host))
    }
}

/// Turns what arrives on a remote worker's `out` subject into its events here, until its end.
async fn receive_events(mut out: async_nats::Subscriber, events: RemoteEvents, host: String) {
    let mut sequence = Sequence::default();
    while let Some(message) = out.next().await {
        let (seq, kind, message) = match wire::read(&message) {
            Ok(read) => read,
            Err(why) => {
                events.failed(format!("the link to host `{host}` broke: {why}"));
                return;
            }
        };
        match sequence.take(seq) {
            Ok(0) => {}
            Ok(skipped) => {
                events.failed(format!("{skipped} messages from host `{host}` were lost in transit"));
                return;
            }
            Err(why) => {
                events.failed(format!("the link to host `{host}` broke: {why}"));
                return;
            }
        }
        match kind {
            Kind::Message => events.message(message),
            Kind::Closed => {
                let reason = match message.data.as_slice() {
                    b"idle" => CloseReason::Idle,
                    b"terminated" => CloseReason::Terminated,
                    _ => CloseReason::Closed,
                };
                events.ended(Exit::Closed(reason));
                return;
            }
            Kind::Error => {
                let error: ErrorEvent = match serde_json::from_slice::<WireError>(&message.data) {
                    Ok(error) => ErrorEvent {
                        message: format!("{} (on host `{host}`)", error.message),
                        worker: error.worker,
                        location: error.location,
                    },
                    Err(_) => ErrorEvent {
                        message: format!("failed on host `{host}`"),
                        worker: String::new(),
                        location: String::new(),
                    },
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
}

/// The way to one remote worker: its `in` and `terminate` subjects.
struct Link {
    lattice: Lattice,
    /// `P.worker.<uid>`.
    subject: String,
    seq: u64,
}

impl RemoteWorker for Link {
    fn send(&mut self, message: Message) -> Result<(), (DropReason, Message)> {
        if !message.ports.is_empty() {
            // Ports do not cross hosts yet: refused as if the receiver could not take it.
            return Err((DropReason::LinkLost, message));
        }
        // Buffers cross by copy: their bytes follow the message's (not supported yet either).
        if !message.buffers.is_empty() {
            return Err((DropReason::LinkLost, message));
        }
        let headers = wire::headers(self.seq + 1, Kind::Message, message.codec);
        let subject = format!("{}.in", self.subject);
        let client = self.lattice.0.client.clone();
        let payload = bytes::Bytes::from(message.data);
        match self.lattice.block_on(client.publish_with_headers(subject, headers, payload)) {
            Ok(()) => {
                self.seq += 1;
                Ok(())
            }
            Err(error) => {
                tracing::debug!(%error, "publish failed");
                Err((DropReason::LinkLost, Message::new(message.codec, Vec::new())))
            }
        }
    }

    fn terminate(&mut self) {
        let client = self.lattice.0.client.clone();
        let subject = format!("{}.terminate", self.subject);
        let _ = self.lattice.block_on(async move {
            client.publish(subject, bytes::Bytes::new()).await?;
            client.flush().await.map_err(|error| {
                async_nats::PublishError::with_source(async_nats::client::PublishErrorKind::Send, error)
            })
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
