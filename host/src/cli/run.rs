//! `wasm-workers run`: one worker, or a worker graph, with stdin and stdout as the parent of
//! its (entry) worker.

use std::collections::VecDeque;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{mpsc, oneshot, watch};
use wasm_workers::{DropReason, Host, Message, PostError, WorkerEvent, WorkerHandle, WorkerOptions};

use super::stdin::{read_stdin, Input, Line};
use super::stdout::{write_stdout, Output};
use super::{RunArgs, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_OUTPUT_CLOSED};

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let host = args.engine.host(args.hardware_concurrency, args.memory_budget)?;
    // Joined before anything starts: a worker whose spawns are placed needs it from its start.
    let lattice = match args.lattice.options()? {
        Some(options) => {
            let lattice = wasm_workers::lattice::Lattice::connect(&options)?;
            lattice.place_from(&host)?;
            Some(lattice)
        }
        None => None,
    };
    let shared_failures = host.watch_shared_failures();
    let is_graph = args.path.extension().is_some_and(|ext| ext == "toml");
    let (entry, others) = if is_graph {
        if args.name.is_some() {
            anyhow::bail!("--name is for a single component: a graph's manifest names its workers");
        }
        let graph = super::graph::check(&args.path, &host)?;
        match graph.start(&host) {
            Ok(running) => (running.entry, running.others),
            Err(error) => {
                // Some workers may have run: this is a failure of the run, not of its input.
                eprintln!("error: cannot start the graph: {error}");
                return Ok(ExitCode::from(EXIT_FAILED));
            }
        }
    } else {
        let component = host.load(&args.path)?;
        let name = args.name.clone().unwrap_or_else(|| {
            args.path.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default()
        });
        (host.spawn(&component, WorkerOptions::named(name))?, Vec::new())
    };
    // A line longer than the entry worker accepts is refused as it is read, so that reading
    // holds at most about that much.
    let max_line = entry.limits().message_size.unwrap_or(wasm_workers::DEFAULT_MESSAGE_SIZE);
    let lines = read_stdin(max_line).context("cannot start the stdin reader")?;
    let (output, written) = write_stdout().context("cannot start the stdout writer")?;
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")?;
    let (code, lost) = runtime.block_on(drive(&host, entry, others, lines, output, written, shared_failures));
    if args.stats {
        print_stats(&host);
        if let Some(lattice) = &lattice {
            print_lattice_stats(&host, lattice);
        }
    }
    drop(lattice);
    // Nothing is lost silently: a run that ended with messages undelivered says so (but for
    // a run whose stdout was closed: its reader chose to stop, as `head` does, and what the
    // workers had on their way is lost by that choice; `--stats` still counts it).
    let counts = host.message_counts();
    if counts.dropped.total() > 0 && code != EXIT_OUTPUT_CLOSED {
        eprintln!("wasm-workers: {} messages were not delivered ({})", counts.dropped.total(), counts.dropped);
    }
    let code = if lost.total() > 0 {
        eprintln!("error: {} of the stdin lines were not delivered ({lost})", lost.total());
        if code == EXIT_OK {
            EXIT_FAILED
        } else {
            code
        }
    } else {
        code
    };
    // The stdin thread may be blocked in a read, and the stdout thread in a write, that
    // cannot be cancelled; do not wait for them.
    runtime.shutdown_background();
    Ok(ExitCode::from(code))
}

/// Stdin lines that were read but not delivered to the entry worker, by why.
#[derive(Debug, Default)]
struct LostLines {
    not_utf8: u64,
    not_json: u64,
    too_long: u64,
    refused: u64,
}

impl LostLines {
    fn total(&self) -> u64 {
        self.not_utf8 + self.not_json + self.too_long + self.refused
    }
}

impl std::fmt::Display for LostLines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} not UTF-8, {} not JSON, {} too long, {} refused by the worker",
            self.not_utf8, self.not_json, self.too_long, self.refused
        )
    }
}

/// Feeds stdin to the entry worker and its messages to stdout until it ends; then ends the
/// other workers of a graph. Returns the exit code, and the stdin lines that were lost.
///
/// Stdin is read only as fast as the entry worker takes it: a line waits while the worker's
/// queue is full (backpressure), so none is refused for that. Its messages wait for stdout
/// in a bounded channel; while that is full, they wait in the worker's side of the handle
/// (bounded by its queue limits, past which the worker's posts are refused and counted).
/// Nothing here blocks on stdout or stdin: Ctrl-C is always heard.
async fn drive(
    host: &Host,
    mut entry: WorkerHandle,
    others: Vec<(String, WorkerHandle)>,
    mut lines: mpsc::Receiver<Input>,
    output: Output,
    written: oneshot::Receiver<u64>,
    mut shared_failures: tokio::sync::broadcast::Receiver<wasm_workers::ErrorEvent>,
) -> (u8, LostLines) {
    let mut lost = LostLines::default();
    let mut shared_failed = false;
    // Registered now, before anything runs, so that no Ctrl-C is missed.
    let mut ctrl_c = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()) {
        Ok(signal) => signal,
        Err(error) => {
            eprintln!("error: cannot watch for Ctrl-C: {error}");
            entry.terminate();
            return (EXIT_FAILED, lost);
        }
    };
    let (stop, stopped) = watch::channel(false);
    let watchers: Vec<_> =
        others.into_iter().map(|(key, worker)| tokio::spawn(watch_other(key, worker, stopped.clone()))).collect();

    let name = entry.name().to_string();
    let room = entry.room();
    let mut stdin_open = true;
    // Lines read and not yet posted, and the message of the first, waiting for room.
    let mut pending: VecDeque<Line> = VecDeque::new();
    let mut held: Option<Message> = None;
    let mut interrupted = false;
    let mut code = loop {
        feed(&entry, &room, &mut pending, &mut held, &mut lost);
        let held_len = held.as_ref().map_or(0, |m| m.data.len());
        let output_ready = output.ready();
        tokio::select! {
            // The entry worker's events first: its last event (an error, say) wins over the
            // quiet that follows it.
            biased;
            _ = ctrl_c.recv() => {
                entry.terminate();
                interrupted = true;
                eprintln!("wasm-workers: interrupted; the workers were terminated");
                break EXIT_INTERRUPTED;
            }
            // The reader of stdout went away (`| head`): the run ends quietly.
            () = output.lines.closed() => {
                entry.terminate();
                break EXIT_OUTPUT_CLOSED;
            }
            event = entry.recv(), if output_ready => match event {
                Some(WorkerEvent::Message(message)) => match message.as_json_text() {
                    Some(text) => {
                        // One message, one line: JSON with line breaks (pretty-printed) is
                        // written compact. Outside strings, a line break is only whitespace.
                        let text = if text.contains(['\n', '\r']) {
                            serde_json::from_str::<serde_json::Value>(text)
                                .map(|value| value.to_string())
                                .unwrap_or_else(|_| text.replace(['\n', '\r'], " "))
                        } else {
                            text.to_string()
                        };
                        if !output.send(text) {
                            // The writer has just gone: this one is not written either.
                            host.count_lost(1);
                        }
                    }
                    None => eprintln!(
                        "wasm-workers: worker `{name}` posted a {} message of {} bytes, which is not well-formed JSON; skipped",
                        message.codec,
                        message.data.len()
                    ),
                },
                Some(WorkerEvent::Error(error)) => {
                    eprintln!("error: {error}");
                    break EXIT_FAILED;
                }
                Some(WorkerEvent::Closed(reason)) => {
                    tracing::debug!(?reason, "entry worker ended");
                    break EXIT_OK;
                }
                // The worker's thread went away without saying how: a host failure.
                None => {
                    eprintln!("error: worker `{name}` ended without a last event");
                    break EXIT_FAILED;
                }
            },
            // Stdout has caught up a little: go back to taking the worker's messages.
            () = output.queued.drained.notified(), if !output_ready => {}
            Ok(error) = shared_failures.recv() => {
                // A shared worker of the run failed: said now, and the run fails at its end.
                eprintln!("error: {error}");
                shared_failed = true;
            }
            // The worker has taken what was queued: post the line that waited.
            () = room.wait(held_len), if held.is_some() => {}
            input = lines.recv(), if stdin_open && pending.is_empty() && held.is_none() => match input {
                Some(Input::Lines(batch)) => pending.extend(batch),
                Some(Input::Failed(error)) => {
                    eprintln!("wasm-workers: cannot read stdin: {error}");
                    stdin_open = false;
                    entry.end_input();
                }
                None => {
                    stdin_open = false;
                    entry.end_input();
                }
            },
            // Stdin has ended and every worker waits for another: nothing can happen any more
            // (workers holding ports to each other, a shared worker with its clients).
            // (Only once its messages are all written: they are not lost by ending.)
            () = host.quiescent(), if !stdin_open && pending.is_empty() && held.is_none() && output_ready && entry.pending_events() == 0 => {
                // The entry's last message may have come between the poll of its events above
                // and this one: it was sent before its worker went quiet, so it shows here.
                if entry.pending_events() > 0 {
                    continue;
                }
                tracing::debug!("every worker waits and no input is left: the run is over");
                entry.terminate();
                break EXIT_OK;
            }
        }
    };
    // The entry worker has ended: so does the rest of the graph. Another worker's failure
    // (reported on stderr when it happened) fails the run.
    let _ = stop.send(true);
    let wind_down = async {
        let mut failed = false;
        for watcher in watchers {
            failed |= matches!(watcher.await, Ok(true));
        }
        // Wait for the entry worker's last event, so that its statistics are final.
        while let Some(event) = entry.recv().await {
            if let WorkerEvent::Message(_) = event {
                // The run is over: what it still posts is not written.
                host.count_lost(1);
            }
        }
        failed
    };
    // Terminated workers stop at their next epoch check; one blocked in a host call (a long
    // sleep) does not, and an interrupted run does not wait for it. Ctrl-C is heard here too.
    let mut failed = false;
    tokio::select! {
        done = async {
            if interrupted {
                tokio::time::timeout(INTERRUPT_GRACE, wind_down).await.unwrap_or(false)
            } else {
                wind_down.await
            }
        } => failed = done,
        _ = ctrl_c.recv(), if !interrupted => {
            eprintln!("wasm-workers: interrupted; the workers were terminated");
            interrupted = true;
            code = EXIT_INTERRUPTED;
        }
    }
    if failed && code == EXIT_OK {
        code = EXIT_FAILED;
    }
    // What the writer could not write was received, not delivered.
    drop(output);
    let grace = if interrupted { INTERRUPT_GRACE } else { Duration::MAX };
    tokio::select! {
        // Still blocked in a write (interrupted while stdout was not read), it is left behind.
        written = tokio::time::timeout(grace, written) => {
            if let Ok(Ok(unwritten)) = written {
                host.count_lost(unwritten);
            }
        }
        _ = ctrl_c.recv(), if !interrupted => {
            eprintln!("wasm-workers: interrupted");
            code = EXIT_INTERRUPTED;
        }
    }
    while let Ok(error) = shared_failures.try_recv() {
        eprintln!("error: {error}");
        shared_failed = true;
    }
    if shared_failed && code == EXIT_OK {
        code = EXIT_FAILED;
    }
    (code, lost)
}

/// How long an interrupted run waits for its workers and its stdout before it exits.
const INTERRUPT_GRACE: Duration = Duration::from_millis(500);

/// Posts the pending stdin lines, in order, until one must wait for room in the entry
/// worker's queue (it is then `held`) or none is left.
fn feed(
    entry: &WorkerHandle,
    room: &wasm_workers::QueueRoom,
    pending: &mut VecDeque<Line>,
    held: &mut Option<Message>,
    lost: &mut LostLines,
) {
    loop {
        let message = match held.take() {
            Some(message) => message,
            None => {
                let Some(line) = pending.pop_front() else {
                    return;
                };
                match line {
                    Line::TooLong { number, len } => {
                        eprintln!(
                            "wasm-workers: stdin line {number} has {len} bytes or more, more than worker `{}` accepts; skipped",
                            entry.name()
                        );
                        lost.too_long += 1;
                        continue;
                    }
                    Line::Text { number, bytes } => {
                        let Ok(text) = std::str::from_utf8(&bytes) else {
                            eprintln!("wasm-workers: stdin line {number} is not UTF-8, skipped");
                            lost.not_utf8 += 1;
                            continue;
                        };
                        if text.trim().is_empty() {
                            continue;
                        }
                        match Message::json_text(text) {
                            Ok(message) => message,
                            Err(error) => {
                                eprintln!("wasm-workers: stdin line {number} is not JSON, skipped: {error}");
                                lost.not_json += 1;
                                continue;
                            }
                        }
                    }
                }
            }
        };
        if !room.has_room(message.data.len()) {
            *held = Some(message);
            return;
        }
        match entry.try_post_message(message) {
            Ok(()) => {}
            // Another sender (a child) took the room first: wait again (nothing was counted).
            Err(PostError { reason: DropReason::QueueFull, message, .. })
                if message.data.len() <= max_queued(entry) =>
            {
                *held = Some(message);
                return;
            }
            // A worker that has ended receives nothing more; its last event tells how it
            // ended, and the lines it did not take were its own choice (it closed).
            Err(PostError { reason: DropReason::ReceiverGone | DropReason::InputEnded, .. }) => {}
            Err(error) => {
                eprintln!("wasm-workers: {error}; a stdin line was not delivered");
                lost.refused += 1;
            }
        }
    }
}

/// The most bytes the entry worker's queue holds.
fn max_queued(entry: &WorkerHandle) -> usize {
    entry.limits().queued_bytes.unwrap_or(wasm_workers::DEFAULT_QUEUED_BYTES)
}

/// Follows a worker of a graph other than the entry: reports its failure, terminates it when
/// the run stops, and returns whether it failed.
async fn watch_other(key: String, mut worker: WorkerHandle, mut stop: watch::Receiver<bool>) -> bool {
    let mut failed = false;
    let mut stopping = false;
    loop {
        tokio::select! {
            event = worker.recv() => match event {
                Some(WorkerEvent::Message(message)) => {
                    tracing::debug!(worker = %key, ?message, "message to the graph (not output)");
                }
                Some(WorkerEvent::Error(error)) => {
                    eprintln!("error: {error}");
                    failed = true;
                }
                Some(WorkerEvent::Closed(_)) | None => return failed,
            },
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    worker.terminate();
                }
            }
        }
    }
}

/// Prints the ledgers of the lattice hosts this run's workers ran on, as they advertise them
/// (each since it joined), and their sum with this host's, to stderr. A host advertises every
/// second: the ledgers are read once every host used has nothing in flight (its last
/// workers' ends are counted), or after three seconds, whichever comes first; what is still
/// in flight is said.
fn print_lattice_stats(host: &Host, lattice: &wasm_workers::lattice::Lattice) {
    let used: std::collections::BTreeSet<String> = host.stats().into_iter().filter_map(|report| report.host).collect();
    let mut out = std::io::stderr().lock();
    let settled = |info: &wasm_workers::lattice::HostInfo| info.posted == info.delivered + info.dropped;
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let hosts = loop {
        let hosts = match lattice.hosts() {
            Ok(hosts) => hosts,
            Err(error) => {
                let _ = writeln!(out, "lattice: {error}");
                return;
            }
        };
        let used_hosts: Vec<_> = hosts.into_iter().filter(|info| used.contains(&info.id)).collect();
        if used_hosts.iter().all(settled) || std::time::Instant::now() >= deadline {
            break used_hosts;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let counts = host.message_counts();
    let (mut posted, mut delivered, mut dropped) = (counts.posted, counts.delivered, counts.dropped.total());
    for info in &hosts {
        let _ = writeln!(
            out,
            "host {}: {} posted, {} delivered, {} dropped (since it joined)",
            info.id, info.posted, info.delivered, info.dropped
        );
        posted += info.posted;
        delivered += info.delivered;
        dropped += info.dropped;
    }
    let in_flight = posted.saturating_sub(delivered + dropped);
    let _ = writeln!(
        out,
        "lattice: {posted} posted, {delivered} delivered, {dropped} dropped, {in_flight} in flight, over this host and those"
    );
}

/// Prints what each worker did, and what the engine compiled, to stderr.
fn print_stats(host: &Host) {
    let reports = host.stats();
    let mut out = std::io::stderr().lock();
    let _ = writeln!(
        out,
        "{:<16} {:<22} {:>8} {:>8} {:>10} {:>10} {:>10} {:>10}  {:<12} ended",
        "worker", "component", "msgs in", "msgs out", "bytes in", "bytes out", "cpu", "peak mem", "host"
    );
    for report in &reports {
        let component = std::path::Path::new(&report.location)
            .file_name()
            .map_or(report.location.clone(), |f| f.to_string_lossy().into_owned());
        let _ = writeln!(
            out,
            "{:<16} {:<22} {:>8} {:>8} {:>10} {:>10} {:>10} {:>10}  {:<12} {}",
            if report.name.is_empty() { "(unnamed)" } else { &report.name },
            component,
            report.messages_in,
            report.messages_out,
            report.bytes_in,
            report.bytes_out,
            format!("{:.1}ms", report.cpu_time.as_secs_f64() * 1000.0),
            format!("{} KiB", report.peak_memory / 1024),
            report.host.as_deref().unwrap_or("(here)"),
            report.ended.as_deref().unwrap_or("running"),
        );
    }
    let (compiled, cached) = host.compile_counts();
    let _ = writeln!(out, "components: {compiled} compiled, {cached} from the cache");
    let counts = host.message_counts();
    let _ = writeln!(
        out,
        "messages: {} posted, {} delivered, {} dropped ({}), {} in flight",
        counts.posted,
        counts.delivered,
        counts.dropped.total(),
        counts.dropped,
        counts.in_flight()
    );
}
