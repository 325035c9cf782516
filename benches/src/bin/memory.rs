//! Resident memory per idle worker: spawns 1,000 and then 10,000 idle workers (each has
//! answered one message, then waits), and prints the growth of this process's resident memory
//! divided by the number of workers, and what each worker past the first 1,000 costs; each
//! twice: just after the answers (each worker still holds
//! its thread), and once they have given their threads back (`HostConfig::release_thread_after`)
//! and the threads have left (`HostConfig::thread_keep_alive`). Criterion measures time, not
//! memory, hence a binary:
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
    // One population that grows: the figure at the larger count, less the one at the smaller,
    // is what each further worker costs, without what the process grows once (the
    // allocator's arenas for as many threads at once, the pool's first slots).
    let counts: &[usize] = if js { &[100, 1_000] } else { &[1_000, 10_000] };
    let threads_before = threads();
    let (before, maps_before) = (resident_bytes(), mappings());
    let mut workers = Vec::new();
    let mut previous: Option<(usize, u64)> = None;
    for &count in counts {
        let fresh = workers.len();
        while workers.len() < count {
            match host.spawn(&bounce, WorkerOptions::default()) {
                Ok(worker) => workers.push(worker),
                Err(error) => {
                    println!("{count} idle workers: stopped at {} ({error})", workers.len());
                    break;
                }
            }
        }
        for worker in &workers[fresh..] {
            worker.post_message(message()).unwrap();
        }
        for worker in &mut workers[fresh..] {
            answer(worker);
        }
        report(workers.len(), "just answered", before, maps_before);
        // Each worker gives its thread back after a while with nothing to do, and the threads
        // leave after theirs; until then the process holds them.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while threads() > threads_before + 2 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let resident = report(workers.len(), "without threads", before, maps_before);
        if let Some((count, earlier)) = previous {
            let more = workers.len() - count;
            println!(
                "each of the {more} workers past {count}: {:.1} KiB",
                resident.saturating_sub(earlier) as f64 / more.max(1) as f64 / 1024.0
            );
        }
        previous = Some((workers.len(), resident));
    }
}

/// Prints the growth of resident memory and mappings since `before` and `maps_before`, per
/// worker of `workers`; returns the resident bytes.
fn report(workers: usize, when: &str, before: u64, maps_before: usize) -> u64 {
    let after = resident_bytes();
    let maps = mappings().saturating_sub(maps_before);
    let per = |total: f64| total / workers.max(1) as f64;
    println!(
        "{workers} idle workers, {when} ({} threads): {:.1} MiB resident in all, {:.1} KiB per worker; \
         {maps} memory mappings, {:.1} per worker",
        threads(),
        after.saturating_sub(before) as f64 / (1 << 20) as f64,
        per(after.saturating_sub(before) as f64) / 1024.0,
        per(maps as f64),
    );
    after
}

/// How many threads this process has.
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |tasks| tasks.count())
}

/// How many memory mappings this process has (the kernel limits them: `vm.max_map_count`).
fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps").map_or(0, |maps| maps.lines().count())
}
