//! Ending many workers at once does not raise the host's resident memory past what they
//! held (a test binary of its own: it measures the whole process).

mod support;

use support::{expect_closed, guest, host_with, next_json, post, rss};
use wasm_workers::{CloseReason, HostConfig, Pooling, WorkerOptions};

#[test]
fn ending_many_idle_pooled_workers_at_once_does_not_raise_resident_memory() {
    const WORKERS: usize = 600;
    // The CLI's engine: pooled, with slots kept resident where the kernel can say which
    // pages a guest touched.
    let host = host_with(HostConfig { pooling: Pooling::Own, max_workers: Some(WORKERS + 8), ..Default::default() });
    let echo = host.load(guest("echo")).unwrap();
    let mut workers: Vec<_> =
        (0..WORKERS).map(|i| host.spawn(&echo, WorkerOptions::named(format!("idle-{i}"))).unwrap()).collect();
    for worker in &mut workers {
        post(worker, serde_json::json!("here"));
        assert_eq!(next_json(worker), "here");
    }
    let holding = rss();
    for worker in &workers {
        worker.terminate();
    }
    for worker in &mut workers {
        expect_closed(worker, CloseReason::Terminated);
    }
    let after = rss();
    // Before, each returned slot's first 1.125 MiB was reset whole: 600 workers took the
    // process up by some 675 MiB as they ended.
    assert!(
        after < holding + (64 << 20),
        "resident memory went from {} MiB with {WORKERS} idle workers to {} MiB after they ended",
        holding >> 20,
        after >> 20
    );
}
