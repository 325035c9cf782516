//! Guests' stdout and stderr: each line goes to the host's stderr, prefixed with the worker's
//! name, so that it never mixes with the messages a run writes to stdout.

use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// A guest output stream: whole lines, each prefixed with `[name] `, to the host's stderr.
#[derive(Clone)]
pub(crate) struct GuestOutput {
    prefix: Arc<str>,
}

impl GuestOutput {
    pub(crate) fn new(name: &str, location: &str) -> Self {
        let who = if name.is_empty() { location } else { name };
        GuestOutput { prefix: format!("[{who}] ").into() }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(LineWriter { prefix: self.prefix.clone(), partial: Vec::new() })
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(LineWriter { prefix: self.prefix.clone(), partial: Vec::new() })
    }
}

/// Buffers a partial line until its newline arrives, it grows past `MAX_LINE`, or the stream
/// is dropped.
struct LineWriter {
    prefix: Arc<str>,
    partial: Vec<u8>,
}

/// Lines longer than this are written out in pieces.
const MAX_LINE: usize = 64 * 1024;

impl LineWriter {
    fn write_bytes(&mut self, mut bytes: &[u8]) {
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            self.partial.extend_from_slice(&bytes[..=end]);
            self.emit();
            bytes = &bytes[end + 1..];
        }
        self.partial.extend_from_slice(bytes);
        if self.partial.len() >= MAX_LINE {
            self.partial.push(b'\n');
            self.emit();
        }
    }

    fn emit(&mut self) {
        if self.partial.is_empty() {
            return;
        }
        if self.partial.last() != Some(&b'\n') {
            self.partial.push(b'\n');
        }
        // One write of the whole line, so lines of different workers do not interleave.
        let mut line = Vec::with_capacity(self.prefix.len() + self.partial.len());
        line.extend_from_slice(self.prefix.as_bytes());
        line.append(&mut self.partial);
        // Diagnostics of a guest must never fail the guest: a closed stderr loses them.
        let _ = std::io::stderr().lock().write_all(&line);
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        self.emit();
    }
}

impl OutputStream for LineWriter {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(MAX_LINE)
    }
}

#[async_trait::async_trait]
impl Pollable for LineWriter {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for LineWriter {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.get_mut().write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
