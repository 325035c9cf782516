//! The `wasm-workers` command, run as a user runs it.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use support::{guest, text, wasm_workers};

#[test]
fn run_round_trips_stdin_lines_through_the_echo_guest() {
    let echo = guest("echo");
    let out = wasm_workers(&["run", echo.to_str().unwrap()], "\"hello\"\n{\"n\": [1, 2]}\n\n42\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "\"hello\"\n{\"n\":[1,2]}\n42\n");
}

#[test]
fn run_skips_a_line_that_is_not_json_says_so_and_fails_at_the_end() {
    let echo = guest("echo");
    let out = wasm_workers(&["run", echo.to_str().unwrap()], "1\nnot json\n2\n");
    // Every other line is delivered; the run says which was lost, and does not pass for whole.
    assert_eq!(text(&out.stdout), "1\n2\n");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("stdin line 2 is not JSON"), "{stderr}");
    assert!(stderr.contains("error: 1 of the stdin lines were not delivered"), "{stderr}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
}

#[test]
fn run_ends_when_the_worker_closes() {
    let echo = guest("echo");
    // The worker closes after "close"; the rest of stdin is never read by it.
    let out = wasm_workers(&["run", echo.to_str().unwrap()], "\"a\"\n\"close\"\n\"b\"\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "\"a\"\n\"close\"\n");
}

#[test]
fn run_counts_primes_by_delegation() {
    let delegation = guest("delegation");
    let out = wasm_workers(&["run", delegation.to_str().unwrap()], "{\"n\": 1000000, \"k\": 4}\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "78498\n");
}

#[test]
fn run_passes_name_and_hardware_concurrency() {
    let scope = guest("scope");
    let out =
        wasm_workers(&["run", scope.to_str().unwrap(), "--name", "inspector", "--hardware-concurrency", "5"], "null\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|error| panic!("{error}: stdout {:?}, stderr {}", text(&out.stdout), text(&out.stderr)));
    assert_eq!(seen["name"], "inspector");
    assert_eq!(seen["hardware-concurrency"], 5);
}

#[test]
fn a_trapping_guest_exits_non_zero_with_one_error_line() {
    let faulty = guest("faulty");
    let out = wasm_workers(&["run", faulty.to_str().unwrap()], "\"ok\"\n\"panic\"\n\"never\"\n");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "\"ok\"\n", "stdout holds only the worker's messages");
    let stderr = text(&out.stderr);
    let error_lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(error_lines.len(), 1, "{stderr}");
    assert!(error_lines[0].contains("worker `faulty`"), "{stderr}");
    assert!(error_lines[0].contains("faulty worker panics on request"), "{stderr}");
    // The guest's own stderr is there too, prefixed with its name.
    assert!(stderr.contains("[faulty] panicked at"), "{stderr}");
}

#[test]
fn a_missing_or_corrupt_component_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("wasm-workers-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("missing.wasm");
    let corrupt = dir.join("corrupt.wasm");
    std::fs::write(&corrupt, b"this is not wasm at all").unwrap();
    let not_a_worker = guest("not-a-worker");
    for (path, expected) in [
        (&missing, "cannot read component"),
        (&corrupt, "is not a valid WebAssembly component"),
        (&not_a_worker, "is not a worker component"),
    ] {
        let out = wasm_workers(&["run", path.to_str().unwrap()], "");
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(stderr.contains(expected) && stderr.contains(path.file_name().unwrap().to_str().unwrap()), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_non_json_message_from_the_worker_never_reaches_stdout() {
    let faulty = guest("faulty");
    let out = wasm_workers(&["run", faulty.to_str().unwrap()], "\"bad-json\"\n\"bad-postcard\"\n\"fine\"\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "\"fine\"\n");
    assert_eq!(text(&out.stderr).matches("not well-formed JSON; skipped").count(), 2, "{}", text(&out.stderr));
}

#[test]
fn ctrl_c_terminates_a_busy_worker_and_exits_130() {
    use std::io::{BufRead, BufReader};

    let faulty = guest("faulty");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasm-workers"))
        .args(["run", "--stats", faulty.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // A watchdog: if the run ignores the signal, kill it, so that the test fails instead of
    // hanging.
    let pid = child.id().to_string();
    let (done, watchdog) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = watchdog.recv_timeout(support::EVENT_TIMEOUT) {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
    });
    // Two more lines wait behind the loop: the shutdown must account for them.
    stdin.write_all(b"\"ready\"\n\"loop\"\n\"queued\"\n\"queued\"\n").unwrap();
    // The first answer shows that the run loop, and with it the Ctrl-C handler, is running;
    // the second that the worker is inside its endless loop.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "\"ready\"\n");
    line.clear();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "\"looping\"\n");
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("interrupted"), "{stderr}");
    // Nothing is lost silently: every message posted is delivered or reported dropped.
    let line = stderr.lines().find(|line| line.starts_with("messages: ")).unwrap_or_else(|| panic!("{stderr}"));
    assert!(line.ends_with(", 0 in flight"), "{line}");
    let dropped: u64 =
        line.split(", ").nth(2).and_then(|part| part.split(' ').next()).and_then(|n| n.parse().ok()).unwrap();
    if dropped > 0 {
        assert!(stderr.contains(&format!("wasm-workers: {dropped} messages were not delivered")), "{stderr}");
    }
    drop(stdin);
    drop(done);
}

#[test]
fn each_message_is_one_line_even_if_the_guest_posts_pretty_json() {
    let faulty = guest("faulty");
    let out = wasm_workers(&["run", faulty.to_str().unwrap()], "\"pretty-json\"\n\"after\"\n");
    assert_eq!(text(&out.stdout), "{\"a\":[1,2]}\n\"after\"\n", "{}", text(&out.stderr));
}
