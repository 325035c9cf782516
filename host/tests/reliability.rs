//! Reliability under faults, load and limits: queue floods, message size, CPU deadlines, a
//! crowd of faulty workers, and exact message accounting under churn.

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;
use wasm_workers::{Codec, DropReason, HostConfig, Limits, Message, WorkerEvent, WorkerHandle, WorkerOptions};

#[test]
fn a_flood_against_a_busy_receiver_is_refused_with_queue_full_and_counted() {
    let host = new_host();
    let limits = Limits { queued_messages: Some(50), ..Default::default() };
    let mut busy = spawn_with(&host, "faulty", "busy", limits);
    post(&busy, json!("loop"));
    assert_eq!(next_json(&mut busy), "looping", "the receiver is busy and reads nothing");
    let before = host.message_counts();
    let (mut accepted, mut full) = (0, 0);
    for i in 0..1000u32 {
        match busy.post_message(Message::json(&i).unwrap()) {
            Ok(()) => accepted += 1,
            Err(error) => {
                assert_eq!(error.reason, DropReason::QueueFull, "{error}");
                assert_eq!(error.message.decode_json::<u32>().unwrap(), i, "the message comes back");
                full += 1;
            }
        }
    }
    assert_eq!((accepted, full), (50, 950), "the queue holds exactly its limit");
    let after = host.message_counts();
    assert_eq!(after.posted - before.posted, 1000);
    assert_eq!(after.dropped.queue_full - before.dropped.queue_full, 950);
    // Terminating discards the 50 queued messages, and says so.
    busy.terminate();
    while next_event(&mut busy).is_some() {}
    let end = host.message_counts();
    assert_eq!(end.dropped.discarded - after.dropped.discarded, 50);
    assert_eq!(end.in_flight(), 0, "{end:?}");
}

#[test]
fn host_wide_default_limits_apply_unless_a_worker_overrides_them() {
    let config = HostConfig { limits: Limits { queued_messages: Some(5), ..Default::default() }, ..Default::default() };
    let host = host_with(config);
    for (own, expected) in [(None, 5), (Some(8), 8)] {
        let mut busy = spawn_with(&host, "faulty", "busy", Limits { queued_messages: own, ..Default::default() });
        post(&busy, json!("loop"));
        assert_eq!(next_json(&mut busy), "looping");
        let accepted = (0..20).filter(|i| busy.post_message(Message::json(i).unwrap()).is_ok()).count();
        assert_eq!(accepted, expected, "own limit {own:?}");
        busy.terminate();
    }
}

#[test]
fn a_guest_flooding_a_parent_that_does_not_read_gets_queue_full_errors() {
    let host = new_host();
    let limits = Limits { queued_messages: Some(100), ..Default::default() };
    let mut flooder = spawn_with(&host, "faulty", "flooder", limits);
    post(&flooder, json!("flood:1000"));
    // The host reads nothing until the flood is over (every post of it is settled, the
    // host's ledger says): only 100 messages wait for it.
    wait_until(|| {
        let counts = host.message_counts();
        counts.posted == 1001 && counts.in_flight() == 0
    });
    for i in 0..100u64 {
        assert_eq!(next_json(&mut flooder), json!(i));
    }
    post(&flooder, json!("flood-report"));
    let report = next_json(&mut flooder);
    assert_eq!(report["refused"], 900, "{report}");
    assert_eq!(report["error"], "the receiver's queue is full", "{report}");
    assert_eq!(host.dropped_messages().queue_full, 900);
}

#[test]
fn a_message_over_the_size_limit_is_refused_as_too_large() {
    let host = new_host();
    let limits = Limits { message_size: Some(1024), ..Default::default() };
    let mut echo_like = spawn_with(&host, "faulty", "small", limits);
    let big = Message::new(Codec::Json, format!("\"{}\"", "x".repeat(2048)).into_bytes());
    let error = echo_like.post_message(big).unwrap_err();
    assert_eq!(error.reason, DropReason::TooLarge);
    assert_eq!(host.dropped_messages().too_large, 1);
    // Smaller messages still go through.
    post(&echo_like, json!("fits"));
    assert_eq!(next_json(&mut echo_like), "fits");
}

#[test]
fn a_handler_past_its_cpu_deadline_is_stopped_and_reported() {
    let host = new_host();
    let limits = Limits { deadline: Some(Duration::from_millis(200)), ..Default::default() };
    let mut worker = spawn_with(&host, "faulty", "spinner", limits);
    // Quick handlers run under the deadline as usual.
    post(&worker, json!("quick"));
    assert_eq!(next_json(&mut worker), "quick");
    post(&worker, json!("loop"));
    assert_eq!(next_json(&mut worker), "looping");
    let error = expect_error(&mut worker);
    assert!(error.message.contains("CPU deadline of 200 ms"), "{error:?}");
    assert_eq!(error.worker, "spinner");
}

#[test]
fn a_memory_bomb_ends_only_its_worker_and_says_it_hit_the_limit() {
    let host = new_host();
    let limits = Limits { memory: Some(16 << 20), ..Default::default() };
    let mut bomb = spawn_with(&host, "faulty", "bomb", limits);
    let mut witness = spawn("echo");
    post(&bomb, json!("memory-bomb"));
    let error = expect_error(&mut bomb);
    assert!(error.message.contains("memory limit of 16777216 bytes"), "{error:?}");
    post(&witness, json!("still here"));
    assert_eq!(next_json(&mut witness), "still here");
}

#[test]
fn the_time_of_day_is_a_capability() {
    let host = new_host();
    let faulty = host.load(guest("faulty")).unwrap();
    let mut denied = host.spawn(&faulty, WorkerOptions::named("denied")).unwrap();
    post(&denied, json!("time"));
    assert_eq!(next_json(&mut denied), 0, "without the capability the wall clock reads the epoch");
    let granted = WorkerOptions {
        capabilities: wasm_workers::Capabilities { wall_clock: true, ..Default::default() },
        ..WorkerOptions::named("granted")
    };
    let mut granted = host.spawn(&faulty, granted).unwrap();
    post(&granted, json!("time"));
    let seconds = next_json(&mut granted).as_u64().unwrap();
    assert!(seconds > 1_600_000_000, "the real time of day: {seconds}");
}

/// What one worker of the crowd is asked to do, and how it must end.
#[derive(Clone, Copy, Debug)]
enum Role {
    Healthy,
    Panic,
    Loop,
    MemoryBomb,
    SpawnBomb,
    // The hostile guest's attacks on the sandbox.
    LinkEscape,
    FromBytes,
    PortFlood,
    SharedBomb,
    TimerFlood,
    StartLoop,
}

impl Role {
    const FAULTS: [Role; 10] = [
        Role::Panic,
        Role::Loop,
        Role::MemoryBomb,
        Role::SpawnBomb,
        Role::LinkEscape,
        Role::FromBytes,
        Role::PortFlood,
        Role::SharedBomb,
        Role::TimerFlood,
        Role::StartLoop,
    ];
}

#[test]
fn two_hundred_workers_ten_percent_faulty_every_result_right_every_fault_reported() {
    let host = host_with(HostConfig { max_workers: Some(400), ..Default::default() });
    let faulty = host.load(guest("faulty")).unwrap();
    // The hostile guest in a directory of its own, with a writable `data` inside it and a
    // component outside it to reach for.
    let jail = temp_dir("crowd-jail");
    std::fs::create_dir_all(jail.join("inside/data")).unwrap();
    std::fs::copy(guest("hostile"), jail.join("inside/hostile.wasm")).unwrap();
    std::fs::copy(guest("start-loop"), jail.join("inside/start-loop.wasm")).unwrap();
    std::fs::copy(guest("echo"), jail.join("echo.wasm")).unwrap();
    let hostile = host.load(jail.join("inside/hostile.wasm")).unwrap();
    let start_loop = host.load(jail.join("inside/start-loop.wasm")).unwrap();
    let limits = Limits {
        memory: Some(32 << 20),
        children: Some(4),
        deadline: Some(Duration::from_millis(300)),
        ..Default::default()
    };
    let roles: Vec<Role> = (0..200)
        .map(|i| match i % 10 {
            0 => Role::FAULTS[(i / 10) % Role::FAULTS.len()],
            _ => Role::Healthy,
        })
        .collect();
    let mut workers: Vec<WorkerHandle> = roles
        .iter()
        .enumerate()
        .map(|(i, role)| {
            let component = match role {
                Role::LinkEscape | Role::FromBytes | Role::PortFlood | Role::SharedBomb | Role::TimerFlood => &hostile,
                Role::StartLoop => &start_loop,
                _ => &faulty,
            };
            let capabilities = wasm_workers::Capabilities {
                dirs: vec![wasm_workers::Preopen {
                    host: jail.join("inside/data"),
                    guest: "/data".into(),
                    read_only: false,
                }],
                ..Default::default()
            };
            let options = WorkerOptions { limits, capabilities, ..WorkerOptions::named(format!("w{i}")) };
            host.spawn(component, options).unwrap()
        })
        .collect();
    for (i, (worker, role)) in workers.iter().zip(&roles).enumerate() {
        let command = match role {
            Role::Healthy => json!(format!("result {i}")),
            Role::Panic => json!("panic"),
            Role::Loop => json!("loop"),
            Role::MemoryBomb => json!("memory-bomb"),
            Role::SpawnBomb => json!("spawn-bomb"),
            Role::LinkEscape => {
                json!({ "link-escape": { "link": format!("up-{i}"), "target": "../..", "location": format!("data/up-{i}/echo.wasm") } })
            }
            Role::FromBytes => json!({ "from-bytes": { "size": 1 << 20, "count": 100_000 } }),
            Role::PortFlood => json!({ "ports": 100_000_000 }),
            Role::SharedBomb => json!({ "shared-bomb": 100_000 }),
            Role::TimerFlood => json!({ "timers": 100_000_000 }),
            Role::StartLoop => continue,
        };
        post(worker, command);
    }
    for (i, (worker, role)) in workers.iter_mut().zip(&roles).enumerate() {
        match role {
            Role::Healthy => assert_eq!(next_json(worker), json!(format!("result {i}"))),
            Role::LinkEscape => {
                let reply = next_json(worker);
                for what in ["spawn", "connect"] {
                    assert!(
                        reply[what].as_str().unwrap().contains("outside the worker's directory"),
                        "worker {i}: {reply}"
                    );
                }
            }
            Role::SharedBomb => {
                let reply = next_json(worker);
                assert_eq!(reply["connected"], 4, "worker {i}: {reply}");
                assert!(reply["error"].as_str().unwrap().contains("limit of 4 children"), "worker {i}: {reply}");
            }
            faulty => {
                if let Role::Loop = faulty {
                    assert_eq!(next_json(worker), "looping");
                }
                let error = expect_error(worker);
                let expected: &[&str] = match faulty {
                    Role::Panic => &["faulty worker panics on request"],
                    Role::Loop | Role::StartLoop => &["CPU deadline"],
                    Role::MemoryBomb => &["memory limit"],
                    Role::SpawnBomb => &["limit of 4 children"],
                    Role::FromBytes => &["cannot make a buffer: it would pass its memory limit"],
                    // A flood ends at its budget, or at its deadline if that comes first.
                    Role::PortFlood => &["make a message channel", "memory limit", "CPU deadline"],
                    Role::TimerFlood => &["set a timer", "memory limit", "CPU deadline"],
                    Role::Healthy | Role::LinkEscape | Role::SharedBomb => unreachable!(),
                };
                assert!(expected.iter().any(|e| error.message.contains(e)), "worker {i} ({faulty:?}): {error:?}");
                assert_eq!(error.worker, format!("w{i}"));
            }
        }
    }
    // The healthy ones are alive and well after all that.
    for (i, worker) in workers.iter_mut().enumerate().filter(|(i, _)| i % 10 != 0) {
        post(worker, json!(format!("again {i}")));
        assert_eq!(next_json(worker), json!(format!("again {i}")));
    }
    // Every faulty worker and all the bomb's children are gone: only the healthy remain, the
    // refused escapers, and the bombers with the 4 shared workers each was allowed.
    let live = host.live_workers();
    assert_eq!(live, 180 + 2 + 2 + 2 * 4, "the failed workers and their children have all ended");
    // Nothing was loaded from outside the jail.
    assert!(host.stats().iter().all(|report| !report.location.ends_with("/echo.wasm")));
    for worker in &workers {
        worker.terminate();
    }
    for worker in &mut workers {
        while next_event(worker).is_some() {}
    }
    drop(workers);
    wait_until(|| host.live_workers() == 0);
    assert_eq!(host.memory_charged(), 0, "every charge was released with its worker");
    // Coarse, for the whole test process (other tests run beside this one): without the
    // budgets, the buffer and port floods alone would hold gigabytes.
    assert!(rss() < 3 << 30, "the test process holds {} MiB", rss() >> 20);
}

#[test]
fn conservation_under_churn_every_message_is_delivered_or_dropped_with_a_reason() {
    const WORKERS: usize = 8;
    const TARGET: u64 = 100_000;
    let host = new_host();
    let mixer = host.load(guest("mixer")).unwrap();
    let spawn = |i: usize| host.spawn(&mixer, WorkerOptions::named(format!("mixer-{i}"))).unwrap();
    let mut workers: Vec<WorkerHandle> = (0..WORKERS).map(spawn).collect();
    let mut spawned = WORKERS;
    let mut retired = Vec::new();
    // A small deterministic generator: the same churn on every run.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let (mut terminated, mut channels) = (0, 0);
    while host.message_counts().posted < TARGET {
        match next(100) {
            // Entangle two workers: each end goes to one of them, in a message.
            0..=9 => {
                let (a, b) = (next(WORKERS), next(WORKERS));
                let (one, two) = wasm_workers::channel();
                let _ = workers[a].post_message(Message::json(&json!("port")).unwrap().with_port(one));
                let _ = workers[b].post_message(Message::json(&json!("port")).unwrap().with_port(two));
                channels += 1;
            }
            // A worker hands one of its ports to a peer over another port.
            10..=19 => {
                let _ = workers[next(WORKERS)].post_message(Message::json(&json!("pass")).unwrap());
            }
            // Terminate one at random; a fresh one takes its place.
            20..=22 => {
                let i = next(WORKERS);
                workers[i].terminate();
                retired.push(std::mem::replace(&mut workers[i], spawn(spawned)));
                spawned += 1;
                terminated += 1;
            }
            // A burst: to the host, and on every port the worker holds.
            _ => {
                let n = 1 + next(200);
                let _ = workers[next(WORKERS)].post_message(Message::json(&json!({ "burst": n })).unwrap());
            }
        }
        // Read what has arrived, so that the host's side of each worker does not fill up
        // (a full one would only count more drops, but the point is deliveries).
        if next(8) == 0 {
            for worker in &mut workers {
                while let Some(event) = worker.try_recv() {
                    assert!(matches!(event, WorkerEvent::Message(_)), "a mixer never fails: {event:?}");
                }
            }
        }
    }
    for worker in workers.iter().chain(&retired) {
        worker.terminate();
    }
    for worker in workers.iter_mut().chain(retired.iter_mut()) {
        while next_event(worker).is_some() {}
    }
    drop(workers);
    drop(retired);
    let counts = host.message_counts();
    assert!(counts.posted >= TARGET, "{counts:?}");
    assert_eq!(counts.in_flight(), 0, "every message is settled: {counts:?}");
    assert_eq!(counts.posted, counts.delivered + counts.dropped.total(), "{counts:?}");
    assert!(counts.delivered > TARGET / 10, "messages were delivered: {counts:?}");
    assert!(counts.dropped.discarded > 0, "terminations discarded queued messages: {counts:?}");
    assert!(counts.dropped.port_closed > 0, "ports closed with messages waiting: {counts:?}");
    assert!(terminated > 0 && channels > 0, "the churn happened: {terminated} terminated, {channels} channels");
}
