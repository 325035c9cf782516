//! Resident memory per idle worker: spawns 1,000 and then 10,000 idle workers (each has
//! answered one message, then waits), and prints the growth of this process's resident memory
//! divided by the number of workers. Criterion measures time, not memory, hence a binary:
//!     cargo run --release -p wasm-workers-benches --bin memory [-- --no-pooling] [--js]
//! With `--js`, the workers are JavaScript (`guests/js/bench/echo.js`, built with
//! componentize-js), 100 and then 1,000 of them.
//! 10,000 workers need more memory mappings than Linux allows by default
//! (`vm.max_map_count` = 65530; each worker takes about nine): raise it first, e.g.
//! `sysctl -w vm.max_map_count=262144`, or the host refuses workers past its limit.

use wasm_workers::{Codec, Host, HostConfig, Message, Pooling, WorkerOptions};
use wasm_workers_benches::{answer, js_bundle, load, resident_bytes};

fn main() {
    // The library's default host (the process's shared pool); `--no-pooling`: instances
    // mapped one by one.
    let pooling = if std::env::args().any(|arg| arg == "--no-pooling") { Pooling::Off } else { Pooling::Shared };
    let host = Host::with_config(HostConfig { pooling, ..HostConfig::default() }).expect("the engine starts");
    println!("pooling: {pooling:?}");
    let js = std::env::args().any(|arg| arg == "--js");
    let bounce = if js {
        host.load(js_bundle("bench").join("echo.wasm")).expect("the bundle loads")
    } else {
        load(&host, "bounce")
    };
    let message = || if js { Message::new(Codec::Json, b"1".to_vec()) } else { Message::new(Codec::Raw, vec![1]) };
    // Warm up: the first spawn maps the engine's code and the allocator's arenas.
    let mut first = host.spawn(&bounce, WorkerOptions::default()).unwrap();
    first.post_message(message()).unwrap();
    answer(&mut first);
    let counts: &[usize] = if js { &[100, 1_000] } else { &[1_000, 10_000] };
    for &count in counts {
        let before = resident_bytes();
        let maps_before = mappings();
        let mut workers = Vec::with_capacity(count);
        for _ in 0..count {
            match host.spawn(&bounce, WorkerOptions::default()) {
                Ok(worker) => workers.push(worker),
                Err(error) => {
                    println!("{count} idle workers: stopped at {} ({error})", workers.len());
                    break;
                }
            }
        }
        for worker in &workers {
            worker.post_message(message()).unwrap();
        }
        for worker in &mut workers {
            answer(worker);
        }
        let after = resident_bytes();
        let maps = mappings().saturating_sub(maps_before);
        println!(
            "{} idle workers: {maps} memory mappings, {:.1} per worker",
            workers.len(),
            maps as f64 / workers.len().max(1) as f64
        );
        let per_worker = (after.saturating_sub(before)) / workers.len().max(1) as u64;
        println!(
            "{} idle workers: {:.1} MiB resident in all, {:.1} KiB per worker",
            workers.len(),
            after.saturating_sub(before) as f64 / (1 << 20) as f64,
            per_worker as f64 / 1024.0
        );
        for worker in &workers {
            worker.terminate();
        }
        drop(workers);
        while host.live_workers() > 1 {
            std::thread::yield_now();
        }
    }
}

/// How many memory mappings this process has (the kernel limits them: `vm.max_map_count`).
fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps").map_or(0, |maps| maps.lines().count())
}
