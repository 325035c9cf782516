//! The bodies of the fuzz targets, as plain functions: the targets in `fuzz_targets/` call
//! them with libFuzzer's inputs, and the host's test `fuzz_corpus` (which includes this file)
//! calls them with every seed in `seeds/`, on stable Rust and without cargo-fuzz.
//!
//! Each takes arbitrary bytes from outside, drives them through the host's paths that such
//! bytes take, and panics only if the host misbehaves (a panic of its own, or a broken
//! invariant checked here): an invalid input must be an error, never a crash.

use std::path::Path;

use serde_json::Value;
use wasm_workers::{Codec, DecodeError, Manifest, Message};

/// A manifest as `Manifest::read` would get it (its text), parsed, then validated as far as
/// that needs neither the filesystem nor an engine; errors are formatted as the CLI does.
pub fn manifest(data: &[u8]) {
    // `Manifest::read` refuses a file that is not UTF-8; the lossy text reaches `parse` too.
    let text = String::from_utf8_lossy(data);
    let lines = text.matches('\n').count() + 1;
    let result = Manifest::parse(&text, Path::new("graphs/fuzz.toml")).and_then(|manifest| manifest.validate());
    if let Err(error) = result {
        let shown = error.to_string();
        assert!(shown.starts_with("graphs/fuzz.toml"), "the error names its file: {shown}");
        if let Some(line) = error.line {
            assert!((1..=lines).contains(&line), "line {line} of a text of {lines} lines: {shown}");
        }
    }
}

/// Bytes from outside becoming a message, every way the host lets them:
///
/// - a stdin line of `wasm-workers run` (`Message::json_text`, for each line as `lines()`
///   splits stdin, and for the whole text as a library caller may pass it);
/// - the data of a message a guest posts, in each codec (`Message::new`), then what the host
///   does with it: its JSON check (`as_json_text`, which also gives the run's output),
///   `decode_json` (as pools and streams read answers), its `Debug` form (the tracing of a
///   graph's other workers).
pub fn message(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        json_text(text);
        // `BufRead::lines`, as the CLI reads stdin: split at `\n`, a trailing `\r` dropped.
        for line in text.lines() {
            if !line.trim().is_empty() {
                json_text(line);
            }
        }
    }
    for codec in [Codec::Json, Codec::Postcard, Codec::Raw] {
        posted(Message::new(codec, data));
    }
}

/// A stdin line (or any text) as a JSON message: accepted exactly when it is well-formed, and
/// then the same message as one a guest posts with that text.
fn json_text(text: &str) {
    match Message::json_text(text) {
        Ok(message) => {
            assert_eq!(message.codec, Codec::Json);
            assert_eq!(message.as_json_text(), Some(text.trim()), "accepted text reads back as itself, trimmed");
            posted(message);
        }
        Err(_) => assert!(
            Message::new(Codec::Json, text.as_bytes()).as_json_text().is_none(),
            "text refused on stdin is not well-formed posted either"
        ),
    }
}

/// What the host does with a message whose data came from outside.
fn posted(message: Message) {
    let _ = format!("{message:?}");
    if let Some(text) = message.as_json_text() {
        assert_eq!(message.codec, Codec::Json, "only JSON messages have JSON text");
        assert_eq!(text.as_bytes(), message.data.as_slice());
        // What the run prints is accepted back as input.
        let again = Message::json_text(text).expect("the run's output is well-formed JSON");
        assert_eq!(again.data, text.trim().as_bytes());
    }
    match message.decode_json::<Value>() {
        Ok(value) => {
            assert_eq!(message.codec, Codec::Json);
            assert!(message.as_json_text().is_some(), "JSON that decodes is well-formed");
            // A pool's answer, and a stream's item, as `task` reads them.
            let _ = value.get("task").and_then(Value::as_u64);
            let _ = value.get("end").is_some();
            if let Some(item) = value.get("item") {
                let _ = serde_json::from_value::<Value>(item.clone());
            }
            // Re-encoded (as a worker's answer is), it is well-formed again. (Not always the
            // same value: serde_json's default float parsing is not exactly round-trip.)
            let encoded = Message::json(&value).expect("a JSON value encodes");
            assert!(encoded.as_json_text().is_some(), "a re-encoded value is well-formed");
        }
        Err(DecodeError::Codec { expected, found }) => {
            assert_eq!((expected, found), (Codec::Json, message.codec));
            assert_ne!(message.codec, Codec::Json);
        }
        Err(DecodeError::Data(_)) => assert_eq!(message.codec, Codec::Json),
    }
}

/// A hostile guest driven through the host calls `data` spells (its `ops` program: posts,
/// buffers made and transferred, channels made, posted on, closed and transferred, timers set
/// and cleared, children spawned, posted to and terminated), then ended. Checks the host's
/// invariants: no panic; the memory charged never above the host's budget; and once every
/// worker has ended and every message was read, the accounting exact (nothing in flight)
/// and every charge released.
pub fn host_calls(data: &[u8]) {
    use std::sync::LazyLock;
    use wasm_workers::{Host, HostConfig, Limits, WorkerEvent, WorkerOptions};

    /// The most bytes of one program: long enough for every kind of call many times.
    const MAX_PROGRAM: usize = 4096;
    static HOST: LazyLock<Host> = LazyLock::new(|| {
        let limits = Limits { memory: Some(32 << 20), children: Some(2), ..Limits::default() };
        let config =
            HostConfig { memory_budget: Some(256 << 20), max_workers: Some(64), limits, ..HostConfig::default() };
        Host::with_config(config).expect("the engine starts")
    });
    // One program at a time: the invariants are the whole host's (tests call this from
    // several threads).
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let host = &*HOST;
    let component = host.load(guest_build::guest("hostile")).expect("the hostile guest loads");
    let program: Vec<u8> = data.iter().take(MAX_PROGRAM).copied().collect();
    let mut worker = host.spawn(&component, WorkerOptions::named("chaos")).expect("the worker starts");
    let ops = Message::json(&serde_json::json!({ "ops": program })).expect("a program encodes");
    worker.post_message(ops).expect("the worker takes its program");
    // Until it is done, or the host ended it (a call past its budget traps).
    loop {
        assert!(host.memory_charged() <= host.memory_budget(), "charged past the host's budget");
        match worker.recv_blocking() {
            Some(WorkerEvent::Message(message)) if message.as_json_text() == Some("\"done\"") => break,
            // Transferred ports and buffers are dropped here: closed, freed.
            Some(WorkerEvent::Message(_)) => {}
            Some(WorkerEvent::Error(_) | WorkerEvent::Closed(_)) | None => break,
        }
    }
    worker.terminate();
    while worker.recv_blocking().is_some() {}
    drop(worker);
    let start = std::time::Instant::now();
    while host.live_workers() > 0 {
        assert!(start.elapsed() < std::time::Duration::from_secs(60), "workers did not end");
        std::thread::yield_now();
    }
    let counts = host.message_counts();
    assert_eq!(counts.in_flight(), 0, "every message delivered or dropped with a reason: {counts:?}");
    assert_eq!(host.memory_charged(), 0, "every charge released once its workers ended");
}
