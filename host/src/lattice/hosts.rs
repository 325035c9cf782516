//! The lattice's hosts: each advertises itself in the hosts' bucket, under its id, and
//! refreshes the entry every [`HEARTBEAT`](super::HEARTBEAT); the bucket forgets an entry
//! [`HOST_TTL`](super::HOST_TTL) after its last write, so the live hosts are the bucket's keys.

use std::collections::BTreeMap;

use async_nats::jetstream::kv;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

/// A host as it advertises itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    /// Its id on the lattice.
    pub id: String,
    /// Its processors.
    pub cores: u32,
    /// The most workers it runs for the lattice at once.
    pub max_workers: usize,
    /// Workers it runs for the lattice now.
    pub running: usize,
    /// Workers it has run for the lattice since it joined.
    pub started: u64,
    /// Its labels, matched by placements.
    pub labels: BTreeMap<String, String>,
    /// Its ledger since it joined: messages posted, delivered, dropped (all reasons).
    #[serde(default)]
    pub posted: u64,
    /// See [`posted`](Self::posted).
    #[serde(default)]
    pub delivered: u64,
    /// See [`posted`](Self::posted).
    #[serde(default)]
    pub dropped: u64,
    /// Of [`dropped`](Self::dropped), those refused because a queue was full.
    #[serde(default)]
    pub queue_full: u64,
}

impl HostInfo {
    /// Its free worker slots.
    pub fn free(&self) -> usize {
        self.max_workers.saturating_sub(self.running)
    }
}

/// Writes `info` as the host's entry.
pub(super) async fn advertise(hosts: &kv::Store, info: &HostInfo) -> Result<(), String> {
    let value = serde_json::to_vec(info).map_err(|error| error.to_string())?;
    hosts.put(&info.id, value.into()).await.map_err(|error| format!("cannot advertise host `{}`: {error}", info.id))?;
    Ok(())
}

/// Removes the host's entry (it leaves).
pub(super) async fn withdraw(hosts: &kv::Store, id: &str) {
    let _ = hosts.purge(id).await;
}

/// The live hosts, by id.
///
/// The keys are read from the bucket's stream as its subjects, not with the client's key
/// listing: that listing waits for a pending count that a concurrent write can make it never
/// reach (each heartbeat replaces a message it was counting), and then hangs.
pub(super) async fn live(hosts: &kv::Store) -> Result<Vec<HostInfo>, String> {
    let prefix = format!("$KV.{}.", hosts.name);
    let listed = tokio::time::timeout(super::REQUEST_TIMEOUT, async {
        let mut subjects = hosts
            .stream
            .info_with_subjects(format!("{prefix}>"))
            .await
            .map_err(|error| format!("cannot list the lattice's hosts: {error}"))?;
        let mut ids = Vec::new();
        while let Some(entry) = subjects.next().await {
            let (subject, _) = entry.map_err(|error| format!("cannot list the lattice's hosts: {error}"))?;
            if let Some(id) = subject.strip_prefix(&prefix) {
                ids.push(id.to_string());
            }
        }
        Ok::<_, String>(ids)
    })
    .await
    .map_err(|_| "cannot list the lattice's hosts: no answer in time".to_string())??;
    let mut found = Vec::new();
    for id in listed {
        // An entry may expire between the listing and the read (or be a departed host's
        // purge marker): it is simply gone.
        if let Ok(Some(value)) = hosts.get(&id).await {
            if let Ok(info) = serde_json::from_slice::<HostInfo>(&value) {
                found.push(info);
            }
        }
    }
    found.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(found)
}
