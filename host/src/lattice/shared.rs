//! Shared workers by name across the lattice: exactly one instance per name, wherever it was
//! first connected to.
//!
//! The lattice's key-value bucket `wasm-workers-<lattice>-shared` maps each name (hex-coded,
//! for the bucket's key rules) to the side that runs its instance, with the component's hash.
//! A connect that finds no instance of the name on its own host claims the name with the
//! bucket's *create*, which only one side can win; the winner starts the instance, the others
//! connect to it. Connecting elsewhere is a request to the owner on `P.shared.<id>.connect`,
//! carrying the client's port as a link ([`transfer`](super::transfer)): the owner hands its
//! end to the instance's `on-connect`. An owner that does not answer (no responder: its
//! process is gone) has its claim taken over with a compare-and-set on the entry's revision,
//! which again only one side can win. An instance that ends deletes its entry (if it still
//! holds that revision), and the next connect starts a new one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use async_nats::jetstream::kv;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::worker::{Component, ConnectError, Services, SharedNames};

use super::place::NatsPlacer;
use super::transfer::{self, Far};
use super::{Lattice, REQUEST_TIMEOUT};

/// The longest one operation on the bucket of names waits.
const BUCKET_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// A name's entry in the bucket.
#[derive(Debug, Serialize, Deserialize)]
struct Claim {
    /// The side that runs the instance (its placer's id).
    owner: String,
    /// The SHA-256 of the component it runs.
    hash: String,
    /// Where the owner loaded it from, for errors.
    location: String,
}

/// A connect to an instance elsewhere.
#[derive(Debug, Serialize, Deserialize)]
struct ConnectRequest {
    name: String,
    hash: String,
    /// The client's port, linked.
    link: String,
    /// The client's side, for the link's liveness.
    from: String,
}

/// Shared-worker names of one lattice, for one host.
pub(super) struct NatsNames {
    lattice: Lattice,
    placer: Arc<NatsPlacer>,
    bucket: kv::Store,
    /// The names this side holds, with the revision of its claim.
    claims: Mutex<HashMap<String, (u64, String)>>,
    services: Weak<Services>,
}

impl NatsNames {
    /// The names of `lattice` for the host whose placer is `placer`; answers connects to the
    /// instances it runs from now on.
    ///
    /// # Errors
    ///
    /// If the bucket cannot be had or the connect subject not subscribed.
    pub(super) fn start(
        lattice: &Lattice,
        placer: Arc<NatsPlacer>,
        services: &Arc<Services>,
    ) -> Result<Arc<Self>, String> {
        let bucket = lattice.block_on(super::shared_bucket(&lattice.0.client, lattice.name()))?;
        let names = Arc::new(NatsNames {
            lattice: lattice.clone(),
            placer,
            bucket,
            claims: Mutex::new(HashMap::new()),
            services: Arc::downgrade(services),
        });
        let subject = format!("{}.shared.{}.connect", lattice.prefix(), names.placer.id());
        let mut requests = lattice
            .block_on(lattice.0.client.subscribe(subject))
            .map_err(|error| format!("cannot subscribe: {error}"))?;
        let weak = Arc::downgrade(&names);
        let client = lattice.0.client.clone();
        lattice.spawn(async move {
            while let Some(request) = requests.next().await {
                let Some(names) = weak.upgrade() else { return };
                let Some(reply) = request.reply.clone() else { continue };
                let answer = names.accept(&request.payload).await;
                let body = serde_json::to_vec(&answer).unwrap_or_default();
                let _ = client.publish(reply, body.into()).await;
            }
        });
        Ok(names)
    }

    /// Answers a connect from another side: hands its port to the instance here.
    async fn accept(&self, payload: &[u8]) -> Result<(), String> {
        let request: ConnectRequest =
            serde_json::from_slice(payload).map_err(|error| format!("unreadable connect: {error}"))?;
        let held = self.claims.lock().unwrap_or_else(|p| p.into_inner()).get(&request.name).cloned();
        match held {
            Some((_, hash)) if hash == request.hash => {}
            Some(_) => return Err("mismatch".to_string()),
            None => return Err("not running".to_string()),
        }
        let services = self.services.upgrade().ok_or("not running")?;
        if !super::valid_id(&request.link) || !super::valid_id(&request.from) {
            return Err("a connect naming its link unreadably".to_string());
        }
        let far = Far { lattice: self.lattice.clone(), id: request.from.clone(), ledger: services.ledger.clone() };
        let port = transfer::accept(&far, &request.link).await?;
        let name = request.name.clone();
        // The registry's lock is not held across I/O, but it is a lock: off the runtime.
        tokio::task::spawn_blocking(move || services.shared.connect_running(&name, port).map_err(drop))
            .await
            .map_err(|error| error.to_string())?
            .map_err(|()| "not running".to_string())
    }

    /// Runs a bucket operation, waiting at most [`BUCKET_TIMEOUT`] (a cluster electing a
    /// leader may not answer).
    fn bounded<T, E: std::fmt::Display>(
        &self,
        operation: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, String> {
        self.lattice.block_on(async {
            match tokio::time::timeout(BUCKET_TIMEOUT, operation).await {
                Ok(result) => result.map_err(|error| error.to_string()),
                Err(_) => Err(format!("the lattice's bucket did not answer within {BUCKET_TIMEOUT:?}")),
            }
        })
    }

    /// A name's key: its bytes in hex (`-` for the empty name), or for a long name the hex
    /// of its SHA-256 after `h-` (a key stays short, and two names never share one).
    fn key(name: &str) -> String {
        use sha2::Digest;
        match name.len() {
            0 => "-".to_string(),
            1..=200 => name.bytes().map(|b| format!("{b:02x}")).collect(),
            _ => format!(
                "h-{}",
                sha2::Sha256::digest(name.as_bytes()).iter().map(|b| format!("{b:02x}")).collect::<String>()
            ),
        }
    }
}

impl SharedNames for NatsNames {
    fn claim_or_connect(
        &self,
        name: &str,
        component: &Component,
        server: crate::messaging::MessagePort,
    ) -> Result<Option<crate::messaging::MessagePort>, ConnectError> {
        let other = |why: String| {
            ConnectError::Spawn(crate::error::SpawnError::Placement {
                worker: name.to_string(),
                location: component.location().to_string(),
                cause: why,
            })
        };
        let hash = self.placer.upload(component).map_err(other)?;
        let key = Self::key(name);
        let ours = Claim {
            owner: self.placer.id().to_string(),
            hash: hash.clone(),
            location: component.location().to_string(),
        };
        let ours = bytes::Bytes::from(serde_json::to_vec(&ours).unwrap_or_default());
        // Marked as held before it is claimed: a connect from another side that finds this side
        // the owner as soon as the claim is made is then taken (it waits on the registry here
        // until the instance has started), never answered "not running".
        let claiming = |revision: u64| {
            self.claims.lock().unwrap_or_else(|p| p.into_inner()).insert(name.to_string(), (revision, hash.clone()));
        };
        let unclaim = || {
            self.claims.lock().unwrap_or_else(|p| p.into_inner()).remove(name);
        };
        // A few rounds: each either wins the name, connects, or saw the name change hands.
        for _ in 0..5 {
            let entry = self.bounded(self.bucket.entry(key.clone())).map_err(other)?;
            let entry = entry.filter(|entry| entry.operation == kv::Operation::Put);
            let Some(entry) = entry else {
                claiming(0);
                if let Ok(revision) = self.bounded(self.bucket.create(&key, ours.clone())) {
                    claiming(revision);
                    return Ok(Some(server));
                }
                unclaim();
                continue;
            };
            let claim: Claim = serde_json::from_slice(&entry.value).map_err(|e| other(e.to_string()))?;
            if claim.hash != hash {
                return Err(ConnectError::Mismatch {
                    name: name.to_string(),
                    running: claim.location,
                    requested: component.location().to_string(),
                });
            }
            if claim.owner != self.placer.id() {
                if let Some(link) = self.connect_elsewhere(name, &claim.owner, &hash)? {
                    // Taken: the port goes to the instance there.
                    link.start(server);
                    return Ok(None);
                }
            }
            // Its owner is gone, or its instance has just ended: take the name over, if no
            // other side does first.
            claiming(0);
            if let Ok(revision) = self.bounded(self.bucket.update(&key, ours.clone(), entry.revision)) {
                claiming(revision);
                return Ok(Some(server));
            }
            unclaim();
        }
        Err(other(format!("shared worker `{name}` changed hands too often to connect")))
    }

    fn release(&self, name: &str) {
        let claim = self.claims.lock().unwrap_or_else(|p| p.into_inner()).remove(name);
        if let Some((revision, _)) = claim {
            let (bucket, key) = (self.bucket.clone(), Self::key(name));
            self.lattice.spawn(async move {
                let _ = bucket.delete_expect_revision(key, Some(revision)).await;
            });
        }
    }
}

impl NatsNames {
    /// Asks `owner` to take a connect to `name`: the link for the client's port, ready to
    /// start, if it did; `None` if it does not answer or no longer runs the instance.
    fn connect_elsewhere(
        &self,
        name: &str,
        owner: &str,
        hash: &str,
    ) -> Result<Option<transfer::Prepared>, ConnectError> {
        let other = |why: String| {
            ConnectError::Spawn(crate::error::SpawnError::Placement {
                worker: name.to_string(),
                location: String::new(),
                cause: why,
            })
        };
        let services = self.services.upgrade().ok_or_else(|| other("the host has ended".to_string()))?;
        let far = Far { lattice: self.lattice.clone(), id: owner.to_string(), ledger: services.ledger.clone() };
        // Listening before the owner hears of it: nothing it sends on the port is missed.
        let prepared = self.lattice.block_on(transfer::prepare(&far)).map_err(other)?;
        let request = ConnectRequest {
            name: name.to_string(),
            hash: hash.to_string(),
            link: prepared.id().to_string(),
            from: self.placer.id().to_string(),
        };
        let body = serde_json::to_vec(&request).map_err(|e| other(e.to_string()))?;
        let subject = format!("{}.shared.{owner}.connect", self.lattice.prefix());
        let client = self.lattice.0.client.clone();
        let answer = self
            .lattice
            .block_on(async { tokio::time::timeout(REQUEST_TIMEOUT, client.request(subject, body.into())).await });
        match answer {
            Ok(Ok(reply)) => match serde_json::from_slice::<Result<(), String>>(&reply.payload) {
                Ok(Ok(())) => Ok(Some(prepared)),
                Ok(Err(why)) if why == "not running" => Ok(None),
                Ok(Err(why)) => Err(other(format!("`{owner}` refused the connect: {why}"))),
                Err(error) => Err(other(format!("`{owner}` answered unreadably: {error}"))),
            },
            // No responder: its process is gone, and the name may be taken over.
            Ok(Err(error)) if error.kind() == async_nats::RequestErrorKind::NoResponders => Ok(None),
            // Alive but slow, or unreachable for now: taking the name over could start a
            // second instance.
            Ok(Err(error)) => Err(other(format!("`{owner}`, which runs it, did not answer: {error}"))),
            Err(_) => {
                Err(other(format!("`{owner}`, which runs it, did not answer within {} s", REQUEST_TIMEOUT.as_secs())))
            }
        }
    }
}
