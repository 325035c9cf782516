//! The stdin reader of `run`: bounded, numbered lines, read on a thread of their own.

use std::io::BufRead;

use tokio::sync::mpsc;

/// What the stdin reader hands on.
pub(super) enum Input {
    /// The lines of one read, in order.
    Lines(Vec<Line>),
    /// Reading failed; nothing more comes.
    Failed(std::io::Error),
}

/// One line of stdin.
pub(super) enum Line {
    /// A line, without its line break (perhaps not UTF-8: checked by the receiver, who
    /// reports it by its number and goes on).
    Text { number: usize, bytes: Vec<u8> },
    /// A line longer than the entry worker accepts: skipped as it was read, never held.
    TooLong { number: usize, len: usize },
}

/// Reads stdin on a thread of its own, in batches of lines, at most `max_line` bytes each,
/// through a channel of two batches: it reads only as fast as the lines are posted.
pub(super) fn read_stdin(max_line: usize) -> std::io::Result<mpsc::Receiver<Input>> {
    let (tx, rx) = mpsc::channel(2);
    std::thread::Builder::new().name("stdin".into()).spawn(move || {
        let stdin = std::io::stdin();
        let mut reader = std::io::BufReader::with_capacity(64 << 10, stdin.lock());
        let mut lines = LineSplitter { max_line, current: Vec::new(), too_long: None, number: 0 };
        loop {
            let chunk = match reader.fill_buf() {
                Ok(chunk) => chunk,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    let _ = tx.blocking_send(Input::Failed(error));
                    return;
                }
            };
            if chunk.is_empty() {
                // The last line may have no line break.
                if let Some(line) = lines.finish() {
                    let _ = tx.blocking_send(Input::Lines(vec![line]));
                }
                return;
            }
            let batch = lines.split(chunk);
            let consumed = chunk.len();
            reader.consume(consumed);
            if !batch.is_empty() && tx.blocking_send(Input::Lines(batch)).is_err() {
                return;
            }
        }
    })?;
    Ok(rx)
}

/// Cuts a byte stream into numbered lines of bounded length.
pub(super) struct LineSplitter {
    max_line: usize,
    /// The line read so far.
    current: Vec<u8>,
    /// The length of the current line, once it is known to be too long (its bytes are not kept).
    too_long: Option<usize>,
    /// Lines completed so far.
    number: usize,
}

impl LineSplitter {
    /// The lines completed by `chunk`; the rest of it is kept for the next.
    fn split(&mut self, mut chunk: &[u8]) -> Vec<Line> {
        let mut batch = Vec::new();
        while let Some(end) = chunk.iter().position(|&b| b == b'\n') {
            self.append(&chunk[..end]);
            batch.push(self.take());
            chunk = &chunk[end + 1..];
        }
        self.append(chunk);
        batch
    }

    fn append(&mut self, part: &[u8]) {
        match &mut self.too_long {
            Some(len) => *len += part.len(),
            None if self.current.len() + part.len() > self.max_line => {
                self.too_long = Some(self.current.len() + part.len());
                self.current = Vec::new();
            }
            None => self.current.extend_from_slice(part),
        }
    }

    fn take(&mut self) -> Line {
        self.number += 1;
        match self.too_long.take() {
            Some(len) => Line::TooLong { number: self.number, len },
            None => Line::Text { number: self.number, bytes: std::mem::take(&mut self.current) },
        }
    }

    /// The unterminated last line, if there is one.
    fn finish(&mut self) -> Option<Line> {
        (!self.current.is_empty() || self.too_long.is_some()).then(|| self.take())
    }
}
