//! Workers in JavaScript (componentize-js), beside the same in a Rust guest and on native
//! threads: spawn to first message back, a round trip, and throughput through an echoing
//! worker. (Resident memory per idle JavaScript worker: the `memory` binary, `--js`.)
//!
//! Run with `cargo bench -p wasm-workers-benches --bench scripts`; with `RUST_BACKTRACE=1`
//! as this environment sets it, which costs nothing here (no trap is taken).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wasm_workers::{Codec, Host, Message};
use wasm_workers_benches::{answer, first_answer, js_bundle, load, native_echo, post_waiting};

/// One small JSON message: what a JavaScript worker reads as a number.
fn one() -> Message {
    Message::new(Codec::Json, b"1".to_vec())
}

fn spawn(c: &mut Criterion) {
    let host = Host::new().expect("the engine starts");
    let js = host.load(js_bundle("bench").join("echo.wasm")).expect("the bundle loads");
    let rust = load(&host, "bounce");
    let mut group = c.benchmark_group("js-spawn");
    group.sample_size(20);
    for (label, component) in [("js/1", &js), ("rust/1", &rust)] {
        group.bench_function(label, |b| b.iter(|| first_answer(&host, component, one())));
    }
    group.bench_function("native/1", |b| {
        b.iter(|| {
            let (to_thread, from_thread) = native_echo::<u8>();
            to_thread.send(1).unwrap();
            from_thread.recv().unwrap();
        })
    });
    group.finish();
}

fn round_trip_and_throughput(c: &mut Criterion) {
    let host = Host::new().expect("the engine starts");
    let js = host.load(js_bundle("bench").join("echo.wasm")).expect("the bundle loads");
    let rust = load(&host, "bounce");
    let mut workers = [("js", first_answer(&host, &js, one())), ("rust", first_answer(&host, &rust, one()))];

    let mut group = c.benchmark_group("js-round-trip");
    for (label, worker) in &mut workers {
        group.bench_function(*label, |b| {
            b.iter(|| {
                worker.post_message(one()).unwrap();
                answer(worker);
            })
        });
    }
    let (to_thread, from_thread) = native_echo::<u8>();
    group.bench_function("native", |b| {
        b.iter(|| {
            to_thread.send(1).unwrap();
            from_thread.recv().unwrap();
        })
    });
    group.finish();

    // 1,000 messages posted and answered, the sender as far ahead as the queue allows.
    const N: u64 = 1_000;
    let mut group = c.benchmark_group("js-throughput");
    group.throughput(Throughput::Elements(N));
    group.sample_size(10);
    for (label, worker) in &mut workers {
        group.bench_function(format!("{label}/1k-echoed"), |b| {
            b.iter(|| {
                let mut answered = 0;
                for _ in 0..N {
                    post_waiting(worker, one());
                    while worker.pending_events() > 0 {
                        answer(worker);
                        answered += 1;
                    }
                }
                while answered < N {
                    answer(worker);
                    answered += 1;
                }
            })
        });
    }
    group.bench_function("native/1k-echoed", |b| {
        b.iter(|| {
            for _ in 0..N {
                to_thread.send(1).unwrap();
            }
            for _ in 0..N {
                from_thread.recv().unwrap();
            }
        })
    });
    group.finish();
}

criterion_group!(benches, spawn, round_trip_and_throughput);
criterion_main!(benches);
