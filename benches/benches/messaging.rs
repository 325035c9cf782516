//! What every message costs: spawn to first message (one worker; 100 and 1,000 at once), a
//! round trip (host to worker, worker to worker, and between two workers over a
//! `MessageChannel`, pinned to one CPU and not), and one-way throughput of 1,000,000 small
//! messages; each beside the same on native threads and std channels.

use std::sync::mpsc;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wasm_workers::{channel, Codec, Host, HostConfig, Message, Pooling, WorkerOptions};
use wasm_workers_benches::{answer, first_answer, load, native_echo, on_thread};

fn spawn(c: &mut Criterion) {
    // The library's default (the process's shared pool, see `HostConfig::pooling`); and
    // without a pool.
    let host = Host::new().expect("the engine starts");
    let bounce = load(&host, "bounce");
    let mut group = c.benchmark_group("spawn");
    group.bench_function("wasm/1", |b| {
        b.iter(|| {
            first_answer(&host, &bounce, Message::new(Codec::Raw, vec![1]));
        })
    });
    {
        let host = Host::with_config(HostConfig { pooling: Pooling::Off, ..HostConfig::default() })
            .expect("the engine starts");
        let bounce = load(&host, "bounce");
        group.bench_function("wasm-unpooled/1", |b| {
            b.iter(|| {
                first_answer(&host, &bounce, Message::new(Codec::Raw, vec![1]));
            })
        });
    }
    group.bench_function("native/1", |b| {
        b.iter(|| {
            let (to_thread, from_thread) = native_echo::<u8>();
            to_thread.send(1).unwrap();
            from_thread.recv().unwrap();
        })
    });
    group.sample_size(10);
    for count in [100usize, 1000] {
        group.bench_with_input(BenchmarkId::new("wasm", count), &count, |b, &count| {
            b.iter(|| {
                let mut workers: Vec<_> =
                    (0..count).map(|_| host.spawn(&bounce, WorkerOptions::default()).unwrap()).collect();
                for worker in &workers {
                    worker.post_message(Message::new(Codec::Raw, vec![1])).unwrap();
                }
                for worker in &mut workers {
                    answer(worker);
                }
            })
        });
        group.bench_with_input(BenchmarkId::new("native", count), &count, |b, &count| {
            b.iter(|| {
                let (to_main, from_threads) = mpsc::channel::<u8>();
                let senders: Vec<_> = (0..count)
                    .map(|_| {
                        let (tx, rx) = mpsc::channel::<u8>();
                        let to_main = to_main.clone();
                        std::thread::spawn(move || {
                            for byte in rx {
                                let _ = to_main.send(byte);
                            }
                        });
                        tx
                    })
                    .collect();
                for tx in &senders {
                    tx.send(1).unwrap();
                }
                for _ in 0..count {
                    from_threads.recv().unwrap();
                }
            })
        });
    }
    group.finish();
}

fn round_trip(c: &mut Criterion) {
    let host = Host::new().expect("the engine starts");
    let bounce = load(&host, "bounce");
    let pingpong = load(&host, "pingpong");
    let mut group = c.benchmark_group("round-trip");
    let mut worker = host.spawn(&bounce, WorkerOptions::default()).unwrap();
    group.bench_function("wasm/host-worker", |b| {
        b.iter(|| {
            worker.post_message(Message::new(Codec::Raw, vec![1, 2, 3, 4, 5, 6, 7, 8])).unwrap();
            answer(&mut worker);
        })
    });
    // Worker to worker: the pingpong worker does `iters` round trips with its child and
    // answers once; the host's own round trip is divided out by doing many.
    let mut player = host.spawn(&pingpong, WorkerOptions::default()).unwrap();
    player.post_message(Message::json(&1u64).unwrap()).unwrap();
    answer(&mut player);
    group.bench_function("wasm/worker-worker", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            player.post_message(Message::json(&iters).unwrap()).unwrap();
            answer(&mut player);
            start.elapsed()
        })
    });
    let (to_thread, from_thread) = native_echo::<[u8; 8]>();
    group.bench_function("native", |b| {
        b.iter(|| {
            to_thread.send([1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
            from_thread.recv().unwrap();
        })
    });
    // The same, with both threads spinning as long as the host's workers do before they
    // sleep: the fair baseline for the unpinned figures.
    let spin = wasm_workers::DEFAULT_SPIN;
    let (to_thread, from_main) = mpsc::channel::<[u8; 8]>();
    let (to_main, from_thread) = mpsc::channel::<[u8; 8]>();
    std::thread::spawn(move || {
        while let Some(message) = recv_spinning(&from_main, spin) {
            let _ = to_main.send(message);
        }
    });
    group.bench_function("native-spinning", |b| {
        b.iter(|| {
            to_thread.send([1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
            recv_spinning(&from_thread, spin).unwrap();
        })
    });
    group.finish();
}

/// Round trips between two workers over a `MessageChannel` (one end each), against two native
/// threads over a pair of std channels; both pinned to one CPU (every hand-over is a context
/// switch) and not. The host only starts `iters` round trips and hears when they are done.
fn port_round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("port-round-trip");
    for pinned in [false, true] {
        let label = if pinned { "pinned" } else { "unpinned" };
        let (_host, mut ping, _echo) = on_thread(pinned, || {
            let host = Host::new().expect("the engine starts");
            let component = load(&host, "port-pingpong");
            let ping = host.spawn(&component, WorkerOptions::named("ping")).unwrap();
            let echo = host.spawn(&component, WorkerOptions::named("echo")).unwrap();
            let (a, b) = channel();
            ping.post_message(Message::json(&"ping").unwrap().with_port(a)).unwrap();
            echo.post_message(Message::json(&"echo").unwrap().with_port(b)).unwrap();
            (host, ping, echo)
        });
        ping.post_message(Message::json(&1u64).unwrap()).unwrap();
        answer(&mut ping);
        group.bench_function(format!("wasm/{label}"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                ping.post_message(Message::json(&iters).unwrap()).unwrap();
                answer(&mut ping);
                start.elapsed()
            })
        });
        let (start_tx, done_rx) = on_thread(pinned, || {
            let (start_tx, start_rx) = mpsc::channel::<u64>();
            let (done_tx, done_rx) = mpsc::channel::<u64>();
            std::thread::spawn(move || {
                let (to_echo, from_ping) = mpsc::channel::<[u8; 8]>();
                let (to_ping, from_echo) = mpsc::channel::<[u8; 8]>();
                std::thread::spawn(move || {
                    for message in from_ping {
                        let _ = to_ping.send(message);
                    }
                });
                for rounds in start_rx {
                    for _ in 0..rounds {
                        to_echo.send([1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
                        from_echo.recv().unwrap();
                    }
                    let _ = done_tx.send(rounds);
                }
            });
            (start_tx, done_rx)
        });
        group.bench_function(format!("native/{label}"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                start_tx.send(iters).unwrap();
                done_rx.recv().unwrap();
                start.elapsed()
            })
        });
    }
    group.finish();
}

/// One-way throughput of 1,000,000 small messages from the host program to a worker through
/// the public API (`post_message`, waiting when the queue is full), against a native thread
/// on a std channel; unpinned, then with the host program's thread and the worker (or the
/// native thread) pinned to one CPU.
fn throughput(c: &mut Criterion) {
    const MESSAGES: u64 = 1_000_000;
    let mut group = c.benchmark_group("throughput");
    group.sample_size(10);
    group.throughput(Throughput::Elements(MESSAGES));
    for pinned in [false, true] {
        let suffix = if pinned { "-pinned" } else { "" };
        // Pinned before the host is made: it then sees one CPU (its workers do not spin), and
        // the threads started from here inherit the CPU.
        let cpus = pinned.then(wasm_workers_benches::pin_to_one_cpu);
        let host = Host::new().expect("the engine starts");
        let counter = load(&host, "counter");
        let mut worker = host.spawn(&counter, WorkerOptions::default()).unwrap();
        wasm_workers_benches::take_refused();
        let mut posts = 0u64;
        group.bench_function(format!("wasm/1M-one-way{suffix}"), |b| {
            b.iter(|| {
                wasm_workers_benches::count_through_worker(&mut worker, MESSAGES);
                posts += MESSAGES + 1;
            })
        });
        let refused = wasm_workers_benches::take_refused();
        eprintln!("throughput/wasm{suffix}: {refused} of {posts} posts were refused as queue full and retried");
        worker.terminate();
        // The same work as the `counter` guest, on a native thread.
        let native = wasm_workers_benches::native_counter();
        group.bench_function(format!("native/1M-one-way{suffix}"), |b| b.iter(|| native.count(MESSAGES)));
        if let Some(cpus) = cpus {
            wasm_workers_benches::restore_cpus(cpus);
        }
    }
    group.finish();
}

/// Receives from `rx`, checking for up to `spin` before blocking; `None` once disconnected.
fn recv_spinning<T>(rx: &mpsc::Receiver<T>, spin: std::time::Duration) -> Option<T> {
    let start = Instant::now();
    loop {
        match rx.try_recv() {
            Ok(value) => return Some(value),
            Err(mpsc::TryRecvError::Disconnected) => return None,
            Err(mpsc::TryRecvError::Empty) if start.elapsed() < spin => std::hint::spin_loop(),
            Err(mpsc::TryRecvError::Empty) => return rx.recv().ok(),
        }
    }
}

criterion_group!(benches, spawn, round_trip, port_round_trip, throughput);
criterion_main!(benches);
