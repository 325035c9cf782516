//! The worker model end to end, through the host API, on the bundled guests.

mod support;

use serde_json::{json, Value};
use support::*;
use wasm_workers::{CloseReason, Codec, HostConfig, LoadError, Message, WorkerOptions};

#[test]
fn primes_posts_the_first_primes_in_order_then_closes() {
    let mut primes = spawn("primes");
    post(&primes, json!({ "limit": 30 }));
    let found: Vec<Value> = (0..10).map(|_| next_json(&mut primes)).collect();
    assert_eq!(found, json!([2, 3, 5, 7, 11, 13, 17, 19, 23, 29]).as_array().unwrap().clone());
    expect_closed(&mut primes, CloseReason::Closed);
}

#[test]
fn delegation_counts_the_primes_below_a_million_with_any_number_of_sub_workers() {
    for k in [1, 2, 4, 10] {
        let mut delegation = spawn("delegation");
        post(&delegation, json!({ "n": 1_000_000, "k": k }));
        assert_eq!(next_json(&mut delegation), json!(78_498), "k = {k}");
        expect_closed(&mut delegation, CloseReason::Closed);
    }
}

#[test]
fn delegation_defaults_to_one_sub_worker_per_processor() {
    let host = host_with(HostConfig { hardware_concurrency: Some(3), ..HostConfig::default() });
    let component = host.load(guest("delegation")).unwrap();
    let mut delegation = host.spawn(&component, WorkerOptions::named("delegation")).unwrap();
    post(&delegation, json!({ "n": 100_000 }));
    assert_eq!(next_json(&mut delegation), json!(9_592));
    expect_closed(&mut delegation, CloseReason::Closed);
    let cores = host.stats().iter().filter(|w| w.location.ends_with("core.wasm")).count();
    assert_eq!(cores, 3, "one sub-worker per processor");
}

#[test]
fn the_scope_reports_name_location_and_hardware_concurrency() {
    let host = host_with(HostConfig { hardware_concurrency: Some(7), ..HostConfig::default() });
    let component = host.load(guest("scope")).unwrap();
    let mut scope = host.spawn(&component, WorkerOptions::named("inspector")).unwrap();
    post(&scope, json!(null));
    let seen = next_json(&mut scope);
    assert_eq!(seen["name"], "inspector");
    assert_eq!(seen["location"], guest("scope").display().to_string());
    assert_eq!(seen["hardware-concurrency"], 7);

    // Without an override, the host's available parallelism.
    let mut scope = spawn("scope");
    post(&scope, json!(null));
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(next_json(&mut scope)["hardware-concurrency"], cores);
}

#[test]
fn close_discards_the_tasks_queued_behind_it() {
    let mut echo = spawn("echo");
    for word in ["a", "close", "b", "c"] {
        // Posting to a worker that has already closed is refused; either way nothing after
        // "close" may arrive.
        let _ = echo.post_message(Message::json(&word).unwrap());
    }
    assert_eq!(next_json(&mut echo), "a");
    assert_eq!(next_json(&mut echo), "close");
    expect_closed(&mut echo, CloseReason::Closed);
    assert!(echo.post_message(Message::json(&"d").unwrap()).is_err(), "a closed worker receives nothing");
}

#[test]
fn a_closing_child_tells_its_parent_and_receives_nothing_more() {
    let mut supervisor = spawn("supervisor");
    post(&supervisor, json!({ "spawn": [{ "location": "echo.wasm", "messages": ["x", "close", "y"] }] }));
    assert_eq!(next_json(&mut supervisor), json!({ "child": 0, "message": "x" }));
    assert_eq!(next_json(&mut supervisor), json!({ "child": 0, "message": "close" }));
    assert_eq!(next_json(&mut supervisor), json!({ "child": 0, "closed": true }));
    supervisor.end_input();
    expect_closed(&mut supervisor, CloseReason::Idle);
}

#[test]
fn a_worker_with_nothing_left_to_do_ends_idle() {
    let mut echo = spawn("echo");
    post(&echo, json!("hi"));
    echo.end_input();
    assert_eq!(next_json(&mut echo), "hi");
    expect_closed(&mut echo, CloseReason::Idle);
}

#[test]
fn a_parent_whose_children_have_nothing_to_do_ends_idle_and_takes_them_along() {
    let host = new_host();
    let component = host.load(guest("supervisor")).unwrap();
    let mut supervisor = host.spawn(&component, WorkerOptions::named("supervisor")).unwrap();
    post(
        &supervisor,
        json!({ "spawn": [
        { "location": "echo.wasm", "messages": ["a"] },
        { "location": "echo.wasm", "messages": ["b"] },
    ] }),
    );
    let mut replies = vec![next_json(&mut supervisor), next_json(&mut supervisor)];
    replies.sort_by_key(|r| r["child"].as_u64());
    assert_eq!(replies, vec![json!({ "child": 0, "message": "a" }), json!({ "child": 1, "message": "b" })]);
    // The children wait for messages only their parent could send; once the parent's own
    // input ends, nothing can happen any more.
    supervisor.end_input();
    expect_closed(&mut supervisor, CloseReason::Idle);
    assert_eq!(host.live_workers(), 0);
}

#[test]
fn terminate_stops_a_worker_in_an_endless_loop_and_others_go_on() {
    let mut looping = spawn("faulty");
    let mut echo = spawn("echo");
    post(&looping, json!("loop"));
    assert_eq!(next_json(&mut looping), "looping");
    // The loop is running: the echo worker still answers.
    post(&echo, json!("still here"));
    assert_eq!(next_json(&mut echo), "still here");
    looping.terminate();
    expect_closed(&mut looping, CloseReason::Terminated);
    post(&echo, json!("after"));
    assert_eq!(next_json(&mut echo), "after");
}

#[test]
fn terminate_stops_an_idle_worker() {
    let mut echo = spawn("echo");
    echo.terminate();
    expect_closed(&mut echo, CloseReason::Terminated);
}

#[test]
fn a_parent_terminates_a_looping_child_and_its_other_children_go_on() {
    let mut supervisor = spawn("supervisor");
    post(
        &supervisor,
        json!({ "spawn": [
        { "location": "faulty.wasm", "messages": ["loop"] },
        { "location": "echo.wasm", "messages": ["before"] },
    ] }),
    );
    let mut first_two = vec![next_json(&mut supervisor), next_json(&mut supervisor)];
    first_two.sort_by_key(|r| r["child"].as_u64());
    assert_eq!(
        first_two,
        vec![json!({ "child": 0, "message": "looping" }), json!({ "child": 1, "message": "before" })]
    );
    post(&supervisor, json!({ "terminate": 0 }));
    assert_eq!(next_json(&mut supervisor), json!({ "child": 0, "terminated": true }));
    post(&supervisor, json!({ "spawn": [{ "location": "echo.wasm", "messages": ["after"] }] }));
    assert_eq!(next_json(&mut supervisor), json!({ "child": 2, "message": "after" }));
    supervisor.terminate();
    expect_closed(&mut supervisor, CloseReason::Terminated);
}

#[test]
fn terminating_a_parent_terminates_its_busy_children() {
    // A host of its own, so that no other test's workers are counted.
    let host = new_host();
    let component = host.load(guest("supervisor")).unwrap();
    let mut supervisor = host.spawn(&component, WorkerOptions::named("supervisor")).unwrap();
    post(
        &supervisor,
        json!({ "spawn": [
        { "location": "faulty.wasm", "messages": ["loop"] },
        { "location": "echo.wasm", "messages": ["up"] },
    ] }),
    );
    let mut first_two = vec![next_json(&mut supervisor), next_json(&mut supervisor)];
    first_two.sort_by_key(|r| r["child"].as_u64());
    assert_eq!(first_two, vec![json!({ "child": 0, "message": "looping" }), json!({ "child": 1, "message": "up" })]);
    assert_eq!(host.live_workers(), 3);
    supervisor.terminate();
    expect_closed(&mut supervisor, CloseReason::Terminated);
    // A worker's last event comes after all of its descendants have stopped.
    assert_eq!(host.live_workers(), 0);
}

#[test]
fn a_panicking_child_is_reported_to_its_parent_and_its_siblings_complete() {
    let mut supervisor = spawn("supervisor");
    post(
        &supervisor,
        json!({ "spawn": [
        { "location": "core.wasm", "messages": [{ "from": 0, "to": 100_000 }] },
        { "location": "faulty.wasm", "name": "bad", "messages": ["panic"] },
        { "location": "core.wasm", "messages": [{ "from": 100_000, "to": 200_000 }] },
    ] }),
    );
    let mut reports: Vec<Value> = (0..5).map(|_| next_json(&mut supervisor)).collect();
    reports.sort_by_key(|r| (r["child"].as_u64(), r.get("closed").is_some()));
    assert_eq!(reports[0], json!({ "child": 0, "message": 9_592 }));
    assert_eq!(reports[1], json!({ "child": 0, "closed": true }));
    assert_eq!(reports[2]["child"], 1);
    assert_eq!(reports[2]["worker"], "bad");
    let error = reports[2]["error"].as_str().unwrap();
    assert!(error.contains("faulty worker panics on request"), "{error}");
    assert_eq!(reports[3], json!({ "child": 2, "message": 8_392 }));
    assert_eq!(reports[4], json!({ "child": 2, "closed": true }));
}

#[test]
fn every_kind_of_trap_ends_only_its_worker_with_the_cause() {
    let mut witness = spawn("echo");
    for (command, cause) in [
        ("panic", "faulty worker panics on request"),
        ("unreachable", "unreachable"),
        ("overflow", "out of bounds memory access"),
    ] {
        let mut faulty = spawn("faulty");
        post(&faulty, json!(command));
        let error = expect_error(&mut faulty);
        assert_eq!(error.worker, "faulty");
        assert!(error.message.contains(cause), "{command}: {}", error.message);
        assert!(error.to_string().contains("faulty.wasm"), "the error names the component");
        assert!(next_event(&mut faulty).is_none());
        post(&witness, json!(command));
        assert_eq!(next_json(&mut witness), command, "other workers go on");
    }
}

#[test]
fn ten_thousand_messages_arrive_in_order() {
    let mut echo = spawn("echo");
    for i in 0..10_000 {
        post(&echo, json!(i));
    }
    for i in 0..10_000 {
        assert_eq!(next_json(&mut echo), json!(i));
    }
}

#[test]
fn a_burst_of_mixed_messages_is_handled_one_by_one_in_order() {
    // Posted together, these reach the worker in one call (a burst): each keeps its own
    // bytes, and the malformed ones become message errors in their place.
    let mut echo = spawn("echo");
    let long = "x".repeat(100_000);
    let sent = [json!("a"), json!(long), json!({ "k": [1, 2, 3] }), json!(""), json!(7)];
    for (i, value) in sent.iter().enumerate() {
        post(&echo, value.clone());
        if i % 2 == 0 {
            echo.post_message(Message::new(Codec::Json, format!("{{bad {i}").into_bytes())).unwrap();
        }
    }
    for (i, value) in sent.iter().enumerate() {
        assert_eq!(&next_json(&mut echo), value);
        if i % 2 == 0 {
            let reply = next_json(&mut echo);
            assert!(reply["message-error"].as_str().unwrap().contains("malformed JSON"), "{reply}");
        }
    }
}

#[test]
fn a_message_in_the_wrong_encoding_is_a_message_error_not_a_trap() {
    let mut echo = spawn("echo");
    // Labelled JSON, but not JSON: the host refuses to deliver it as a message.
    echo.post_message(Message::new(Codec::Json, b"{oops".to_vec())).unwrap();
    let reply = next_json(&mut echo);
    assert!(reply["message-error"].as_str().unwrap().contains("malformed JSON"), "{reply}");
    // Labelled JSON, but not UTF-8 text inside a string: refused too.
    echo.post_message(Message::new(Codec::Json, b"\"\xff\"".to_vec())).unwrap();
    let reply = next_json(&mut echo);
    assert!(reply["message-error"].as_str().unwrap().contains("not UTF-8"), "{reply}");
    // Well-formed postcard, but the echo worker reads JSON values: the SDK cannot decode it.
    echo.post_message(Message::new(Codec::Postcard, vec![1, 2, 3])).unwrap();
    let reply = next_json(&mut echo);
    assert!(reply["message-error"].as_str().unwrap().contains("postcard"), "{reply}");
    // The worker is alive and well.
    post(&echo, json!("fine"));
    assert_eq!(next_json(&mut echo), "fine");
}

#[test]
fn undecodable_data_from_a_child_reaches_the_parents_message_error_handler() {
    let mut supervisor = spawn("supervisor");
    post(
        &supervisor,
        json!({ "spawn": [{ "location": "faulty.wasm", "messages": ["bad-json", "bad-postcard", "ok"] }] }),
    );
    let first = next_json(&mut supervisor);
    assert_eq!(first["child"], 0);
    assert!(first["message-error"].as_str().unwrap().contains("malformed JSON"), "{first}");
    let second = next_json(&mut supervisor);
    assert!(second["message-error"].as_str().unwrap().contains("postcard"), "{second}");
    assert_eq!(next_json(&mut supervisor), json!({ "child": 0, "message": "ok" }));
}

#[test]
fn a_worker_cannot_spawn_a_component_outside_its_directory() {
    let mut supervisor = spawn("supervisor");
    post(&supervisor, json!({ "spawn": [{ "location": "../echo.wasm" }, { "location": "/etc/passwd" }] }));
    for i in 0..2 {
        let report = next_json(&mut supervisor);
        assert_eq!(report["child"], i);
        assert!(report["spawn-error"].as_str().unwrap().contains("must be relative"), "{report}");
    }
}

#[test]
fn a_child_that_cannot_be_loaded_is_an_error_for_the_spawner_only() {
    let mut supervisor = spawn("supervisor");
    post(
        &supervisor,
        json!({ "spawn": [
        { "location": "missing.wasm" },
        { "location": "echo.wasm", "messages": ["ok"] },
    ] }),
    );
    let report = next_json(&mut supervisor);
    assert_eq!(report["child"], 0);
    assert!(report["spawn-error"].as_str().unwrap().contains("missing.wasm"), "{report}");
    assert_eq!(next_json(&mut supervisor), json!({ "child": 1, "message": "ok" }));
}

#[test]
fn loading_reports_what_is_wrong_with_a_component() {
    let dir = std::env::temp_dir().join(format!("wasm-workers-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    match host().load(dir.join("absent.wasm")) {
        Err(LoadError::Read { location, .. }) => assert!(location.ends_with("absent.wasm")),
        other => panic!("expected a read error, got {other:?}"),
    }

    let corrupt = dir.join("corrupt.wasm");
    std::fs::write(&corrupt, b"\0asm garbage that is not wasm").unwrap();
    assert!(matches!(host().load(&corrupt), Err(LoadError::Invalid { .. })));

    // A core module (the smallest one) is not a component.
    let module = dir.join("module.wasm");
    std::fs::write(&module, b"\0asm\x01\0\0\0").unwrap();
    match host().load(&module) {
        Err(error @ LoadError::Invalid { .. }) => assert!(error.to_string().contains("module.wasm")),
        other => panic!("expected an invalid-component error, got {other:?}"),
    }

    // A valid component of another world.
    match host().load(guest("not-a-worker")) {
        Err(error @ LoadError::NotAWorker { .. }) => {
            assert!(error.to_string().contains("not-a-worker.wasm"), "{error}")
        }
        other => panic!("expected a not-a-worker error, got {other:?}"),
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_component_is_compiled_once_per_host() {
    let host = new_host();
    let a = host.load(guest("echo")).unwrap();
    let b = host.load(guest("echo")).unwrap();
    assert!(a.ptr_eq(&b), "the second load returns the first compilation");
    let mut one = host.spawn(&a, WorkerOptions::default()).unwrap();
    let mut two = host.spawn(&b, WorkerOptions::default()).unwrap();
    post(&one, json!(1));
    post(&two, json!(2));
    assert_eq!(next_json(&mut one), json!(1));
    assert_eq!(next_json(&mut two), json!(2));
}

#[test]
fn a_host_refuses_workers_past_its_limit_with_a_typed_error() {
    let host = host_with(HostConfig { max_workers: Some(2), ..HostConfig::default() });
    let echo = host.load(guest("echo")).unwrap();
    let mut first = host.spawn(&echo, WorkerOptions::named("one")).unwrap();
    let _second = host.spawn(&echo, WorkerOptions::named("two")).unwrap();
    match host.spawn(&echo, WorkerOptions::named("three")) {
        Err(error @ wasm_workers::SpawnError::Limit { .. }) => {
            assert!(error.to_string().contains("limit of 2 workers"), "{error}")
        }
        other => panic!("expected the worker limit, got {other:?}"),
    }
    // A place frees up when a worker ends.
    first.terminate();
    expect_closed(&mut first, CloseReason::Terminated);
    let mut third = host.spawn(&echo, WorkerOptions::named("three")).unwrap();
    post(&third, json!("in"));
    assert_eq!(next_json(&mut third), "in");
}

#[test]
fn a_worker_cannot_spawn_more_children_than_its_limit() {
    let host = new_host();
    let supervisor = host.load(guest("supervisor")).unwrap();
    let options = WorkerOptions {
        limits: wasm_workers::Limits { children: Some(2), ..Default::default() },
        ..WorkerOptions::named("supervisor")
    };
    let mut worker = host.spawn(&supervisor, options).unwrap();
    let spec = json!({ "location": "echo.wasm" });
    post(&worker, json!({ "spawn": [spec, spec, spec] }));
    let report = next_json(&mut worker);
    assert_eq!(report["child"], 2);
    assert!(report["spawn-error"].as_str().unwrap().contains("limit of 2 children"), "{report}");
}

#[test]
fn every_message_is_delivered_or_counted_as_dropped() {
    let host = new_host();
    // Host to worker: refused posts are errors the caller sees; the rest are delivered or
    // counted as discarded when the worker closed.
    let echo = host.load(guest("echo")).unwrap();
    let mut worker = host.spawn(&echo, WorkerOptions::named("echo")).unwrap();
    let mut refused = 0;
    for word in ["a", "close", "b", "c"] {
        if worker.post_message(Message::json(&word).unwrap()).is_err() {
            refused += 1;
        }
    }
    assert_eq!(next_json(&mut worker), "a");
    assert_eq!(next_json(&mut worker), "close");
    expect_closed(&mut worker, CloseReason::Closed);
    let dropped = host.dropped_messages();
    assert_eq!(refused + dropped.discarded, 2, "{dropped:?}");

    // Worker to worker: the supervisor's last message to its closed child is counted.
    let before = host.dropped_messages();
    let supervisor = host.load(guest("supervisor")).unwrap();
    let mut worker = host.spawn(&supervisor, WorkerOptions::named("supervisor")).unwrap();
    post(&worker, json!({ "spawn": [{ "location": "echo.wasm", "messages": ["x", "close", "y"] }] }));
    assert_eq!(next_json(&mut worker), json!({ "child": 0, "message": "x" }));
    assert_eq!(next_json(&mut worker), json!({ "child": 0, "message": "close" }));
    assert_eq!(next_json(&mut worker), json!({ "child": 0, "closed": true }));
    let after = host.dropped_messages();
    let lost = (after.receiver_gone - before.receiver_gone) + (after.discarded - before.discarded);
    assert_eq!(lost, 1, "\"y\" was dropped and counted: {after:?}");
}

/// Threads of this process whose name starts with `prefix` (Linux keeps 15 bytes of a name).
fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|task| std::fs::read_to_string(task.path().join("comm")).is_ok_and(|name| name.starts_with(prefix)))
        .count()
}

/// A host whose idle workers give their threads back as soon as they wait, and whose threads
/// exit then (none is kept for reuse): every task after the first resumes its worker.
fn releasing_host() -> wasm_workers::Host {
    host_with(HostConfig {
        release_thread_after: Some(std::time::Duration::ZERO),
        idle_threads: Some(0),
        ..HostConfig::default()
    })
}

#[test]
fn idle_workers_give_their_threads_back_and_resume_where_they_were() {
    let host = releasing_host();
    let counter = host.load(guest("counter")).unwrap();
    let mut workers: Vec<_> =
        (0..8).map(|i| host.spawn(&counter, WorkerOptions::named(format!("dormant-c{i}"))).unwrap()).collect();
    let number = |i: u64| Message::new(Codec::Raw, i.to_le_bytes().to_vec());
    for round in 1..=3u64 {
        // With nothing to do, the workers hold no thread.
        wait_until(|| threads_named("dormant-c") == 0);
        for i in 0..round * 10 {
            for worker in &workers {
                worker.post_message(number(i)).unwrap();
            }
        }
        for worker in &mut workers {
            worker.post_message(Message::new(Codec::Raw, Vec::new())).unwrap();
            // The counter counts only consecutive numbers: all arrived, in order, at the
            // instance that had the ones before.
            assert_eq!(next_json(worker), json!(round * 10));
        }
    }
    for worker in &mut workers {
        worker.terminate();
        expect_closed(worker, CloseReason::Terminated);
    }
    wait_until(|| host.live_workers() == 0);
    assert!(host.stats().iter().all(|report| report.ended.as_deref() == Some("terminated")));
}

#[test]
fn a_worker_without_a_thread_still_ends_idle_runs_its_timers_and_waits_for_its_children() {
    let host = releasing_host();
    // Its timer resumes it each time.
    let ticker = host.load(guest("ticker")).unwrap();
    let mut ticker = host.spawn(&ticker, WorkerOptions::named("ticker")).unwrap();
    post(&ticker, json!({ "symbol": "GOOG", "every-ms": 5 }));
    for _ in 0..5 {
        assert!(next_json(&mut ticker).as_str().unwrap().starts_with("GOOG "));
    }
    ticker.terminate();
    expect_closed(&mut ticker, CloseReason::Terminated);

    // A parent gives its thread back while its children count; their answers resume it.
    let delegation = host.load(guest("delegation")).unwrap();
    let mut delegation = host.spawn(&delegation, WorkerOptions::named("delegation")).unwrap();
    post(&delegation, json!({ "n": 100_000, "k": 4 }));
    assert_eq!(next_json(&mut delegation), json!(9_592));
    expect_closed(&mut delegation, CloseReason::Closed);

    // With its input ended and nothing to do, a worker without a thread ends idle.
    let echo = host.load(guest("echo")).unwrap();
    let mut echo = host.spawn(&echo, WorkerOptions::named("dormant-echo")).unwrap();
    post(&echo, json!("hi"));
    assert_eq!(next_json(&mut echo), "hi");
    wait_until(|| threads_named("dormant-echo") == 0);
    echo.end_input();
    expect_closed(&mut echo, CloseReason::Idle);
    let report = host.stats().into_iter().find(|report| report.name == "dormant-echo").unwrap();
    assert_eq!(report.messages_in, 1);
    assert!(report.cpu_time > std::time::Duration::ZERO, "CPU time is counted on every thread it ran on");
}
