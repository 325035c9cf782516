//! Whether a graph spread over hosts has gone quiet: every worker of every host it reaches
//! waits, and nothing is on its way between them.
//!
//! Within one host the event loops count their busy workers ([`Quiescence`]). Across hosts,
//! each side counts, per far side, the NATS messages it published on links (worker links,
//! port links, their credits) and those it took from them ([`Traffic`]). A side is *quiet*
//! when its workers wait and none of its pumps or port links holds anything (nothing
//! pending, nothing unread at its port). The placing side asks every side its links reach
//! for its report (`P.quiet.<id>`), and the sides those reach, twice: the graph is quiet when
//! both rounds find every side quiet, every count of messages sent from one side to another
//! equal to the count taken there, and no count changed between the rounds. A side that does
//! not answer is not known to be quiet. The check is one way for a host to be quiescent, not
//! the only one: the proxies of remote workers count as busy, so a host whose remote workers
//! have all ended is quiescent as it was before, however the counts stand (a count can stay
//! unequal for good when a link ends with a message on its way, which then only means this
//! way is closed).
//!
//! [`Quiescence`]: crate::event_loop::Quiescence

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::worker::Services;

use super::Lattice;

/// How long one side's report is waited for.
const REPORT_TIMEOUT: Duration = Duration::from_secs(1);

/// After a round that was not quiet, how long before the caller asks again.
const AGAIN: Duration = Duration::from_millis(20);

/// Messages one side published to, and took from, one far side.
#[derive(Debug, Default)]
pub(super) struct PeerCount {
    sent: AtomicU64,
    taken: AtomicU64,
}

impl PeerCount {
    pub(super) fn sent(&self, n: u64) {
        self.sent.fetch_add(n, Ordering::AcqRel);
    }

    pub(super) fn taken(&self, n: u64) {
        self.taken.fetch_add(n, Ordering::AcqRel);
    }
}

/// Counts one message taken when dropped: at the end of its handling, however that ends.
pub(super) struct Taking<'a>(pub(super) &'a PeerCount);

impl Drop for Taking<'_> {
    fn drop(&mut self) {
        self.0.taken(1);
    }
}

/// Whether a pump or a port link holds something (see the module).
pub(super) trait Probe: Send + Sync {
    fn busy(&self) -> bool;
}

/// This side's traffic on the lattice.
#[derive(Default)]
pub(super) struct Traffic {
    peers: Mutex<HashMap<String, Arc<PeerCount>>>,
    probes: Mutex<Vec<Weak<dyn Probe>>>,
    /// This side's ids (a placing side's, a serving host's) and its host.
    ids: Mutex<Vec<String>>,
    services: Mutex<Option<Weak<Services>>>,
}

impl Traffic {
    /// The counts with far side `id`.
    pub(super) fn peer(&self, id: &str) -> Arc<PeerCount> {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers.entry(id.to_string()).or_default().clone()
    }

    /// Watches `probe` while it lives.
    pub(super) fn watch(&self, probe: Weak<dyn Probe>) {
        let mut probes = self.probes.lock().unwrap_or_else(|p| p.into_inner());
        probes.retain(|probe| probe.strong_count() > 0);
        probes.push(probe);
    }

    /// This side's report: its counts, then whether its links hold anything, then whether
    /// its workers wait (in that order: what moves from a link to a worker is seen in one or
    /// the other, or by the second round).
    fn report(&self) -> Report {
        let (mut sent, mut taken) = (BTreeMap::new(), BTreeMap::new());
        for (id, count) in self.peers.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            sent.insert(id.clone(), count.sent.load(Ordering::Acquire));
            taken.insert(id.clone(), count.taken.load(Ordering::Acquire));
        }
        let probes: Vec<Arc<dyn Probe>> =
            self.probes.lock().unwrap_or_else(|p| p.into_inner()).iter().filter_map(Weak::upgrade).collect();
        let links_idle = probes.iter().all(|probe| !probe.busy());
        let services = self.services.lock().unwrap_or_else(|p| p.into_inner()).as_ref().and_then(Weak::upgrade);
        let workers_wait = services.is_none_or(|services| services.quiet_but_proxies());
        let ids = self.ids.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Report { ids, quiet: links_idle && workers_wait, sent, taken }
    }
}

/// What a side says of itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Report {
    ids: Vec<String>,
    quiet: bool,
    sent: BTreeMap<String, u64>,
    taken: BTreeMap<String, u64>,
}

impl Lattice {
    pub(super) fn traffic(&self) -> &Traffic {
        &self.0.traffic
    }

    /// Answers, from now on, the reports asked of side `id`, whose workers are `services`'.
    ///
    /// # Errors
    ///
    /// If it cannot subscribe.
    pub(super) fn answer_quiet(&self, id: &str, services: &Arc<Services>) -> Result<(), String> {
        let traffic = &self.0.traffic;
        traffic.ids.lock().unwrap_or_else(|p| p.into_inner()).push(id.to_string());
        *traffic.services.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::downgrade(services));
        let mut requests = self
            .block_on(self.0.client.subscribe(format!("{}.quiet.{id}", self.prefix())))
            .map_err(|error| format!("cannot subscribe: {error}"))?;
        let lattice = Arc::downgrade(&self.0);
        self.spawn(async move {
            while let Some(request) = requests.next().await {
                let Some(inner) = lattice.upgrade() else { return };
                let Some(reply) = request.reply else { continue };
                let body = serde_json::to_vec(&inner.traffic.report()).unwrap_or_default();
                let _ = inner.client.publish(reply, body.into()).await;
            }
        });
        Ok(())
    }

    /// Whether every side this one's links reach is quiet, with nothing on its way between
    /// them (two rounds; see the module). Runs on the lattice's runtime; when the answer is
    /// no, it comes after a short pause, so that a caller may simply ask again.
    pub(super) fn quiet(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>> {
        let lattice = self.clone();
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.spawn(async move {
            let services = lattice.0.traffic.services.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let here = services.as_ref().and_then(Weak::upgrade).is_none_or(|services| services.quiet_but_proxies());
            let quiet = here
                && match lattice.round().await {
                    Some(first) => lattice.round().await.is_some_and(|second| second == first),
                    None => false,
                };
            if !quiet {
                tokio::time::sleep(AGAIN).await;
            }
            let _ = answer.send(quiet);
        });
        Box::pin(async move { answered.await.unwrap_or(false) })
    }

    /// One round: the reports of every side reachable from this one, if all are quiet and
    /// their counts agree; `None` otherwise.
    async fn round(&self) -> Option<Vec<Report>> {
        let own = self.0.traffic.report();
        if !own.quiet {
            tracing::trace!("not quiet here");
            return None;
        }
        let mut asked: HashSet<String> = own.ids.iter().cloned().collect();
        let mut todo: Vec<String> = own.sent.keys().chain(own.taken.keys()).cloned().collect();
        let mut reports = vec![own];
        while let Some(id) = todo.pop() {
            if !asked.insert(id.clone()) {
                continue;
            }
            let subject = format!("{}.quiet.{id}", self.prefix());
            let asking = self.0.client.request(subject, bytes::Bytes::new());
            // No answer (that side is gone, or the server restarts): not known to be quiet.
            // Once its links have failed here, the proxies that held the run end, and every
            // worker here waits.
            let Ok(Ok(reply)) = tokio::time::timeout(REPORT_TIMEOUT, asking).await else {
                tracing::debug!(side = %id, "no report: not known to be quiet");
                return None;
            };
            let report: Report = serde_json::from_slice(&reply.payload).ok()?;
            if !report.quiet {
                tracing::debug!(?report, "not quiet there");
                return None;
            }
            asked.extend(report.ids.iter().cloned());
            todo.extend(report.sent.keys().chain(report.taken.keys()).filter(|id| !asked.contains(*id)).cloned());
            reports.push(report);
        }
        let balanced = balanced(&reports);
        if !balanced {
            tracing::debug!(?reports, "the lattice is not quiet: something is on its way");
        }
        balanced.then_some(reports)
    }
}

/// Whether what each side sent to each other side was taken there, for every ordered pair
/// of the sides reported on (a side may be known by several ids: a placing side's, a
/// serving host's).
fn balanced(reports: &[Report]) -> bool {
    let total = |counts: &BTreeMap<String, u64>, of: &Report| -> u64 {
        of.ids.iter().map(|id| counts.get(id).copied().unwrap_or(0)).sum()
    };
    reports.iter().enumerate().all(|(i, from)| {
        reports.iter().enumerate().all(|(j, to)| i == j || total(&from.sent, to) == total(&to.taken, from))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(ids: &[&str], sent: &[(&str, u64)], taken: &[(&str, u64)]) -> Report {
        let map = |pairs: &[(&str, u64)]| pairs.iter().map(|(id, n)| (id.to_string(), *n)).collect();
        Report { ids: ids.iter().map(|id| id.to_string()).collect(), quiet: true, sent: map(sent), taken: map(taken) }
    }

    #[test]
    fn counts_agree_only_when_nothing_is_on_its_way_whatever_id_a_side_is_known_by() {
        // The placing side `p` knows the serving host as `one`; that host knows it as `p`,
        // and is also the placing side `q` for a worker it placed on `two`.
        let here = report(&["p"], &[("one", 5)], &[("one", 3)]);
        let one = report(&["one", "q"], &[("p", 3), ("two", 2)], &[("p", 5), ("two", 1)]);
        let two = report(&["two"], &[("q", 1)], &[("q", 2)]);
        assert!(balanced(&[here.clone(), one.clone(), two.clone()]));
        // One message from `two` to `one` still on its way.
        let two_more = report(&["two"], &[("q", 2)], &[("q", 2)]);
        assert!(!balanced(&[here, one, two_more]));
    }
}
