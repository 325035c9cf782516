//! Workers across hosts on NATS, beside the raw `async-nats` floor on the same loopback server:
//! the round trip between a worker and its child on another host against a raw request-reply,
//! and the delegation fan-out with its cores on two other hosts against the same fan-out in one
//! host. The hosts are `Host`s of this process, each with its own connection (a lattice host
//! in another process takes the same way through the server). Needs `nats-server` (Debian's
//! package; `scripts/test.sh` installs it). Run with `RUST_BACKTRACE=1` as set here.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use futures::StreamExt;
use serde_json::json;
use wasm_workers::lattice::{serve, Lattice, LatticeOptions, ServeOptions};
use wasm_workers::{Host, Message, Placement, WorkerOptions};
use wasm_workers_benches::{answer, load, NatsServer};

const N: u64 = 5_000_000;
const PRIMES_BELOW_N: u64 = 348_513;
const ONE_WAY: u64 = 100_000;
/// The raw floor's window: messages on their way before the subscriber answers.
const RAW_WINDOW: u64 = 4096;

/// A serving host on its own thread, until `stop` is sent.
fn serving_host(url: &str, id: &str) -> tokio::sync::oneshot::Sender<()> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = LatticeOptions { url: url.to_string(), name: "bench".into(), ..Default::default() };
    let id = id.to_string();
    std::thread::spawn(move || {
        let host = Host::new().expect("the engine starts");
        let lattice = Lattice::connect(&options).expect("the lattice is reachable");
        let dir = std::env::temp_dir().join(format!("wasm-workers-bench-{id}-{}", std::process::id()));
        let serve_options =
            ServeOptions { id, labels: Default::default(), max_workers: 64, component_dir: dir, allowed: None };
        serve(&host, &lattice, serve_options, async {
            let _ = stopped.await;
        })
        .expect("the host serves");
    });
    stop
}

fn lattice(c: &mut Criterion) {
    let server = NatsServer::start();
    let stops = [serving_host(&server.url, "b"), serving_host(&server.url, "c")];
    let options = LatticeOptions { url: server.url.clone(), name: "bench".into(), ..Default::default() };
    let lattice = Lattice::connect(&options).expect("the lattice is reachable");
    let start = Instant::now();
    while lattice.hosts().map_or(0, |hosts| hosts.len()) < 2 {
        assert!(start.elapsed() < Duration::from_secs(30), "the serving hosts did not join");
        std::thread::sleep(Duration::from_millis(20));
    }
    let host = Host::new().expect("the engine starts");
    lattice.place_from(&host).expect("the placer starts");

    let mut group = c.benchmark_group("lattice-round-trip");
    // The pingpong worker here, its bounce child on another host: `iters` round trips.
    let pingpong = load(&host, "pingpong");
    let _bounce = load(&host, "bounce");
    let placed = WorkerOptions { spawn_placement: Some(Placement::Any), ..WorkerOptions::named("pingpong") };
    let mut player = host.spawn(&pingpong, placed).unwrap();
    player.post_message(Message::json(&1u64).unwrap()).unwrap();
    answer(&mut player);
    group.bench_function("wasm/worker-remote-worker", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            player.post_message(Message::json(&iters).unwrap()).unwrap();
            answer(&mut player);
            start.elapsed()
        })
    });
    player.terminate();
    // The floor: a request and its reply between two connections on the same server.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (requester, responder) = runtime.block_on(async {
        let requester = async_nats::connect(&server.url).await.unwrap();
        let responder = async_nats::connect(&server.url).await.unwrap();
        (requester, responder)
    });
    runtime.block_on(async {
        let mut requests = responder.subscribe("bench.echo").await.unwrap();
        responder.flush().await.unwrap();
        let responder = responder.clone();
        tokio::spawn(async move {
            while let Some(request) = requests.next().await {
                if let Some(reply) = request.reply {
                    let _ = responder.publish(reply, request.payload).await;
                }
            }
        });
    });
    // The responder's interest reaches the server asynchronously: wait until it answers.
    runtime.block_on(async {
        let start = Instant::now();
        while requester.request("bench.echo", "1".into()).await.is_err() {
            assert!(start.elapsed() < Duration::from_secs(30), "the responder never answered");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    group.bench_function("raw/request-reply", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    requester.request("bench.echo", "1".into()).await.unwrap();
                }
                start.elapsed()
            })
        })
    });
    group.finish();

    // One way: 100,000 small messages from here to a counter on another host, each posted as
    // soon as the link has room, and the count back; beside the same number published raw
    // from one connection to a subscriber on another, in windows of 4,096 each answered.
    let mut group = c.benchmark_group("lattice-throughput");
    group.sample_size(10);
    group.throughput(criterion::Throughput::Elements(ONE_WAY));
    let counter = load(&host, "counter");
    let placed = WorkerOptions { placement: Some(Placement::Host("b".into())), ..WorkerOptions::named("counter") };
    let mut worker = host.spawn(&counter, placed).unwrap();
    let waiting = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let post = |worker: &wasm_workers::WorkerHandle, message: Message| {
        let mut message = message;
        loop {
            match worker.try_post_message(message) {
                Ok(()) => return,
                Err(refused) if refused.reason == wasm_workers::DropReason::QueueFull => {
                    message = refused.message;
                    waiting.block_on(worker.room().wait(8));
                }
                Err(refused) => panic!("the counter refused a message: {refused}"),
            }
        }
    };
    group.bench_function("wasm/100k-one-way-to-another-host", |b| {
        b.iter(|| {
            for i in 0..ONE_WAY {
                post(&worker, Message::new(wasm_workers::Codec::Raw, i.to_le_bytes().to_vec()));
            }
            post(&worker, Message::new(wasm_workers::Codec::Raw, Vec::new()));
            let count: u64 = answer(&mut worker).decode_json().unwrap();
            assert_eq!(count, ONE_WAY, "every message arrived, in order");
        })
    });
    worker.terminate();
    let (publisher, subscriber) = runtime.block_on(async {
        let publisher = async_nats::connect(&server.url).await.unwrap();
        let subscriber =
            async_nats::ConnectOptions::new().subscription_capacity(1 << 20).connect(&server.url).await.unwrap();
        (publisher, subscriber)
    });
    runtime.block_on(async {
        let mut messages = subscriber.subscribe("bench.one-way").await.unwrap();
        subscriber.flush().await.unwrap();
        let answering = subscriber.clone();
        tokio::spawn(async move {
            let mut count = 0u64;
            while let Some(message) = messages.next().await {
                // An empty message ends a batch: the count so far is answered. A `0` ends
                // the run, and the count starts again.
                if message.payload.is_empty() || message.payload.as_ref() == b"0" {
                    let _ = answering.publish("bench.one-way.count", count.to_string().into()).await;
                    if !message.payload.is_empty() {
                        count = 0;
                    }
                } else {
                    count += 1;
                }
            }
        });
    });
    let mut counts = runtime.block_on(async { publisher.subscribe("bench.one-way.count").await.unwrap() });
    group.bench_function("raw/100k-publish-subscribe", |b| {
        b.iter(|| {
            runtime.block_on(async {
                // Core NATS has no backpressure: a subscriber that falls behind loses messages
                // (the server drops them for a slow consumer). So the floor goes in windows of
                // 4,096, as the lattice's credits do, each answered before the next.
                let mut sent = 0u64;
                while sent < ONE_WAY {
                    let batch = RAW_WINDOW.min(ONE_WAY - sent);
                    for i in sent..sent + batch {
                        publisher.publish("bench.one-way", i.to_le_bytes().to_vec().into()).await.unwrap();
                    }
                    sent += batch;
                    let end: &[u8] = if sent == ONE_WAY { b"0" } else { b"" };
                    publisher.publish("bench.one-way", end.to_vec().into()).await.unwrap();
                    let count = counts.next().await.unwrap();
                    assert_eq!(count.payload.as_ref(), sent.to_string().as_bytes(), "every message arrived");
                }
            })
        })
    });
    group.finish();

    let mut group = c.benchmark_group("lattice-fanout");
    group.sample_size(10);
    let delegation = load(&host, "delegation");
    let _core = load(&host, "core");
    for (label, placement) in [("wasm/2-other-hosts", Some(Placement::Any)), ("wasm/this-host", None)] {
        group.bench_function(label, |b| {
            b.iter(|| {
                let options =
                    WorkerOptions { spawn_placement: placement.clone(), ..WorkerOptions::named("delegation") };
                let mut worker = host.spawn(&delegation, options).unwrap();
                worker.post_message(Message::json(&json!({ "n": N, "k": 4 })).unwrap()).unwrap();
                let total: u64 = answer(&mut worker).decode_json().unwrap();
                assert_eq!(total, PRIMES_BELOW_N);
            })
        });
    }
    group.finish();
    for stop in stops {
        let _ = stop.send(());
    }
}

criterion_group!(benches, lattice);
criterion_main!(benches);
