//! Typed tasks, pools, par_map, streams, join and scope, end to end.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::*;
use wasm_workers::task::{self, Pool, PoolConfig, Schedule, Scope, Stream, TaskError};
use wasm_workers::{CloseReason, Host};

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(async { tokio::time::timeout(EVENT_TIMEOUT, future).await.expect("the test finished in time") })
}

fn lab_pool(host: &Host, config: PoolConfig) -> Pool {
    let component = host.load(guest("task-lab")).unwrap();
    Pool::new(host, &component, config).unwrap()
}

#[test]
fn par_map_over_ten_thousand_items_keeps_their_order() {
    let pool = lab_pool(host(), PoolConfig { size: Some(2), ..PoolConfig::default() });
    let inputs: Vec<Value> = (0..10_000).map(|i| json!({ "value": i, "spin": (i % 7) * 1000 })).collect();
    let results: Vec<Result<u64, TaskError>> = block_on(pool.par_map(inputs));
    assert_eq!(results.len(), 10_000);
    for (i, result) in results.into_iter().enumerate() {
        assert_eq!(result, Ok(i as u64));
    }
}

#[test]
fn par_map_hands_the_next_input_to_the_worker_that_answered() {
    // A slow input first, then quick ones, over two workers. Each worker gets two inputs to
    // start with; after that every answer brings the next input to the worker that gave it.
    // So the worker busy with the slow input keeps only its first two, and the other takes
    // all the rest (a round robin would have queued half of them behind the slow one).
    let host = new_host();
    let pool = lab_pool(&host, PoolConfig { size: Some(2), name: "lab".into(), ..PoolConfig::default() });
    let mut inputs = vec![json!({ "value": 0, "spin": 300_000_000u64 })];
    inputs.extend((1..41).map(|i| json!({ "value": i })));
    let results: Vec<Result<u64, TaskError>> = block_on(pool.par_map(inputs));
    assert_eq!(results, (0..41).map(Ok).collect::<Vec<_>>());
    let received = |name: &str| host.stats().into_iter().find(|r| r.name == name).map(|r| r.messages_in).unwrap();
    // Two, unless the slow input ends before the 39 quick ones do: a margin of ~100×.
    assert!(received("lab-0") < 5, "the slow worker was given {} inputs", received("lab-0"));
    assert_eq!(received("lab-0") + received("lab-1"), 41);
}

#[test]
fn a_failing_item_fails_only_its_own_result_and_the_pool_recovers() {
    let pool = lab_pool(host(), PoolConfig { size: Some(2), ..PoolConfig::default() });
    let inputs: Vec<Value> = (0..100).map(|i| json!({ "value": i, "fail": i == 13, "panic": i == 42 })).collect();
    let results: Vec<Result<u64, TaskError>> = block_on(pool.par_map(inputs));
    for (i, result) in results.iter().enumerate() {
        match i {
            13 => assert_eq!(result, &Err(TaskError::Failed("failed on 13".into()))),
            42 => match result {
                Err(TaskError::WorkerFailed(message)) => assert!(message.contains("panicked on 42"), "{message}"),
                other => panic!("item 42: {other:?}"),
            },
            _ => assert_eq!(result, &Ok(i as u64), "item {i}"),
        }
    }
    // The dead worker was replaced.
    let after: Result<u64, TaskError> = block_on(pool.run(&json!({ "value": 7 })));
    assert_eq!(after, Ok(7));
}

#[test]
fn a_panicking_task_resolves_its_caller_with_the_panic_message() {
    let pool = lab_pool(host(), PoolConfig { size: Some(1), ..PoolConfig::default() });
    let result: Result<Value, TaskError> = block_on(pool.run(&json!({ "value": "boom", "panic": true })));
    match result {
        Err(TaskError::WorkerFailed(message)) => assert!(message.contains("panicked on \"boom\""), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_task_limit_answers_full() {
    let pool = lab_pool(host(), PoolConfig { size: Some(1), max_in_flight: 2, ..PoolConfig::default() });
    // Two tasks that take practically forever occupy the only worker's two places.
    let stuck = json!({ "value": 0, "spin": u64::MAX });
    let first = pool.run::<_, Value>(&stuck);
    let second = pool.run::<_, Value>(&stuck);
    let third: Result<Value, TaskError> = block_on(pool.run(&json!({ "value": 3 })));
    assert_eq!(third, Err(TaskError::Full));
    pool.terminate();
    assert_eq!(block_on(first), Err(TaskError::Terminated));
    assert_eq!(block_on(second), Err(TaskError::Terminated));
}

#[test]
fn idle_workers_are_terminated_and_the_next_task_starts_one() {
    let config = PoolConfig { size: Some(2), idle_timeout: Some(Duration::from_millis(50)), ..PoolConfig::default() };
    let pool = lab_pool(host(), config);
    let mut running = pool.watch_running_workers();
    let answer: Result<u64, TaskError> = block_on(pool.run(&json!({ "value": 1 })));
    assert_eq!(answer, Ok(1));
    assert_eq!(pool.running_workers(), 1);
    block_on(running.wait_for(|&n| n == 0)).unwrap();
    let again: Result<u64, TaskError> = block_on(pool.run(&json!({ "value": 2 })));
    assert_eq!(again, Ok(2));
    assert_eq!(pool.running_workers(), 1, "started again on demand");
}

#[test]
fn least_loaded_scheduling_avoids_a_busy_worker() {
    let config = PoolConfig { size: Some(2), schedule: Schedule::LeastLoaded, ..PoolConfig::default() };
    let pool = lab_pool(host(), config);
    let _stuck = pool.run::<_, Value>(&json!({ "value": 0, "spin": u64::MAX }));
    // Round-robin would send every other task to the stuck worker; least-loaded never does.
    for i in 1..=5 {
        let answer: Result<u64, TaskError> = block_on(pool.run(&json!({ "value": i })));
        assert_eq!(answer, Ok(i));
    }
    pool.terminate();
}

#[test]
fn round_robin_spreads_tasks_evenly() {
    let host = new_host();
    let pool = lab_pool(&host, PoolConfig { size: Some(3), name: "rr".into(), ..PoolConfig::default() });
    let answers: Vec<Result<u64, TaskError>> = block_on(async {
        let runs: Vec<_> = (0..9).map(|i| pool.run(&json!({ "value": i }))).collect();
        let mut answers = Vec::new();
        for run in runs {
            answers.push(run.await);
        }
        answers
    });
    assert!(answers.iter().all(Result::is_ok));
    let per_worker: Vec<u64> = host.stats().iter().map(|w| w.messages_in).collect();
    assert_eq!(per_worker, vec![3, 3, 3]);
}

#[test]
fn a_stream_ended_by_either_side_is_seen_as_ended_by_the_other() {
    let mut worker = spawn("stream-sum");
    // The worker ends this one.
    let mut stream = Stream::open(&worker, "sums").unwrap();
    for n in [1, 2, 3] {
        stream.send(&n).unwrap();
    }
    for expected in [1, 3, 6] {
        assert_eq!(block_on(stream.recv::<i64>()), Ok(Some(expected)));
    }
    stream.send(&"stop").unwrap();
    assert_eq!(block_on(stream.recv::<i64>()), Ok(None), "the worker ended the stream");
    assert!(stream.send(&4).is_err(), "nothing goes into an ended stream");

    // The caller ends this one.
    let mut stream = Stream::open(&worker, "more").unwrap();
    stream.send(&5).unwrap();
    assert_eq!(block_on(stream.recv::<i64>()), Ok(Some(5)));
    stream.end();
    assert_eq!(next_json(&mut worker), json!({ "ended-by": "caller", "sum": 5 }));
}

#[test]
fn tasks_run_on_a_typed_worker_from_the_host() {
    let component = host().load(guest("stream-sum")).unwrap();
    let pool = Pool::new(host(), &component, PoolConfig { size: Some(1), ..PoolConfig::default() }).unwrap();
    let sums: Vec<_> = (0..20).map(|i| pool.run::<_, i64>(&vec![i, i, i])).collect();
    let sums: Vec<i64> = block_on(async {
        let mut out = Vec::new();
        for sum in sums {
            out.push(sum.await.unwrap());
        }
        out
    });
    assert_eq!(sums, (0..20).map(|i| 3 * i).collect::<Vec<_>>());
    // An input of the wrong type is that task's error, not the worker's.
    let wrong: Result<i64, TaskError> = block_on(pool.run(&"not numbers"));
    assert!(matches!(&wrong, Err(TaskError::Failed(why)) if why.contains("cannot decode")), "{wrong:?}");
}

#[test]
fn join_gives_a_spawned_tasks_result() {
    let component = host().load(guest("task-lab")).unwrap();
    let handle = task::spawn::<_, String>(host(), &component, &json!({ "value": "joined" })).unwrap();
    assert_eq!(block_on(handle.join()), Ok("joined".to_string()));
}

#[test]
fn a_scope_ends_with_all_its_tasks_finished_or_terminated() {
    let host = new_host();
    let component = host.load(guest("task-lab")).unwrap();
    let scope = Scope::new(&host);
    let quick = scope.spawn::<_, u64>(&component, &json!({ "value": 1 })).unwrap();
    let endless = scope.spawn::<_, u64>(&component, &json!({ "value": 2, "spin": u64::MAX })).unwrap();
    assert_eq!(block_on(quick), Ok(1));
    assert_eq!(host.live_workers(), 2);
    drop(scope);
    assert_eq!(host.live_workers(), 0, "the endless task was terminated, and has stopped");
    assert_eq!(block_on(endless), Err(TaskError::Terminated));
}

#[test]
fn balanced_delegation_counts_the_same_primes_as_equal_ranges() {
    let mut equal = spawn("delegation");
    post(&equal, json!({ "n": 1_000_000, "k": 4 }));
    let mut balanced = spawn("delegation-pool");
    post(&balanced, json!({ "n": 1_000_000, "chunk": 10_000 }));
    assert_eq!(next_json(&mut equal), json!(78_498));
    assert_eq!(next_json(&mut balanced), json!(78_498));
    expect_closed(&mut balanced, CloseReason::Closed);
}

/// The Mandelbrot iteration counts of a view, computed here, natively.
fn mandelbrot_checksum(width: u32, height: u32, max_iter: u32) -> (String, u64) {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut inside = 0;
    for y in 0..height {
        let ci = -1.5 + 3.0 * f64::from(y) / f64::from(height);
        for x in 0..width {
            let cr = -2.0 + 3.0 * f64::from(x) / f64::from(width);
            let (mut zr, mut zi, mut i) = (0.0f64, 0.0f64, 0u32);
            while i < max_iter && zr * zr + zi * zi <= 4.0 {
                let t = zr * zr - zi * zi + cr;
                zi = 2.0 * zr * zi + ci;
                zr = t;
                i += 1;
            }
            inside += u64::from(i == max_iter);
            for byte in i.to_le_bytes() {
                hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
    (format!("{hash:016x}"), inside)
}

#[test]
fn mandelbrot_by_par_map_matches_its_checksum_in_a_guest_and_from_the_host() {
    let (checksum, inside) = mandelbrot_checksum(160, 120, 200);
    // Nested: a guest's pool of row workers.
    let mut mandelbrot = spawn("mandelbrot");
    post(&mandelbrot, json!({ "width": 160, "height": 120, "max-iter": 200 }));
    assert_eq!(next_json(&mut mandelbrot), json!({ "checksum": checksum, "inside": inside }));

    // From the host: a pool of the same row workers.
    let component = host().load(guest("mandelbrot-row")).unwrap();
    let pool = Pool::new(host(), &component, PoolConfig::default()).unwrap();
    let rows = (0..120).map(|y| json!({ "y": y, "width": 160, "height": 120, "max-iter": 200 }));
    let rows: Vec<Result<Vec<u32>, TaskError>> = block_on(pool.par_map(rows));
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for row in rows {
        for i in row.unwrap() {
            for byte in i.to_le_bytes() {
                hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
    assert_eq!(format!("{hash:016x}"), checksum);
}

#[test]
fn a_terminated_pool_answers_every_task_and_refuses_more() {
    let pool = lab_pool(host(), PoolConfig { size: Some(1), ..PoolConfig::default() });
    let stuck = pool.run::<_, Value>(&json!({ "value": 0, "spin": u64::MAX }));
    pool.terminate();
    assert_eq!(block_on(stuck), Err(TaskError::Terminated));
    let later: Result<Value, TaskError> = block_on(pool.run(&json!({ "value": 1 })));
    assert_eq!(later, Err(TaskError::Terminated));
}
