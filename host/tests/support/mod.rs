//! What the integration tests share: the bundled guests (built once), hosts whose compiled
//! components come from one on-disk cache for the whole suite (each guest is compiled once,
//! not once per test binary or per host), spawning, waiting for events with a bound (a hung
//! worker fails its test instead of the run), running the CLI, and measuring memory.

#![allow(dead_code, reason = "each test binary uses a different part")]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::LazyLock;
use std::time::Duration;

use serde_json::Value;
use wasm_workers::{
    CloseReason, ErrorEvent, Host, HostConfig, Limits, Message, WorkerEvent, WorkerHandle, WorkerOptions,
};

/// How long any one event may take before a test fails. Generous: it only bounds a hang.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(120);

#[allow(unused_imports, reason = "each test binary uses a different part")]
pub use guest_build::{guest, guests_dir};

/// One host for the whole test binary.
pub fn host() -> &'static Host {
    static HOST: LazyLock<Host> = LazyLock::new(new_host);
    &HOST
}

/// A host of a test's own (so that no other test's workers are counted), with the suite's
/// compile cache.
pub fn new_host() -> Host {
    host_with(HostConfig::default())
}

/// A host with `config`, and the suite's compile cache unless `config` names another.
pub fn host_with(mut config: HostConfig) -> Host {
    config.cache_dir.get_or_insert_with(test_cache);
    Host::with_config(config).expect("the engine starts")
}

/// Spawns guest `guest_name` on `host` as `name`, with `limits`.
pub fn spawn_with(host: &Host, guest_name: &str, name: &str, limits: Limits) -> WorkerHandle {
    let component = host.load(guest(guest_name)).expect("the guest loads");
    host.spawn(&component, WorkerOptions { limits, ..WorkerOptions::named(name) }).expect("the worker starts")
}

/// This process's resident memory, in bytes.
pub fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: `sysconf` has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64
}

/// Spawns guest `name` on the shared host, named after it.
pub fn spawn(name: &str) -> WorkerHandle {
    let component = host().load(guest(name)).expect("the guest loads");
    host().spawn(&component, WorkerOptions::named(name)).expect("the worker starts")
}

/// Waits until `condition` holds, failing the test if it does not within [`EVENT_TIMEOUT`].
/// For conditions that no event announces (counters).
pub fn wait_until(mut condition: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    // Spins briefly, then yields between checks.
    let backoff = crossbeam_utils::Backoff::new();
    while !condition() {
        assert!(start.elapsed() < EVENT_TIMEOUT, "the condition did not hold within {EVENT_TIMEOUT:?}");
        backoff.snooze();
    }
}

/// Posts `value` as JSON.
pub fn post(worker: &WorkerHandle, value: Value) {
    worker.post_message(Message::json(&value).unwrap()).expect("the worker receives");
}

/// The worker's next event, failing the test if none comes within [`EVENT_TIMEOUT`].
pub fn next_event(worker: &mut WorkerHandle) -> Option<WorkerEvent> {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime =
            tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    }
    RUNTIME
        .with(|runtime| runtime.block_on(async { tokio::time::timeout(EVENT_TIMEOUT, worker.recv()).await }))
        .unwrap_or_else(|_| panic!("no event from worker `{}` within {EVENT_TIMEOUT:?}", worker.name()))
}

/// The next event, which must be a JSON message.
pub fn next_json(worker: &mut WorkerHandle) -> Value {
    match next_event(worker) {
        Some(WorkerEvent::Message(message)) => message.decode_json().expect("a JSON message"),
        other => panic!("expected a message from `{}`, got {other:?}", worker.name()),
    }
}

/// Waits for the worker's last event, which must be `Closed(reason)`.
pub fn expect_closed(worker: &mut WorkerHandle, reason: CloseReason) {
    match next_event(worker) {
        Some(WorkerEvent::Closed(got)) => assert_eq!(got, reason),
        other => panic!("expected `{}` to close ({reason:?}), got {other:?}", worker.name()),
    }
    assert!(next_event(worker).is_none(), "nothing comes after the last event");
}

/// Waits for the worker's last event, which must be an error.
pub fn expect_error(worker: &mut WorkerHandle) -> ErrorEvent {
    match next_event(worker) {
        Some(WorkerEvent::Error(error)) => error,
        other => panic!("expected `{}` to fail, got {other:?}", worker.name()),
    }
}

/// The next event on a port the host holds, failing the test if none comes in time.
pub fn next_port_event(port: &mut wasm_workers::MessagePort) -> Option<wasm_workers::PortEvent> {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime =
            tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    }
    RUNTIME
        .with(|runtime| runtime.block_on(async { tokio::time::timeout(EVENT_TIMEOUT, port.recv()).await }))
        .unwrap_or_else(|_| panic!("no event on a port within {EVENT_TIMEOUT:?}"))
}

/// The next message on a port, as JSON.
pub fn next_port_json(port: &mut wasm_workers::MessagePort) -> Value {
    match next_port_event(port) {
        Some(wasm_workers::PortEvent::Message(message)) => message.decode_json().expect("a JSON message"),
        other => panic!("expected a message on the port, got {other:?}"),
    }
}

/// Posts `value` as JSON on a port.
pub fn port_post(port: &wasm_workers::MessagePort, value: Value) {
    port.post_message(Message::json(&value).unwrap()).expect("the port is open");
}

/// The next event, which must be a message; returned whole, with its transfers.
pub fn next_message(worker: &mut WorkerHandle) -> Message {
    match next_event(worker) {
        Some(WorkerEvent::Message(message)) => message,
        other => panic!("expected a message from `{}`, got {other:?}", worker.name()),
    }
}

/// Runs the `wasm-workers` binary with `args`, `stdin` as its input, and the suite's compile
/// cache (so that tests do not share the user's).
pub fn wasm_workers(args: &[&str], stdin: &str) -> Output {
    wasm_workers_with_cache(args, stdin, &test_cache())
}

/// [`wasm_workers`] with raw bytes as stdin.
pub fn wasm_workers_bytes(args: &[&str], stdin: &[u8]) -> Output {
    finish(start_cli(args, &test_cache()), stdin)
}

/// [`wasm_workers`] with the compile cache in `cache`.
pub fn wasm_workers_with_cache(args: &[&str], stdin: &str, cache: &Path) -> Output {
    finish(start_cli(args, cache), stdin.as_bytes())
}

/// The suite's compile cache, in the build's own temporary directory: every test binary and
/// every run of the CLI in them shares it, so that each guest is compiled once.
pub fn test_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("compile-cache")
}

/// Starts the `wasm-workers` binary with `args`, stdin, stdout and stderr piped, and its
/// compile cache in `cache`, for a test that talks to it as it runs.
pub fn start_cli(args: &[&str], cache: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_wasm-workers"))
        .args(args)
        .env("WASM_WORKERS_CACHE_DIR", cache)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs")
}

/// Writes `stdin` to a started run, closes it, and waits for the run's output.
fn finish(mut child: std::process::Child, stdin: &[u8]) -> Output {
    // A command that fails early stops reading: a broken pipe here is not the test's concern.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    child.wait_with_output().unwrap()
}

/// Output as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A fresh directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wasm-workers-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The bundle of the JavaScript worker scripts of `guests/js/<example>/` (each `NAME.js` as
/// `NAME.wasm` in the returned directory), built once for the suite.
pub fn js_bundle(example: &str) -> PathBuf {
    guest_build::js_bundle(example, wasm_workers::scripts::fingerprint(), |scripts, out| {
        wasm_workers::scripts::build_js(scripts, out, None).map(drop).map_err(|e| e.to_string())
    })
}

/// The component built from the Python worker `guests/py/<name>/app.py`, built once for the
/// suite.
pub fn py_guest(name: &str) -> PathBuf {
    guest_build::py_guest(name, wasm_workers::scripts::fingerprint(), |module, out| {
        wasm_workers::scripts::build_py(module, out, None).map_err(|e| e.to_string())
    })
}

/// A fresh directory holding `files` (each copied from its path, under its file name): a
/// graph of components from several places, as one directory a worker reaches.
pub fn gathered(name: &str, files: &[PathBuf]) -> PathBuf {
    let dir = temp_dir(name);
    for file in files {
        std::fs::copy(file, dir.join(file.file_name().unwrap())).unwrap();
    }
    dir
}
