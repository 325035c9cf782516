//! The sandbox against a hostile guest (the `hostile` guest attacks; each test is one class of
//! attack) and the command line against a careless user. Each of these failed before the
//! hardening: see SECURITY.md, where each promise names its test.

mod support;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};
use support::{
    expect_error, guest, host_with, new_host, next_event, next_json, post, spawn_with, start_cli, temp_dir, test_cache,
    text, wait_until, wasm_workers, wasm_workers_bytes,
};
use wasm_workers::{
    Capabilities, Host, HostConfig, Limits, Manifest, Preopen, WorkerEvent, WorkerHandle, WorkerOptions,
};

/// A directory holding a copy of the hostile guest and a writable `data` directory granted
/// to it as `/data`; beside it (outside), a secret file and another component.
struct Jail {
    root: PathBuf,
    inside: PathBuf,
}

impl Jail {
    fn new(name: &str) -> Jail {
        let root = temp_dir(name);
        let inside = root.join("jail");
        std::fs::create_dir_all(inside.join("data")).unwrap();
        std::fs::copy(guest("hostile"), inside.join("hostile.wasm")).unwrap();
        std::fs::copy(guest("echo"), root.join("echo.wasm")).unwrap();
        std::fs::write(root.join("secret.wasm"), b"SECRET-CONTENTS of a file outside the jail").unwrap();
        Jail { root, inside }
    }

    fn spawn(&self, host: &Host) -> WorkerHandle {
        let component = host.load(self.inside.join("hostile.wasm")).unwrap();
        let capabilities = Capabilities {
            dirs: vec![Preopen { host: self.inside.join("data"), guest: "/data".into(), read_only: false }],
            ..Default::default()
        };
        host.spawn(&component, WorkerOptions { capabilities, ..WorkerOptions::named("prisoner") }).unwrap()
    }
}

#[test]
fn a_link_the_guest_makes_cannot_lead_a_spawn_or_a_connect_out_of_its_directory() {
    let host = new_host();
    let jail = Jail::new("link-escape");
    let mut prisoner = jail.spawn(&host);
    // `data/up` → the jail's parent; `data/root` → `/`; `data/zero` → `/dev/zero`.
    for (link, target, location) in [
        ("up", "../..", "data/up/echo.wasm"),
        ("up2", "../..", "data/up2/secret.wasm"),
        ("zero", "../../../../../../../../../../dev/zero", "data/zero"),
    ] {
        post(&prisoner, json!({ "link-escape": { "link": link, "target": target, "location": location } }));
        let reply = next_json(&mut prisoner);
        for what in ["spawn", "connect"] {
            let why = reply[what].as_str().unwrap_or_else(|| panic!("{location}: {reply}"));
            assert_ne!(why, "ok", "{what} through `{location}` escaped the directory");
            assert!(why.contains("outside the worker's directory"), "{location}: {why}");
            assert!(!why.contains("SECRET"), "an error quotes the file: {why}");
        }
    }
    // WASI itself lets a guest make only relative links; links to absolute paths already in
    // the tree (made by someone else) lead nowhere either.
    std::os::unix::fs::symlink("/", jail.inside.join("data").join("root")).unwrap();
    std::os::unix::fs::symlink(jail.root.join("echo.wasm"), jail.inside.join("data").join("abs.wasm")).unwrap();
    for location in ["data/root/etc/passwd", "data/abs.wasm"] {
        post(&prisoner, json!({ "spawn": location }));
        let why = next_json(&mut prisoner);
        assert!(why.as_str().unwrap().contains("outside the worker's directory"), "{location}: {why}");
    }
    // A link that stays inside is followed: links are not the problem, leaving is.
    post(&prisoner, json!({ "link-escape": { "link": "me", "target": "../hostile.wasm", "location": "data/me" } }));
    let reply = next_json(&mut prisoner);
    assert_eq!(reply, json!({ "spawn": "ok", "connect": "ok" }));
    // Nothing outside was ever loaded.
    assert!(host.stats().iter().all(|report| !report.location.contains("echo.wasm")));
}

#[test]
fn a_spawn_of_a_device_or_of_what_is_not_a_component_says_so_without_quoting_it() {
    let host = new_host();
    let jail = Jail::new("not-a-component");
    std::fs::write(jail.inside.join("data").join("notes.wasm"), b"SECRET-CONTENTS, not wasm").unwrap();
    let mut prisoner = jail.spawn(&host);
    post(&prisoner, json!({ "spawn": "data/notes.wasm" }));
    let why = next_json(&mut prisoner);
    assert!(why.as_str().unwrap().contains("is not a valid WebAssembly component"), "{why}");
    assert!(!why.as_str().unwrap().contains("SECRET"), "{why}");
    post(&prisoner, json!({ "spawn": "data" }));
    assert!(next_json(&mut prisoner).as_str().unwrap().contains("not a regular file"));
}

#[test]
fn buffers_made_from_bytes_are_charged_and_refused_past_the_memory_limit() {
    let host = new_host();
    let limits = Limits { memory: Some(64 << 20), ..Default::default() };
    let mut worker = spawn_with(&host, "hostile", "from-bytes", limits);
    post(&worker, json!({ "from-bytes": { "size": 1 << 20, "count": 1000 } }));
    let error = expect_error(&mut worker);
    assert!(
        error.message.contains("cannot make a buffer: it would pass its memory limit of 67108864 bytes"),
        "{error}"
    );
    // `create` is refused the same way, with an error it can handle.
    let mut worker = spawn_with(&host, "hostile", "buffers", limits);
    post(&worker, json!({ "buffers": { "size": 1 << 20, "count": 1000 } }));
    let made = next_json(&mut worker).as_u64().unwrap();
    assert!(made < 64, "{made} buffers of 1 MiB under a 64 MiB limit");
    worker.terminate();
    wait_until(|| host.live_workers() == 0);
    assert_eq!(host.memory_charged(), 0, "every charge is released when its workers end");
}

#[test]
fn a_host_without_worker_limits_is_bounded_by_its_memory_budget() {
    let host = host_with(HostConfig { memory_budget: Some(256 << 20), ..Default::default() });
    assert_eq!(host.memory_budget(), 256 << 20);
    let mut worker = spawn_with(&host, "hostile", "unlimited", Limits::default());
    post(&worker, json!({ "from-bytes": { "size": 1 << 20, "count": 10_000 } }));
    let error = expect_error(&mut worker);
    assert!(error.message.contains("the host's memory budget of 268435456 bytes"), "{error}");
    // The default is a share of the machine's memory, never unbounded.
    let default = new_host();
    assert!(default.memory_budget() < u64::MAX);
}

#[test]
fn messages_waiting_at_a_port_nobody_reads_are_charged_to_their_sender() {
    let host = new_host();
    let limits = Limits { memory: Some(16 << 20), ..Default::default() };
    let mut worker = spawn_with(&host, "hostile", "self-queue", limits);
    // 100 MiB posted on a port it holds and never starts: within the port's queue limits
    // (256 MiB), but not within its own memory.
    post(&worker, json!({ "self-queue": { "size": 1 << 20, "count": 100 } }));
    let reply = next_json(&mut worker);
    assert!(reply["refused"].as_u64().unwrap() > 84, "{reply}");
    assert!(reply["error"].as_str().unwrap().contains("full"), "{reply}");
}

#[test]
fn a_port_flood_and_a_timer_flood_end_at_the_memory_limit() {
    let host = new_host();
    let limits = Limits { memory: Some(8 << 20), ..Default::default() };
    for (attack, what) in
        [(json!({ "ports": 100_000_000 }), "make a message channel"), (json!({ "timers": 100_000_000 }), "set a timer")]
    {
        let mut worker = spawn_with(&host, "hostile", "flood", limits);
        post(&worker, attack);
        let error = expect_error(&mut worker);
        assert!(error.message.contains(what) || error.message.contains("memory limit"), "{error}");
    }
    // Cleared timers leave: set and cleared, they never add up to the limit.
    let mut churn = spawn_with(&host, "hostile", "churn", limits);
    post(&churn, json!({ "timer-churn": 200_000 }));
    assert_eq!(next_json(&mut churn), 200_000);
}

#[test]
fn shared_workers_get_the_limits_of_the_worker_that_starts_them() {
    let host = new_host();
    let mut failures = host.watch_shared_failures();
    let limits = Limits { deadline: Some(Duration::from_millis(300)), children: Some(4), ..Default::default() };
    let mut starter = spawn_with(&host, "hostile", "starter", limits);
    // Its `on-connect` never returns: the starter's deadline stops it.
    post(&starter, json!({ "shared-loop": "loop-1" }));
    assert_eq!(next_json(&mut starter), "ok");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let failure = runtime
        .block_on(async { tokio::time::timeout(support::EVENT_TIMEOUT, failures.recv()).await })
        .expect("the looping shared worker is stopped")
        .unwrap();
    assert!(failure.message.contains("CPU deadline"), "{failure}");
    // And starting shared workers counts against its children limit.
    let mut bomber = spawn_with(&host, "hostile", "bomber", limits);
    post(&bomber, json!({ "shared-bomb": 10_000 }));
    let reply = next_json(&mut bomber);
    assert_eq!(reply["connected"], 4, "{reply}");
    assert!(reply["error"].as_str().unwrap().contains("limit of 4 children"), "{reply}");
}

#[test]
fn a_graph_gives_its_shared_workers_their_own_limits() {
    let dir = temp_dir("shared-limits");
    std::fs::copy(guest("hostile"), dir.join("hostile.wasm")).unwrap();
    std::fs::copy(guest("echo"), dir.join("echo.wasm")).unwrap();
    let manifest = dir.join("graph.toml");
    std::fs::write(
        &manifest,
        r#"
entry = "front"
[workers.front]
component = "echo.wasm"
[shared.loop-graph]
component = "hostile.wasm"
limits = { deadline-ms = 200 }
[[channels]]
a = { worker = "front", label = "loop" }
b = { shared = "loop-graph" }
"#,
    )
    .unwrap();
    // Its `on-connect` loops: only its own deadline stops it.
    let host = new_host();
    let mut failures = host.watch_shared_failures();
    let graph = Manifest::read(&manifest).unwrap().check(&host).unwrap();
    let _running = graph.start(&host).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let failure = runtime
        .block_on(async { tokio::time::timeout(support::EVENT_TIMEOUT, failures.recv()).await })
        .expect("the looping shared worker is stopped")
        .unwrap();
    assert_eq!(failure.worker, "loop-graph");
    assert!(failure.message.contains("CPU deadline of 200 ms"), "{failure}");
}

#[test]
fn instantiation_is_under_the_cpu_deadline_for_a_worker_and_for_its_children() {
    let host = new_host();
    let limits = Limits { deadline: Some(Duration::from_millis(200)), ..Default::default() };
    let component = host.load(guest("start-loop")).unwrap();
    let mut worker = host.spawn(&component, WorkerOptions { limits, ..WorkerOptions::named("start-loop") }).unwrap();
    let error = expect_error(&mut worker);
    assert!(error.message.contains("CPU deadline"), "{error}");
    // Spawned by a guest, with the parent's deadline.
    let mut parent = spawn_with(&host, "hostile", "parent", limits);
    post(&parent, json!({ "spawn": "start_loop.wasm" }));
    assert_eq!(next_json(&mut parent), "ok");
    wait_until(|| {
        host.stats().iter().any(|r| {
            r.location.ends_with("start_loop.wasm")
                && r.name == "child"
                && r.ended.as_deref().is_some_and(|e| e.contains("CPU deadline"))
        })
    });
}

#[test]
fn the_cpu_deadline_counts_each_message_not_each_burst() {
    let host = new_host();
    let limits = Limits { deadline: Some(Duration::from_millis(500)), ..Default::default() };
    let mut worker = spawn_with(&host, "hostile", "steady", limits);
    // 200 messages of 5 ms each, queued before the worker runs: delivered together, 1 s of
    // work, yet each message takes 5 ms.
    for _ in 0..200 {
        post(&worker, json!({ "busy": 5 }));
    }
    for _ in 0..200 {
        match next_event(&mut worker) {
            Some(WorkerEvent::Message(message)) => {
                assert_eq!(message.decode_json::<Value>().unwrap(), "done")
            }
            other => panic!("every message meets the deadline alone: {other:?}"),
        }
    }
}

#[test]
fn an_oversized_post_is_refused_as_too_large_not_a_trap() {
    let host = new_host();
    let mut worker = spawn_with(&host, "hostile", "huge", Limits::default());
    // Over wasmtime's 128 MiB of host-call fuel, and the 64 MiB message size.
    post(&worker, json!({ "post": 256 << 20 }));
    let reply = next_json(&mut worker);
    assert!(reply.as_str().unwrap().contains("large"), "{reply}");
    post(&worker, json!({ "post": 10 }));
    assert!(matches!(next_event(&mut worker), Some(WorkerEvent::Message(_))), "the raw message arrives");
    assert_eq!(next_json(&mut worker), "ok", "the worker goes on");
}

#[test]
fn run_refuses_a_device_and_check_says_what_it_is() {
    let out = wasm_workers(&["run", "/dev/zero"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("not a regular file"), "{}", text(&out.stderr));
    let dir = temp_dir("device-graph");
    let manifest = dir.join("graph.toml");
    std::fs::write(&manifest, "entry = \"z\"\n[workers.z]\ncomponent = \"/dev/zero\"\n").unwrap();
    let out = wasm_workers(&["check", manifest.to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("not a regular file"), "{}", text(&out.stderr));
    let out = wasm_workers(&["run", "/dev/zero", "--no-cache"], "");
    assert!(text(&out.stderr).contains("not a regular file"));
}

#[test]
fn a_cache_directory_others_can_write_is_refused_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let cache = temp_dir("loose-cache");
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = support::wasm_workers_with_cache(&["run", guest("echo").to_str().unwrap()], "1\n", &cache);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("writable by others") && stderr.contains("chmod go-w"), "{stderr}");
}

#[test]
fn run_reports_a_line_that_is_not_utf8_and_reads_on() {
    let mut input = b"1\n".to_vec();
    input.extend_from_slice(b"\"\xff\xfe\"\n");
    input.extend_from_slice(b"2\n3\n");
    let out = wasm_workers_bytes(&["run", guest("echo").to_str().unwrap()], &input);
    assert_eq!(text(&out.stdout), "1\n2\n3\n");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("stdin line 2 is not UTF-8"), "{stderr}");
    assert!(stderr.contains("1 of the stdin lines were not delivered"), "{stderr}");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn run_waits_for_a_slow_worker_instead_of_dropping_its_input() {
    let dir = temp_dir("backpressure");
    std::fs::copy(guest("hostile"), dir.join("hostile.wasm")).unwrap();
    let manifest = dir.join("graph.toml");
    // A queue of 4: every line beyond waits for room.
    std::fs::write(
        &manifest,
        "entry = \"t\"\n[workers.t]\ncomponent = \"hostile.wasm\"\nlimits = { queued-messages = 4 }\n",
    )
    .unwrap();
    let mut input: String = (0..20_000).map(|i| format!("{{\"tally\": {i}}}\n")).collect();
    input.push_str("\"report\"\n");
    let out = wasm_workers(&["run", manifest.to_str().unwrap()], &input);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(text(&out.stdout), "{\"count\":20000,\"sum\":199990000}\n", "every line arrived: {stderr}");
    assert!(!stderr.contains("not delivered"), "{stderr}");
}

#[test]
fn a_line_longer_than_the_worker_accepts_is_refused_as_it_arrives_in_bounded_memory() {
    let dir = temp_dir("long-line");
    std::fs::copy(guest("echo"), dir.join("echo.wasm")).unwrap();
    let manifest = dir.join("graph.toml");
    std::fs::write(
        &manifest,
        "entry = \"e\"\n[workers.e]\ncomponent = \"echo.wasm\"\nlimits = { message-size = \"1 MiB\" }\n",
    )
    .unwrap();
    let mut child = start_cli(&["run", manifest.to_str().unwrap()], &test_cache());
    let mut stdin = child.stdin.take().unwrap();
    // 600 MiB in one line between two small ones, written as it is made.
    let writer = std::thread::spawn(move || {
        stdin.write_all(b"1\n\"").unwrap();
        let chunk = vec![b'a'; 1 << 20];
        for _ in 0..600 {
            stdin.write_all(&chunk).unwrap();
        }
        stdin.write_all(b"\"\n2\n").unwrap();
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(text(&out.stdout), "1\n2\n", "{stderr}");
    assert!(stderr.contains("stdin line 2 has"), "{stderr}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // The largest child this test process has waited for (every other test's children are
    // small): well under the line's size.
    let peak = children_peak_rss();
    assert!(peak < 400 << 20, "the run held {} MiB for a 600 MiB line", peak >> 20);
}

/// The peak resident memory of the largest child this process has waited for, in bytes.
fn children_peak_rss() -> u64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` is a valid place for the result.
    let usage = unsafe {
        assert_eq!(libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()), 0);
        usage.assume_init()
    };
    usage.ru_maxrss as u64 * 1024
}

#[test]
fn ctrl_c_ends_the_run_at_once_even_while_stdout_is_not_read() {
    let mut child = start_cli(&["run", guest("echo").to_str().unwrap()], &test_cache());
    // 4 MiB of answers for a stdout nobody reads: the pipe (64 KiB) fills, the writer blocks.
    let line = format!("\"{}\"\n", "x".repeat(1000));
    let mut stdin = child.stdin.take().unwrap();
    for _ in 0..4096 {
        stdin.write_all(line.as_bytes()).unwrap();
    }
    // Reading our input means the run is under way, its Ctrl-C handler set.
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "Ctrl-C did not end the run");
        std::thread::yield_now();
    };
    assert_eq!(status.code(), Some(130));
    drop(stdin);
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(stderr.contains("interrupted"), "{stderr}");
}

#[test]
fn a_closed_stdout_ends_the_run_quietly_and_what_was_not_written_is_not_delivered() {
    let mut child = start_cli(&["run", guest("echo").to_str().unwrap(), "--stats"], &test_cache());
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    // Read the first answer, then go away, as `| head -1` does.
    stdin.write_all(b"1\n").unwrap();
    let mut first = [0u8; 2];
    stdout.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"1\n");
    drop(stdout);
    let feeder = std::thread::spawn(move || {
        for i in 0..100_000 {
            if writeln!(stdin, "{i}").is_err() {
                break;
            }
        }
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(!stderr.lines().any(|l| l.starts_with("error:")), "{stderr}");
    assert!(!stderr.contains("were not delivered"), "quietly: {stderr}");
    // `messages: P posted, D delivered, ...`: the unwritten are dropped, not delivered.
    let counts = stderr.lines().find(|l| l.starts_with("messages:")).expect("--stats counts messages");
    assert!(counts.contains("not written (output closed)"), "{counts}");
}

#[test]
fn connects_waiting_for_a_shared_worker_are_charged_to_the_client() {
    let host = new_host();
    // The shared worker `loop-busy` never returns from its first `on-connect`: every later
    // connect waits in its queue. The client pays for each server end waiting there.
    // (Its deadline, the client's, ends the loop soon after the test.)
    let limits = Limits { memory: Some(4 << 20), deadline: Some(Duration::from_secs(2)), ..Default::default() };
    let mut client = spawn_with(&host, "hostile", "connector", limits);
    post(&client, json!({ "connect-flood": { "name": "loop-busy", "count": 1_000_000 } }));
    let reply = next_json(&mut client);
    assert!(reply["connected"].as_u64().unwrap() < 1_000_000, "{reply}");
    assert!(reply["error"].as_str().unwrap().contains("memory limit"), "{reply}");
    client.terminate();
}

#[test]
fn a_post_larger_than_the_receiver_accepts_is_too_large_even_when_the_sender_is_short_of_room() {
    let host = new_host();
    // 10 MiB from a worker with a 16 MiB budget (it holds the bytes already), to a parent that
    // takes 1 MiB: too large, not "queue full" (which would say: try again).
    let limits = Limits { memory: Some(16 << 20), message_size: Some(1 << 20), ..Default::default() };
    let mut worker = spawn_with(&host, "hostile", "short", limits);
    post(&worker, json!({ "post": 10 << 20 }));
    let reply = next_json(&mut worker);
    assert!(reply.as_str().unwrap().contains("larger than the receiver accepts"), "{reply}");
}

#[test]
fn hard_links_of_one_component_are_one_component() {
    let host = new_host();
    let dir = temp_dir("hard-links");
    std::fs::copy(guest("echo"), dir.join("a.wasm")).unwrap();
    std::fs::hard_link(dir.join("a.wasm"), dir.join("b.wasm")).unwrap();
    let a = host.load(dir.join("a.wasm")).unwrap();
    let b = host.load(dir.join("b.wasm")).unwrap();
    assert!(a.same_compilation(&b), "one file, one compilation");
    // Each under its own name: `location()` and the directory its children come from.
    assert!(b.location().ends_with("b.wasm"), "{}", b.location());
    assert!(host.load(dir.join("a.wasm")).unwrap().ptr_eq(&a), "one name, one component");
    // A file that fails to load leaves nothing behind, and loads once it is fixed.
    std::fs::write(dir.join("c.wasm"), b"not yet").unwrap();
    assert!(host.load(dir.join("c.wasm")).is_err());
    std::fs::copy(guest("echo"), dir.join("c.wasm")).unwrap();
    assert!(host.load(dir.join("c.wasm")).is_ok());
}

#[test]
fn a_run_that_goes_quiet_writes_everything_its_worker_said_first() {
    // The worker says 50,000 things after the last line of stdin, then waits with nothing to
    // do, while nobody reads stdout yet: the run is quiet with its output still on its way,
    // and must not end before stdout has it all.
    let mut child = start_cli(&["run", guest("hostile").to_str().unwrap()], &test_cache());
    child.stdin.take().unwrap().write_all(b"{\"say\": 50000}\n").unwrap();
    // Its own stderr line says it has said everything.
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    while !said.contains("said 50000") {
        said.clear();
        assert!(std::io::BufRead::read_line(&mut stderr, &mut said).unwrap() > 0, "the run ended first");
    }
    let mut got = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut got).unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    let stderr = rest;
    assert!(status.success(), "{stderr}");
    let expected: String = (0..50_000).map(|i| format!("{i}\n")).collect();
    assert!(text(&got) == expected, "{} lines of 50000: {stderr}", text(&got).lines().count());
    assert!(!stderr.contains("not delivered"), "{stderr}");
}
