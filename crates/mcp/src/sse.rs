//! Server-sent events, as the streamable HTTP transport carries JSON-RPC messages in them: split
//! an upstream stream into events (each kept as its original bytes, to relay unchanged) and read
//! their data; write the events Countersign sends itself.

/// One event of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The event exactly as received, blank line included.
    pub raw: Vec<u8>,
    /// Its `data:` lines joined with `\n` (a JSON-RPC message), empty for a comment or a
    /// priming event.
    pub data: String,
    pub id: Option<String>,
    /// Its `event:` type; `None` means `message`.
    pub kind: Option<String>,
}

/// Splits a byte stream into events as chunks arrive.
#[derive(Debug, Default)]
pub struct Parser {
    buffer: Vec<u8>,
    /// Where the unfinished event's next line starts.
    scanned: usize,
}

impl Parser {
    /// Adds a chunk; returns the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Event> {
        self.buffer.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut start = 0usize;
        let mut line_start = self.scanned;
        while let Some(offset) = self.buffer[line_start..].iter().position(|&b| b == b'\n') {
            let line_end = line_start + offset + 1;
            let line = trim_eol(&self.buffer[line_start..line_end]);
            if line.is_empty() {
                events.push(parse_event(&self.buffer[start..line_end]));
                start = line_end;
            }
            line_start = line_end;
        }
        self.buffer.drain(..start);
        self.scanned = line_start - start;
        events
    }

    /// Bytes of an event the stream ended in the middle of.
    pub fn rest(&self) -> &[u8] {
        &self.buffer
    }
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn parse_event(raw: &[u8]) -> Event {
    let mut data: Vec<&str> = Vec::new();
    let mut id = None;
    let mut kind = None;
    for line in raw.split(|&b| b == b'\n').map(trim_eol) {
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => data.push(value),
            "id" => id = Some(value.to_owned()),
            "event" => kind = Some(value.to_owned()),
            _ => {}
        }
    }
    Event {
        raw: raw.to_vec(),
        data: data.join("\n"),
        id,
        kind,
    }
}

/// The data of the one message a whole stream carries: `None` when it carries none, several, an
/// event of another type than `message`, or ends inside an event. Comments and priming events
/// (no data) are passed over: they matter only to a client that resumes the stream.
pub fn sole_message(stream: &[u8]) -> Option<String> {
    let mut parser = Parser::default();
    let mut messages = parser
        .push(stream)
        .into_iter()
        .filter(|event| !event.data.is_empty());
    let message = messages.next()?;
    let alone = messages.next().is_none() && parser.rest().trim_ascii().is_empty();
    let typed = message.kind.as_deref().is_none_or(|kind| kind == "message");
    (alone && typed).then_some(message.data)
}

/// A `message` event carrying one JSON-RPC message (any newlines in it become data lines).
pub fn message_event(json: &[u8]) -> Vec<u8> {
    let json = json.trim_ascii();
    let mut out = Vec::with_capacity(json.len() + 32);
    out.extend_from_slice(b"event: message\n");
    for line in json.split(|&b| b == b'\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(trim_eol(line));
        out.push(b'\n');
    }
    out.push(b'\n');
    out
}

/// A comment: keeps a quiet stream's connection alive.
pub fn comment(text: &str) -> Vec<u8> {
    format!(": {}\n\n", text.replace(['\r', '\n'], " ")).into_bytes()
}
