//! Delegation fan-out (10.1.2.5): count the primes below N = 5,000,000 by trial division over K
//! sub-workers, K in {1, 2, 4, 8, 16}, spawning included; beside the same work on K native
//! threads. Then the balanced form: a pool handing out chunks on demand, beside native threads
//! taking chunks from a shared counter.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use serde_json::json;
use wasm_workers::{Host, Message, WorkerOptions};
use wasm_workers_benches::{answer, load, native_balanced, native_fanout};

const N: u64 = 5_000_000;
const PRIMES_BELOW_N: u64 = 348_513;
const CHUNK: u64 = 20_000;

fn fanout(c: &mut Criterion) {
    let host = Host::new().expect("the engine starts");
    let delegation = load(&host, "delegation");
    let _core = load(&host, "core");
    let mut group = c.benchmark_group("fanout");
    group.sample_size(10);
    for k in [1u64, 2, 4, 8, 16] {
        group.bench_with_input(BenchmarkId::new("wasm", k), &k, |b, &k| {
            b.iter(|| {
                let mut worker = host.spawn(&delegation, WorkerOptions::named("delegation")).unwrap();
                worker.post_message(Message::json(&json!({ "n": N, "k": k })).unwrap()).unwrap();
                let total: u64 = answer(&mut worker).decode_json().unwrap();
                assert_eq!(total, PRIMES_BELOW_N);
            })
        });
        group.bench_with_input(BenchmarkId::new("native", k), &k, |b, &k| {
            b.iter(|| assert_eq!(native_fanout(N, k), PRIMES_BELOW_N))
        });
    }
    let balanced = load(&host, "delegation-pool");
    let _task = load(&host, "primes-task");
    let threads = u64::from(host.hardware_concurrency());
    group.bench_function(BenchmarkId::new("wasm-balanced", threads), |b| {
        b.iter(|| {
            let mut worker = host.spawn(&balanced, WorkerOptions::named("delegation-pool")).unwrap();
            worker.post_message(Message::json(&json!({ "n": N, "chunk": CHUNK })).unwrap()).unwrap();
            let total: u64 = answer(&mut worker).decode_json().unwrap();
            assert_eq!(total, PRIMES_BELOW_N);
        })
    });
    group.bench_function(BenchmarkId::new("native-balanced", threads), |b| {
        b.iter(|| assert_eq!(native_balanced(N, threads, CHUNK), PRIMES_BELOW_N))
    });
    group.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
