//! Workers in JavaScript and Python, as a user builds and runs them: the chapter's examples
//! written in JavaScript, mixed graphs of JavaScript and Rust workers, Python workers, and
//! conformance tests in the style of the Web Platform Tests (`guests/js/wpt/`), all through
//! the `wasm-workers` command.
//!
//! Every script is built with `wasm_workers::scripts` (componentize-js, componentize-py),
//! once per content for the whole suite (see `guest_build::js_bundle`).

mod support;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use support::{gathered, guest, host, js_bundle, next_json, py_guest, temp_dir, text, wasm_workers};
use wasm_workers::{Codec, Message, WorkerOptions};

fn run(component: &Path, stdin: &str) -> (Vec<Value>, String, Option<i32>) {
    let out = wasm_workers(&["run", component.to_str().unwrap()], stdin);
    let stderr = text(&out.stderr);
    let lines = text(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}\nstderr: {stderr}")))
        .collect();
    (lines, stderr, out.status.code())
}

fn numbers(values: &[Value]) -> Vec<u64> {
    values.iter().map(|v| v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))).collect()
}

#[test]
fn the_chapters_primes_worker_in_javascript_finds_what_the_rust_one_finds() {
    let search = "{\"limit\": 1000}\n";
    let (js, stderr, code) = run(&js_bundle("primes").join("primes.wasm"), search);
    assert_eq!(code, Some(0), "{stderr}");
    let (rust, _, _) = run(&guest("primes"), search);
    assert_eq!(numbers(&js).len(), 168, "{stderr}");
    assert_eq!(js, rust);
}

#[test]
fn the_chapters_shared_worker_demo_in_javascript_greets_two_pages_from_one_instance() {
    let (lines, stderr, code) = run(&js_bundle("shared").join("page.wasm"), "");
    assert_eq!(code, Some(0), "{stderr}");
    let mut lines: Vec<String> = lines.iter().map(|v| v.as_str().unwrap().to_string()).collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "page 1: Hello World! You are connection #1",
            "page 1: pong",
            "page 2: Hello World! You are connection #2",
            "page 2: pong",
        ],
        "{stderr}"
    );
}

#[test]
fn the_chapters_delegation_example_in_javascript_runs_as_written() {
    // worker.js starts ten core.js sub-workers of a million items each.
    let (lines, stderr, code) = run(&js_bundle("delegation").join("worker.wasm"), "");
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(numbers(&lines), [10_000_000], "{stderr}");
}

#[test]
fn a_rust_worker_delegates_to_javascript_cores() {
    let dir = gathered("rust-js-delegation", &[guest("delegation")]);
    std::fs::copy(js_bundle("prime-core").join("core.wasm"), dir.join("core.wasm")).unwrap();
    let (lines, stderr, code) = run(&dir.join("delegation.wasm"), "{\"n\": 100000, \"k\": 4}\n");
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(numbers(&lines), [9592], "{stderr}");
}

#[test]
fn a_javascript_worker_passes_a_port_and_a_buffer_to_a_rust_child_and_gets_them_back() {
    let dir = gathered("js-rust-mixed", &[guest("bounce"), guest("echo"), js_bundle("mixed").join("mixed.wasm")]);
    let (lines, stderr, code) = run(&dir.join("mixed.wasm"), "\"bounce\"\n");
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        lines,
        [serde_json::json!({
            "data": { "hello": "rust" },
            "port": "through the port",
            "bytes": [1, 2, 3, 4],
            "detached": true,
        })],
        "{stderr}"
    );
}

#[test]
fn a_rust_worker_moves_a_port_between_two_javascript_children_while_numbers_stream_through_it() {
    let dir =
        gathered("rust-js-port-move", &[guest("port-mover"), js_bundle("port-counter").join("port_counter.wasm")]);
    let n = 10_000u64;
    let (lines, stderr, code) = run(&dir.join("port_mover.wasm"), &format!("{{\"n\": {n}}}\n"));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(lines.len(), 1, "{lines:?}\n{stderr}");
    let (first, second) = (&lines[0]["first"], &lines[0]["second"]);
    assert_eq!(first["in-order"], true, "{first}");
    assert_eq!(second["in-order"], true, "{second}");
    assert_eq!(first["count"].as_u64().unwrap() + second["count"].as_u64().unwrap(), n, "{first} {second}");
    let next = first["last"].as_u64().map_or(0, |last| last + 1);
    assert_eq!(second["first"].as_u64(), Some(next), "the second goes on where the first stopped");
    assert_eq!(second["last"].as_u64(), Some(n - 1));
}

#[test]
fn a_rust_worker_sent_a_structured_clone_it_cannot_read_gets_a_message_error() {
    let dir = gathered("js-rust-clone", &[guest("echo"), js_bundle("mixed").join("mixed.wasm")]);
    let (lines, stderr, code) = run(&dir.join("mixed.wasm"), "\"map\"\n");
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(lines.len(), 1, "{stderr}");
    let why = lines[0]["message-error"].as_str().unwrap_or_else(|| panic!("not a message error: {}", lines[0]));
    assert!(why.contains("structured-clone"), "{why}");
}

#[test]
fn python_workers_double_numbers_and_count_primes_for_a_rust_worker() {
    let (lines, stderr, code) = run(&py_guest("doubler"), "1\n21\n");
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(numbers(&lines), [2, 42], "{stderr}");

    let dir = gathered("rust-py-delegation", &[guest("delegation")]);
    std::fs::copy(py_guest("core"), dir.join("core.wasm")).unwrap();
    let (lines, stderr, code) = run(&dir.join("delegation.wasm"), "{\"n\": 100000, \"k\": 4}\n");
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(numbers(&lines), [9592], "{stderr}");
}

/// Spawns `component` (an `answers` script: it answers each message with what it saw), posts
/// it messages with malformed JSON between good ones, all at once (so that they share bursts),
/// and returns its answers.
fn answers_to_malformed_messages(component: &Path) -> Vec<Value> {
    let component = host().load(component).expect("the script's component loads");
    let mut worker = host().spawn(&component, WorkerOptions::default()).unwrap();
    let sent: [&[u8]; 5] = [b"{bad", b"1", b"{worse", b"[2]", b"{worst"];
    for data in sent {
        worker.post_message(Message::new(Codec::Json, data.to_vec())).unwrap();
    }
    sent.iter().map(|_| next_json(&mut worker)).collect()
}

#[test]
fn javascript_and_python_workers_get_each_malformed_message_as_a_message_error_in_its_place() {
    let js = answers_to_malformed_messages(&js_bundle("answers").join("answers.wasm"));
    let error = json!({ "messageerror": true });
    assert_eq!(js, [error.clone(), json!({ "data": 1 }), error.clone(), json!({ "data": [2] }), error]);

    let py = answers_to_malformed_messages(&py_guest("answers"));
    for (i, expected) in [(1, json!({ "data": 1 })), (3, json!({ "data": [2] }))] {
        assert_eq!(py[i], expected, "{py:?}");
    }
    for i in [0, 2, 4] {
        let why = py[i]["messageerror"].as_str().unwrap_or_else(|| panic!("not a message error: {py:?}"));
        assert!(why.contains("malformed JSON"), "{why}");
    }
}

/// Runs one conformance test script of `guests/js/wpt/` and checks that each of its tests
/// passed, and that there were `expected` of them.
fn conformance(script: &str, expected: usize) {
    let (lines, stderr, code) = run(&js_bundle("wpt").join(format!("{script}.wasm")), "");
    let results: Vec<&Value> = lines.iter().filter(|line| line.get("test").is_some()).collect();
    let failed: Vec<&&Value> = results.iter().filter(|r| r["status"] != "PASS").collect();
    assert!(failed.is_empty(), "{script}: {failed:#?}\nstderr: {stderr}");
    assert_eq!(results.len(), expected, "{script}: {lines:#?}\nstderr: {stderr}");
    assert_eq!(lines.last().and_then(|l| l.get("done")), Some(&Value::from(expected)), "{stderr}");
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn conformance_close_discards_queued_messages_and_pending_timers() {
    conformance("close-queued", 2);
}

#[test]
fn conformance_terminate_discards_the_event_queue() {
    conformance("terminate", 1);
}

#[test]
fn conformance_message_ports() {
    conformance("ports", 4);
}

#[test]
fn conformance_transfer_and_data_clone_errors() {
    conformance("transfer", 4);
}

#[test]
fn conformance_structured_clone_between_javascript_workers() {
    conformance("clone", 10);
}

#[test]
fn conformance_nested_workers_and_the_global_scope() {
    conformance("nested", 3);
}

#[test]
fn conformance_a_shared_workers_onconnect() {
    conformance("shared", 1);
}

#[test]
fn conformance_errors_reach_self_onerror_then_the_parent() {
    conformance("errors", 3);
}

#[test]
fn the_structured_clone_codec_passes_its_own_tests_under_node() {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-js/test/structured-clone.test.mjs");
    let out = std::process::Command::new("node")
        .arg("--test")
        .arg(&tests)
        .output()
        .expect("node runs (Node.js 18 or later must be on PATH for the JavaScript workers)");
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    // And the scope that uses it parses (its imports are the component's, not Node's).
    let scope = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-js/scope.js");
    let out = std::process::Command::new("node").arg("--check").arg(&scope).output().expect("node runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn a_script_with_a_syntax_error_is_refused_at_build_with_its_line() {
    let dir = temp_dir("js-syntax-error");
    let script = dir.join("broken.js");
    std::fs::write(&script, "onmessage = function (e) {\n  postMessage(e.data;\n};\n").unwrap();
    let out =
        wasm_workers(&["build-js", script.to_str().unwrap(), "-o", dir.join("broken.wasm").to_str().unwrap()], "");
    let stderr = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("SyntaxError"), "{stderr}");
    assert!(stderr.contains("broken.js:2:"), "the line and column: {stderr}");
    assert!(!dir.join("broken.wasm").exists(), "nothing is built");
}

#[test]
fn a_script_that_throws_at_the_top_level_fails_the_run_with_its_line() {
    let (lines, stderr, code) = run(&js_bundle("wpt").join("top-level-child.wasm"), "");
    assert!(lines.is_empty(), "{lines:?}");
    assert_eq!(code, Some(1), "{stderr}");
    let error: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(error.len(), 1, "{stderr}");
    assert!(error[0].contains("RangeError: at the top"), "{stderr}");
    assert!(error[0].contains("top-level-child.wasm:2:"), "the line of the throw: {stderr}");
}

#[test]
fn a_bundle_of_one_script_runs_under_any_name() {
    let built: PathBuf = js_bundle("primes").join("primes.wasm");
    let dir = temp_dir("js-renamed");
    std::fs::copy(&built, dir.join("renamed.wasm")).unwrap();
    let (lines, stderr, code) = run(&dir.join("renamed.wasm"), "{\"limit\": 10}\n");
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(numbers(&lines), [2, 3, 5, 7], "{stderr}");
}
