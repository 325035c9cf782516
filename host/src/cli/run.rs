//! `wasm-workers run`: one worker, or a worker graph, with stdin and stdout as the parent of
//! its (entry) worker.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use anyhow::Context;
use tokio::sync::{mpsc, watch};
use wasm_workers::{Host, Message, WorkerEvent, WorkerHandle, WorkerOptions};

use super::{RunArgs, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK};

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let host = args.engine.host(args.hardware_concurrency)?;
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
    let lines = read_stdin_lines().context("cannot start the stdin reader")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let code = runtime.block_on(drive(&host, entry, others, lines, shared_failures));
    let _ = std::io::stdout().flush();
    if args.stats {
        print_stats(&host);
    }
    // Nothing is lost silently: a run that ended with messages undelivered says so.
    let counts = host.message_counts();
    if counts.dropped.total() > 0 {
        eprintln!("wasm-workers: {} messages were not delivered ({})", counts.dropped.total(), counts.dropped);
    }
    // The stdin thread may be blocked in a read that cannot be cancelled; do not wait for it.
    runtime.shutdown_background();
    Ok(ExitCode::from(code))
}

/// Feeds stdin to the entry worker and its messages to stdout until it ends; then ends the
/// other workers of a graph. Returns the exit code.
async fn drive(
    host: &Host,
    mut entry: WorkerHandle,
    others: Vec<(String, WorkerHandle)>,
    mut lines: mpsc::UnboundedReceiver<std::io::Result<String>>,
    mut shared_failures: tokio::sync::broadcast::Receiver<wasm_workers::ErrorEvent>,
) -> u8 {
    let mut shared_failed = false;
    // Registered now, before anything runs, so that no Ctrl-C is missed.
    let mut ctrl_c = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()) {
        Ok(signal) => signal,
        Err(error) => {
            eprintln!("error: cannot watch for Ctrl-C: {error}");
            entry.terminate();
            return EXIT_FAILED;
        }
    };
    let (stop, stopped) = watch::channel(false);
    let watchers: Vec<_> =
        others.into_iter().map(|(key, worker)| tokio::spawn(watch_other(key, worker, stopped.clone()))).collect();

    let name = entry.name().to_string();
    let mut stdin_open = true;
    let mut line_number = 0usize;
    let mut stdout = std::io::stdout().lock();
    let mut code = loop {
        tokio::select! {
            // The entry worker's events first: its last event (an error, say) wins over the
            // quiet that follows it.
            biased;
            event = entry.recv() => match event {
                Some(WorkerEvent::Message(message)) => match message.as_json_text() {
                    Some(text) => {
                        // One message, one line: JSON with line breaks (pretty-printed) is
                        // written compact. Outside strings, a line break is only whitespace.
                        let compact;
                        let text = if text.contains(['\n', '\r']) {
                            compact = serde_json::from_str::<serde_json::Value>(text)
                                .map(|value| value.to_string())
                                .unwrap_or_else(|_| text.replace(['\n', '\r'], " "));
                            compact.as_str()
                        } else {
                            text
                        };
                        if writeln!(stdout, "{text}").is_err() {
                            // Nobody reads our output any more: stop the run.
                            entry.terminate();
                            break EXIT_FAILED;
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
            _ = ctrl_c.recv() => {
                entry.terminate();
                eprintln!("wasm-workers: interrupted; the workers were terminated");
                break EXIT_INTERRUPTED;
            }
            Ok(error) = shared_failures.recv() => {
                // A shared worker of the run failed: said now, and the run fails at its end.
                eprintln!("error: {error}");
                shared_failed = true;
            }
            line = lines.recv(), if stdin_open => match line {
                Some(Ok(line)) => {
                    line_number += 1;
                    if line.trim().is_empty() {
                        continue;
                    }
                    match Message::json_text(&line) {
                        // A worker that has ended receives nothing more; its last event
                        // tells how it ended.
                        Ok(message) => { let _ = entry.post_message(message); }
                        Err(error) => eprintln!("wasm-workers: stdin line {line_number} is not JSON, skipped: {error}"),
                    }
                }
                Some(Err(error)) => {
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
            () = host.quiescent(), if !stdin_open => {
                tracing::debug!("every worker waits and no input is left: the run is over");
                entry.terminate();
                break EXIT_OK;
            }
        }
    };
    drop(stdout);
    // The entry worker has ended: so does the rest of the graph. Another worker's failure
    // (reported on stderr when it happened) fails the run.
    let _ = stop.send(true);
    for watcher in watchers {
        if let Ok(true) = watcher.await {
            if code == EXIT_OK {
                code = EXIT_FAILED;
            }
        }
    }
    // Wait for the entry worker's last event, so that its statistics are final.
    while entry.recv().await.is_some() {}
    while let Ok(error) = shared_failures.try_recv() {
        eprintln!("error: {error}");
        shared_failed = true;
    }
    if shared_failed && code == EXIT_OK {
        code = EXIT_FAILED;
    }
    code
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

/// Prints what each worker did, and what the engine compiled, to stderr.
fn print_stats(host: &Host) {
    let reports = host.stats();
    let mut out = std::io::stderr().lock();
    let _ = writeln!(
        out,
        "{:<16} {:<22} {:>8} {:>8} {:>10} {:>10} {:>10} {:>10}  ended",
        "worker", "component", "msgs in", "msgs out", "bytes in", "bytes out", "cpu", "peak mem"
    );
    for report in &reports {
        let component = std::path::Path::new(&report.location)
            .file_name()
            .map_or(report.location.clone(), |f| f.to_string_lossy().into_owned());
        let _ = writeln!(
            out,
            "{:<16} {:<22} {:>8} {:>8} {:>10} {:>10} {:>10} {:>10}  {}",
            if report.name.is_empty() { "(unnamed)" } else { &report.name },
            component,
            report.messages_in,
            report.messages_out,
            report.bytes_in,
            report.bytes_out,
            format!("{:.1}ms", report.cpu_time.as_secs_f64() * 1000.0),
            format!("{} KiB", report.peak_memory / 1024),
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

/// Reads stdin line by line on a thread of its own.
fn read_stdin_lines() -> std::io::Result<mpsc::UnboundedReceiver<std::io::Result<String>>> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::Builder::new().name("stdin".into()).spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let failed = line.is_err();
            if tx.send(line).is_err() || failed {
                break;
            }
        }
    })?;
    Ok(rx)
}
