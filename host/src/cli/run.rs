//! `wasm-workers run`: one worker, with stdin and stdout as its parent.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use anyhow::Context;
use tokio::sync::mpsc;
use wasm_workers::{Host, HostConfig, Message, WorkerEvent, WorkerOptions};

use super::{RunArgs, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK};

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let host = Host::with_config(HostConfig { hardware_concurrency: args.hardware_concurrency, ..HostConfig::default() })?;
    let component = host.load(&args.component)?;
    let name = args.name.unwrap_or_else(|| {
        args.component.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default()
    });
    let mut worker = host.spawn(&component, WorkerOptions::named(&name))?;
    let lines = read_stdin_lines().context("cannot start the stdin reader")?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let code = runtime.block_on(async move {
        let mut lines = lines;
        let mut stdin_open = true;
        let mut line_number = 0usize;
        let mut stdout = std::io::stdout().lock();
        // Registered now, before anything runs, so that no Ctrl-C is missed.
        let mut ctrl_c = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()) {
            Ok(signal) => signal,
            Err(error) => {
                eprintln!("error: cannot watch for Ctrl-C: {error}");
                worker.terminate();
                return EXIT_FAILED;
            }
        };
        loop {
            tokio::select! {
                line = lines.recv(), if stdin_open => match line {
                    Some(Ok(line)) => {
                        line_number += 1;
                        if line.trim().is_empty() {
                            continue;
                        }
                        match Message::json_text(&line) {
                            // A worker that has ended receives nothing more; its last event
                            // tells how it ended.
                            Ok(message) => { let _ = worker.post_message(message); }
                            Err(error) => eprintln!("wasm-workers: stdin line {line_number} is not JSON, skipped: {error}"),
                        }
                    }
                    Some(Err(error)) => {
                        eprintln!("wasm-workers: cannot read stdin: {error}");
                        stdin_open = false;
                        worker.end_input();
                    }
                    None => {
                        stdin_open = false;
                        worker.end_input();
                    }
                },
                event = worker.recv() => match event {
                    Some(WorkerEvent::Message(message)) => match message.as_json_text() {
                        Some(text) => {
                            if writeln!(stdout, "{text}").is_err() {
                                // Nobody reads our output any more: stop the run.
                                worker.terminate();
                                return EXIT_FAILED;
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
                        return EXIT_FAILED;
                    }
                    Some(WorkerEvent::Closed(reason)) => {
                        tracing::debug!(?reason, "worker ended");
                        return EXIT_OK;
                    }
                    // The worker's thread went away without saying how: a host failure.
                    None => {
                        eprintln!("error: worker `{name}` ended without a last event");
                        return EXIT_FAILED;
                    }
                },
                _ = ctrl_c.recv() => {
                    worker.terminate();
                    eprintln!("wasm-workers: interrupted; worker `{name}` terminated");
                    return EXIT_INTERRUPTED;
                }
            }
        }
    });
    let _ = std::io::stdout().flush();
    // The stdin thread may be blocked in a read that cannot be cancelled; do not wait for it.
    runtime.shutdown_background();
    Ok(ExitCode::from(code))
}

/// Reads stdin line by line on a thread of its own.
fn read_stdin_lines() -> std::io::Result<mpsc::UnboundedReceiver<std::io::Result<String>>> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let failed = line.is_err();
                if tx.send(line).is_err() || failed {
                    break;
                }
            }
        })?;
    Ok(rx)
}
