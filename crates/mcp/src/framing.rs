//! The stdio transport's framing: one JSON-RPC message per line, lines ended by `\n`. Lines are
//! read as bytes and handed on exactly as they came, newline included.

use std::io::{self, BufRead, BufReader, Read};

/// Reads newline-delimited messages from a byte stream, refusing any longer than `max` bytes.
#[derive(Debug)]
pub struct LineReader<R> {
    reader: BufReader<R>,
    max: usize,
}

impl<R: Read> LineReader<R> {
    pub fn new(reader: R, max: usize) -> Self {
        LineReader {
            reader: BufReader::with_capacity(64 * 1024, reader),
            max,
        }
    }

    /// Reads the next line into `line` (cleared first), ending with `\n` even when the stream
    /// ended without one. `Ok(false)` at the end of the stream.
    pub fn read_line(&mut self, line: &mut Vec<u8>) -> io::Result<bool> {
        line.clear();
        loop {
            let available = match self.reader.fill_buf() {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                if line.is_empty() {
                    return Ok(false);
                }
                line.push(b'\n');
                return Ok(true);
            }
            let (taken, done) = match available.iter().position(|&b| b == b'\n') {
                Some(end) => (end + 1, true),
                None => (available.len(), false),
            };
            if line.len() + taken > self.max {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "a message is longer than {} MiB; MCP messages are one JSON text per line",
                        self.max / (1024 * 1024)
                    ),
                ));
            }
            line.extend_from_slice(&available[..taken]);
            self.reader.consume(taken);
            if done {
                return Ok(true);
            }
        }
    }
}

/// Whether a line holds nothing but whitespace (such lines are passed on, never parsed).
pub fn is_blank(line: &[u8]) -> bool {
    line.trim_ascii().is_empty()
}
