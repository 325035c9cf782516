//! The lattice: one worker graph across hosts, on NATS.
//!
//! Hosts join a lattice by name on a NATS server. Each advertises itself in the lattice's
//! key-value bucket of hosts, refreshed every second and forgotten three seconds after its last
//! refresh ([`hosts`]). A worker whose children are placed on the lattice has each child
//! started on a host chosen by free slots and labels ([`place`]); the component travels by
//! its SHA-256 through the lattice's object store, and the chosen host verifies it and
//! compiles it with its own cache ([`serve`]). Messages between a parent and its remote child
//! travel on core NATS subjects of their own, numbered so that a gap is never silent
//! ([`wire`]).
//!
//! Subjects, with `P` = `wasm-workers.<lattice>`:
//! - `P.host.<id>.spawn`: request to start a worker on host `<id>`; the reply says whether it
//!   started.
//! - `P.worker.<uid>.in`: the parent's messages to remote worker `<uid>`, in order.
//! - `P.worker.<uid>.out`: the remote worker's events to its parent (messages, its end).
//! - `P.worker.<uid>.terminate`: the parent terminates it.
//! - `P.origin.<id>.fetch`: request to placing side `<id>` for a component that a worker it
//!   placed names ([`origin`]); the reply is the component's hash.
//! - `P.shared.<id>.connect`: a client's connect to the instance of a shared worker that side
//!   `<id>` runs ([`shared`]).
//! - `P.quiet.<id>`: what side `<id>` has sent and taken on its links, and whether it is
//!   quiet ([`quiet`]).
//! - `P.heartbeat.<id>`: host `<id>` is alive, every [`HEARTBEAT`]; the placing side gives up
//!   the workers it placed on a host silent for [`HOST_SILENCE`].
//! - `P.port.<link>.{a,b}` and `P.port.<link>.{a,b}.credit`: a port whose two ends are on two
//!   hosts: the messages from the side that sent it (`a`) and the side that received it
//!   (`b`), and the room each side grants the other ([`transfer`]).
//!
//! Buckets: `wasm-workers-<lattice>-hosts` (key-value, one entry per live host),
//! `wasm-workers-<lattice>-shared` (key-value, one entry per shared worker's name, naming
//! the side that runs it) and `wasm-workers-<lattice>-components` (objects, one per
//! component, named by its hash).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;

use async_nats::jetstream::{self, kv, object_store, stream};

mod hosts;
mod origin;
mod place;
mod quiet;
mod serve;
mod shared;
mod transfer;
mod wire;

pub use hosts::HostInfo;
pub use serve::{serve, ServeOptions};

/// How long a host's advertisement lives without a refresh: a host that stops refreshing it
/// (it died) is gone from the lattice this long after its last refresh.
pub const HOST_TTL: Duration = Duration::from_secs(3);

/// How often a host refreshes its advertisement.
pub const ADVERTISE_EVERY: Duration = Duration::from_secs(1);

/// How often a host says it is alive on its heartbeat subject.
pub const HEARTBEAT: Duration = Duration::from_millis(500);

/// How long a host may be silent on its heartbeat subject before the workers placed on it
/// are given up for lost (three heartbeats missed): their parents get an error event that
/// names the host, well within 3 s of its death.
pub const HOST_SILENCE: Duration = Duration::from_millis(1500);

/// How long a request to another host (to start a worker, fetch a component, connect to a
/// shared worker) waits for its answer: long enough for a cluster that lost a server to elect
/// new leaders for the buckets.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// How to reach a lattice.
#[derive(Clone, Debug, Default)]
pub struct LatticeOptions {
    /// The NATS server (`nats://host:port`; several separated by commas).
    pub url: String,
    /// The lattice's name: hosts that join the same name on the same server form one lattice.
    /// Letters, digits, `-` and `_`.
    pub name: String,
    /// A NATS credentials file (JWT and NKey seed).
    pub credentials: Option<PathBuf>,
    /// A token, for a server that authenticates by token.
    pub token: Option<String>,
    /// Require TLS to the server.
    pub tls: bool,
    /// A root certificate (PEM) to trust for the server's TLS certificate.
    pub root_certificate: Option<PathBuf>,
}

/// Why joining or using a lattice failed.
#[derive(Debug, thiserror::Error)]
pub enum LatticeError {
    /// The lattice's name cannot be part of a subject or bucket name.
    #[error("invalid lattice name `{0}`: use letters, digits, `-` and `_`")]
    InvalidName(String),
    /// The server could not be reached, or refused the connection.
    #[error("cannot connect to the NATS server at {url}: {cause}")]
    Connect {
        /// The server's address.
        url: String,
        /// Why.
        cause: String,
    },
    /// The server has no JetStream (start it with `-js`), or refused the lattice's buckets.
    #[error(
        "the NATS server at {url} cannot keep the lattice's buckets (is JetStream on, `nats-server -js`?): {cause}"
    )]
    JetStream {
        /// The server's address.
        url: String,
        /// Why.
        cause: String,
    },
    /// Another step on the lattice failed.
    #[error("{0}")]
    Other(String),
}

/// `text` as one token of a subject: `.`, `*`, `>` and white space (which would split it or
/// make it a wildcard) become `-`.
pub fn subject_token(text: &str) -> String {
    text.chars().map(|c| if c == '.' || c == '*' || c == '>' || c.is_whitespace() { '-' } else { c }).collect()
}

/// Whether `id` is a valid host id: letters, digits, `-` and `_`, at most 64.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A connection to a lattice, with the runtime its I/O runs on. Cheap to clone.
#[derive(Clone)]
pub struct Lattice(Arc<Inner>);

struct Inner {
    /// Taken only when the last clone goes (see `Drop`).
    runtime: Option<tokio::runtime::Runtime>,
    client: async_nats::Client,
    hosts: kv::Store,
    components: object_store::ObjectStore,
    name: String,
    url: String,
    /// When each host and placing side was last heard on its heartbeat subject, from the
    /// first time a link across hosts asked ([`Lattice::last_heard`]).
    heard: std::sync::OnceLock<Arc<Mutex<HashMap<String, Instant>>>>,
    /// How many times the client has (re)connected.
    reconnects: Arc<tokio::sync::watch::Sender<u64>>,
    /// What this side sent and took on links, per far side, for [`quiet`].
    traffic: quiet::Traffic,
}

impl Lattice {
    /// Connects to the lattice `options.name` on the server at `options.url`, creating its
    /// buckets if it is the first to come. Blocks; call it outside an async runtime.
    ///
    /// # Errors
    ///
    /// [`LatticeError`] if the name is invalid, the server cannot be reached or refuses, or it
    /// has no JetStream.
    pub fn connect(options: &LatticeOptions) -> Result<Lattice, LatticeError> {
        let valid =
            !options.name.is_empty() && options.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(LatticeError::InvalidName(options.name.clone()));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("lattice")
            .enable_all()
            .build()
            .map_err(|error| LatticeError::Other(format!("cannot start the lattice's runtime: {error}")))?;
        let url = options.url.clone();
        let connect_error = |cause: String| LatticeError::Connect { url: url.clone(), cause };
        // Bumped on every reconnection: each link then says how far it has numbered, so that
        // what was lost at the end of a run of messages is a gap too (see `wire`).
        let reconnects = Arc::new(tokio::sync::watch::Sender::new(0u64));
        let bump = reconnects.clone();
        let (client, hosts, components) = runtime.block_on(async {
            let mut connect = async_nats::ConnectOptions::new()
                .name("wasm-workers")
                .connection_timeout(Duration::from_secs(5))
                // Requests wait as long as this crate says (the client's own default is 10 s,
                // which cut a cluster's leader election short).
                .request_timeout(Some(REQUEST_TIMEOUT))
                // A server that restarts is waited for, however long it takes, and found again
                // soon after it is back.
                .max_reconnects(None)
                .reconnect_delay_callback(|attempts| Duration::from_millis((attempts as u64 * 25).min(500)))
                .event_callback(move |event| {
                    let bump = bump.clone();
                    async move {
                        match event {
                            async_nats::Event::Connected => {
                                tracing::info!("connected to the NATS server");
                                bump.send_modify(|count| *count += 1);
                            }
                            async_nats::Event::Disconnected => tracing::warn!("disconnected from the NATS server"),
                            other => tracing::debug!(%other, "NATS"),
                        }
                    }
                });
            if let Some(path) = &options.credentials {
                connect = connect
                    .credentials_file(path)
                    .await
                    .map_err(|error| connect_error(format!("credentials {}: {error}", path.display())))?;
            }
            if let Some(token) = &options.token {
                connect = connect.token(token.clone());
            }
            if options.tls {
                connect = connect.require_tls(true);
            }
            if let Some(path) = &options.root_certificate {
                connect = connect.add_root_certificates(path.clone());
            }
            // Several servers (a cluster) separated by commas: the client picks one, and moves
            // to another if it goes.
            let servers: Vec<&str> = options.url.split(',').map(str::trim).filter(|url| !url.is_empty()).collect();
            let client = tokio::time::timeout(Duration::from_secs(5), connect.connect(servers))
                .await
                .map_err(|_| connect_error("no answer within 5 s".to_string()))?
                .map_err(|error| connect_error(error.to_string()))?;
            // A cluster that is forming, or electing leaders after losing a server, answers
            // JetStream requests late for a few seconds: asked again, up to about 20 s.
            let mut attempt = 0u64;
            let (hosts, components) = loop {
                match buckets(&client, &options.name).await {
                    Ok(buckets) => break buckets,
                    Err(cause) if attempt >= 6 || !client.server_info().jetstream => {
                        return Err(LatticeError::JetStream { url: url.clone(), cause });
                    }
                    Err(cause) => {
                        attempt += 1;
                        tracing::debug!(%cause, attempt, "the lattice's buckets are not ready yet");
                        tokio::time::sleep(Duration::from_millis(250 * attempt)).await;
                    }
                }
            };
            Ok::<_, LatticeError>((client, hosts, components))
        })?;
        Ok(Lattice(Arc::new(Inner {
            runtime: Some(runtime),
            client,
            hosts,
            components,
            name: options.name.clone(),
            url,
            heard: std::sync::OnceLock::new(),
            reconnects,
            traffic: quiet::Traffic::default(),
        })))
    }

    /// The lattice's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The NATS server's address it was reached at.
    pub fn url(&self) -> &str {
        &self.0.url
    }

    /// The live hosts of the lattice, by id.
    ///
    /// # Errors
    ///
    /// If the hosts' bucket cannot be read.
    pub fn hosts(&self) -> Result<Vec<HostInfo>, LatticeError> {
        self.block_on(hosts::live(&self.0.hosts)).map_err(LatticeError::Other)
    }

    /// Places the children of workers of `host` that ask for a placement on this lattice
    /// (see [`WorkerOptions::spawn_placement`](crate::WorkerOptions)). A host joins one
    /// lattice at most; joining again keeps the first.
    ///
    /// # Errors
    ///
    /// If it cannot listen to the hosts' heartbeats.
    pub fn place_from(&self, host: &crate::host::Host) -> Result<(), LatticeError> {
        let placer = Arc::new(place::NatsPlacer::new(self.clone(), host.services()).map_err(LatticeError::Other)?);
        placer.serve_origin().map_err(LatticeError::Other)?;
        let names = shared::NatsNames::start(self, placer.clone(), host.services()).map_err(LatticeError::Other)?;
        self.answer_quiet(placer.id(), host.services()).map_err(LatticeError::Other)?;
        let _ = host.services().placer.set(placer);
        let _ = host.services().shared_names.set(names);
        let _ = host.services().lattice_quiet.set(Arc::new(QuietLattice(self.clone())));
        Ok(())
    }

    /// When host or placing side `id` was last heard on its heartbeat subject, if it has been
    /// since this side first asked about anyone (it listens from then on).
    fn last_heard(&self, id: &str) -> Option<Instant> {
        let heard = self.0.heard.get_or_init(|| {
            let heard = Arc::new(Mutex::new(HashMap::new()));
            let (client, subject, record) =
                (self.0.client.clone(), format!("{}.heartbeat.*", self.prefix()), Arc::downgrade(&heard));
            self.spawn(async move {
                let Ok(mut heartbeats) = client.subscribe(subject).await else { return };
                while let Some(heartbeat) = heartbeats.next().await {
                    let Some(record) = record.upgrade() else { return };
                    if let Some(id) = heartbeat.subject.rsplit('.').next() {
                        let mut record = record.lock().unwrap_or_else(|p| p.into_inner());
                        let now = Instant::now();
                        record.insert(id.to_string(), now);
                        // Sides silent for a minute are forgotten: made-up ids cannot grow it.
                        if record.len() > 1024 {
                            record.retain(|_, heard| now.saturating_duration_since(*heard) < Duration::from_secs(60));
                        }
                    }
                }
            });
            heard
        });
        heard.lock().unwrap_or_else(|p| p.into_inner()).get(id).copied()
    }

    /// Changes each time the client reconnects to the server.
    fn reconnected(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.reconnects.subscribe()
    }

    fn prefix(&self) -> String {
        format!("wasm-workers.{}", self.0.name)
    }

    /// Runs `future` to its end on this thread, with the lattice's runtime as its context (its
    /// I/O and timers are driven by the runtime's threads). Callable from inside another
    /// runtime too (a host program's, posting from async code): the caller's thread is then
    /// blocked as by any blocking call.
    fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        if tokio::runtime::Handle::try_current().is_ok() {
            let _context = self.0.runtime().enter();
            futures::executor::block_on(future)
        } else {
            self.0.runtime().block_on(future)
        }
    }

    fn spawn<F>(&self, future: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.0.runtime().spawn(future);
    }
}

/// Runs `attempt` until it succeeds, up to six times over about five seconds: a cluster that
/// lost a server answers JetStream requests late (or not at all) until it has elected new
/// leaders for the buckets. The last error is returned.
async fn patiently<T, F, Fut>(mut attempt: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let mut tries = 0u64;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) if tries >= 5 => return Err(error),
            Err(error) => {
                tries += 1;
                tracing::debug!(%error, tries, "the lattice's buckets are not ready; asking again");
                tokio::time::sleep(Duration::from_millis(100 * tries * tries / 2 + 100)).await;
            }
        }
    }
}

/// How many copies the lattice's buckets keep: one on a lone server; on a cluster, one on
/// each of up to three servers, so that the lattice outlives the loss of one.
fn replicas(client: &async_nats::Client) -> usize {
    let info = client.server_info();
    match info.cluster {
        // The servers' client addresses, this one's among them.
        Some(_) => info.connect_urls.len().clamp(1, 3),
        None => 1,
    }
}

/// The lattice's bucket of shared-worker names, made if it is not there yet (as a stream
/// directly, as [`buckets`] makes the hosts').
async fn shared_bucket(client: &async_nats::Client, lattice: &str) -> Result<kv::Store, String> {
    let js = jetstream::new(client.clone());
    let name = format!("wasm-workers-{lattice}-shared");
    patiently(|| kv_bucket(&js, &name, None, replicas(client))).await
}

/// The key-value bucket `name` (entries forgotten `max_age` after their last write, if
/// given), made as a stream directly if it is not there yet: the client's own bucket-making
/// asks the server for account details that servers before 2.10 do not send.
async fn kv_bucket(
    js: &jetstream::Context,
    name: &str,
    max_age: Option<Duration>,
    num_replicas: usize,
) -> Result<kv::Store, String> {
    js.get_or_create_stream(stream::Config {
        name: format!("KV_{name}"),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        max_age: max_age.unwrap_or_default(),
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        num_replicas,
        ..Default::default()
    })
    .await
    .map_err(|error| format!("bucket {name}: {error}"))?;
    js.get_key_value(name).await.map_err(|error| format!("bucket {name}: {error}"))
}

/// The lattice as a host's quiescence asks it (see [`quiet`]).
struct QuietLattice(Lattice);

impl crate::worker::LatticeQuiet for QuietLattice {
    fn quiet(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>> {
        self.0.quiet()
    }
}

impl Inner {
    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("the runtime lives as long as the lattice")
    }
}

impl Drop for Inner {
    /// The last clone may go inside one of the runtime's own tasks (a link that ends): the
    /// runtime is then shut down without waiting for its threads, which a runtime cannot do
    /// from within itself.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The lattice's buckets, made if they are not there yet. Made as streams directly: the
/// client's own bucket-making asks the server for account details that servers before 2.10
/// do not send.
async fn buckets(client: &async_nats::Client, lattice: &str) -> Result<(kv::Store, object_store::ObjectStore), String> {
    let js = jetstream::new(client.clone());
    let num_replicas = replicas(client);
    let hosts = kv_bucket(&js, &format!("wasm-workers-{lattice}-hosts"), Some(HOST_TTL), num_replicas).await?;
    let components = format!("wasm-workers-{lattice}-components");
    // Two sides that come at once may both find it missing: the one whose making fails finds
    // the other's (a cluster still settling may take a few tries).
    let mut attempt = 0;
    let components = loop {
        if let Ok(store) = js.get_object_store(&components).await {
            break store;
        }
        let config = object_store::Config { bucket: components.clone(), num_replicas, ..Default::default() };
        match js.create_object_store(config).await {
            Ok(store) => break store,
            Err(error) if attempt >= 10 => return Err(format!("bucket {components}: {error}")),
            Err(_) => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
            }
        }
    };
    Ok((hosts, components))
}
