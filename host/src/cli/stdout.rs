//! The stdout writer of `run`: a thread that writes the entry worker's messages, behind a
//! bounded channel.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

/// The most bytes of output waiting for stdout: past them, the entry worker's messages wait
/// in its handle (bounded by its queue limits).
pub(super) const MAX_QUEUED_OUTPUT: usize = 16 << 20;

/// The way to the stdout writer: a channel of at most 1,024 lines, and
/// [`MAX_QUEUED_OUTPUT`] bytes.
pub(super) struct Output {
    pub(super) lines: mpsc::Sender<String>,
    pub(super) queued: Arc<QueuedOutput>,
}

/// Bytes sent to the writer and not yet written, and a signal each time it has written some.
#[derive(Default)]
pub(super) struct QueuedOutput {
    bytes: AtomicUsize,
    pub(super) drained: tokio::sync::Notify,
}

impl Output {
    /// Whether a line may be sent now.
    pub(super) fn ready(&self) -> bool {
        self.lines.capacity() > 0 && self.queued.bytes.load(Ordering::Acquire) < MAX_QUEUED_OUTPUT
    }

    /// Sends a line (when [`ready`](Self::ready)); false if the writer has gone.
    pub(super) fn send(&self, line: String) -> bool {
        let len = line.len() + 1;
        self.queued.bytes.fetch_add(len, Ordering::AcqRel);
        if self.lines.try_send(line).is_err() {
            self.queued.bytes.fetch_sub(len, Ordering::AcqRel);
            return false;
        }
        true
    }
}

/// Writes lines to stdout on a thread of its own, from the channel of an [`Output`], in
/// writes of up to 64 KiB, whenever it has caught up. If a write fails (the reader went away), it stops
/// and closes the channel; the receiver resolves to how many lines it took and did not write
/// (those of the failed write among them: the reader did not take them whole).
pub(super) fn write_stdout() -> std::io::Result<(Output, oneshot::Receiver<u64>)> {
    let (tx, mut rx) = mpsc::channel::<String>(1024);
    let (done, written) = oneshot::channel();
    let queued = Arc::new(QueuedOutput::default());
    let output = Output { lines: tx, queued: queued.clone() };
    std::thread::Builder::new().name("stdout".into()).spawn(move || {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        let (mut buffer, mut lines) = (Vec::with_capacity(64 << 10), 0u64);
        let mut unwritten = 0;
        while let Some(line) = rx.blocking_recv() {
            buffer.extend_from_slice(line.as_bytes());
            buffer.push(b'\n');
            lines += 1;
            if !rx.is_empty() && buffer.len() < 64 << 10 {
                continue;
            }
            if let Err(error) = out.write_all(&buffer).and_then(|()| out.flush()) {
                if error.kind() != std::io::ErrorKind::BrokenPipe {
                    eprintln!("wasm-workers: cannot write stdout: {error}");
                }
                // Nothing more can be written: what is queued behind is lost too.
                rx.close();
                unwritten = lines;
                while rx.try_recv().is_ok() {
                    unwritten += 1;
                }
                break;
            }
            queued.bytes.fetch_sub(buffer.len(), Ordering::AcqRel);
            queued.drained.notify_one();
            buffer.clear();
            lines = 0;
        }
        let _ = done.send(unwritten);
    })?;
    Ok((output, written))
}
