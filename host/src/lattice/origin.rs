//! A placed worker's origin, as its host reaches it: the components the worker names are
//! asked of the side that placed its graph's first worker, by location, and come by hash
//! (see [`Origin`](crate::Origin)).

use std::sync::Arc;

use crate::worker::{Component, Fetch, Origin};

use super::serve::Serving;
use super::wire::{FetchReply, FetchRequest};
use super::REQUEST_TIMEOUT;

/// The origin of a worker this host runs for the lattice.
pub(super) struct NatsOrigin {
    pub(super) serving: Arc<Serving>,
    /// The origin's id on the lattice.
    pub(super) id: String,
    /// The hash of the component the worker's locations resolve beside.
    pub(super) base: String,
}

impl Fetch for NatsOrigin {
    fn fetch(&self, location: &str) -> Result<(Component, Origin), String> {
        let lattice = &self.serving.lattice;
        let subject = format!("{}.origin.{}.fetch", lattice.prefix(), self.id);
        let request = FetchRequest { base: self.base.clone(), location: location.to_string() };
        let body = serde_json::to_vec(&request).map_err(|error| error.to_string())?;
        let client = lattice.0.client.clone();
        let path = lattice.block_on(async {
            let reply = tokio::time::timeout(REQUEST_TIMEOUT, client.request(subject, body.into()))
                .await
                .map_err(|_| format!("its origin did not answer within {} s", REQUEST_TIMEOUT.as_secs()))?
                .map_err(|error| format!("its origin cannot be reached: {error}"))?;
            let reply: FetchReply = serde_json::from_slice(&reply.payload)
                .map_err(|error| format!("its origin answered unreadably: {error}"))?;
            let (hash, shown) = reply.found?;
            self.serving.allows(&hash, &shown)?;
            let path = self.serving.fetch(&hash).await?;
            Ok::<_, String>((path, hash))
        });
        let (path, hash) = path?;
        let component = self.serving.host.load(&path).map_err(|error| error.to_string())?;
        let origin = NatsOrigin { serving: self.serving.clone(), id: self.id.clone(), base: hash };
        Ok((component, Origin(Arc::new(origin))))
    }

    fn reference(&self) -> (String, String) {
        (self.id.clone(), self.base.clone())
    }
}
