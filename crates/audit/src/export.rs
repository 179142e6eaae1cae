//! The audit export: a log and its checkpoints as JSON Lines text, and reading it back.
//!
//! Each line is one JSON object with exactly one key saying what the line holds:
//!
//! ```text
//! {"event":{"seq":1,"time":"2026-11-21T16:08:00.000Z","type":"request.created","principal":"deploy-bot","request_id":"r_…","data":{…},"explanation":"…","prev_hash":"sha256:0000…","hash":"sha256:…"}}
//! {"checkpoint":{"seq":1,"head_hash":"sha256:…","time":"2026-11-21T16:08:01.000Z","key_id":"…","signature":"…"}}
//! ```
//!
//! Event fields are those of [`AuditEvent`] (`principal` and `request_id` are `null` when
//! absent); checkpoint fields those of [`Checkpoint`]. Lines end with `\n` (reading also accepts
//! `\r\n`). A checkpoint is written right after the event it signs; verification does
//! not depend on where checkpoints are placed.
//!
//! Reading is strict so that nothing can be smuggled into a line a verifier accepts: unknown
//! fields, missing fields, a key repeated in any object, and blank lines are all refused, with
//! the line number.

use countersign_model::PublicKey;
use serde::Serialize;
use serde_json::Value;

use crate::checkpoint::{Checkpoint, VerifyError, verify_with_checkpoints};
use crate::event::AuditEvent;
use crate::verify::ChainSummary;
use countersign_model::strict_json::StrictValue;

/// One line of an export.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Event(AuditEvent),
    Checkpoint(Checkpoint),
}

/// The contents of an export, each kind of record in the order it appeared.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Export {
    pub events: Vec<AuditEvent>,
    pub checkpoints: Vec<Checkpoint>,
}

impl Export {
    /// Verifies the exported log from event 1 with its checkpoints, all signed by `key`.
    pub fn verify(&self, key: &PublicKey) -> Result<ChainSummary, VerifyError> {
        verify_with_checkpoints(&self.events, &self.checkpoints, key)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    #[error("line {line} of the audit export is not valid: {reason}")]
    BadLine { line: usize, reason: String },
    #[error("{what} cannot be written to the audit export: {reason}")]
    Unwritable { what: String, reason: String },
}

// Serde's externally tagged enum is exactly the `{"event": {…}}` envelope. Parsing unwraps the
// envelope by hand instead, to say in Countersign's words what is wrong with a line.
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum RecordRef<'a> {
    Event(&'a AuditEvent),
    Checkpoint(&'a Checkpoint),
}

/// The export line (without its `\n`) for one event.
pub fn render_event(event: &AuditEvent) -> Result<String, ExportError> {
    render(&RecordRef::Event(event), || format!("event {}", event.seq))
}

/// The export line (without its `\n`) for one checkpoint.
pub fn render_checkpoint(checkpoint: &Checkpoint) -> Result<String, ExportError> {
    render(&RecordRef::Checkpoint(checkpoint), || {
        format!("the checkpoint at event {}", checkpoint.seq)
    })
}

fn render(record: &RecordRef<'_>, what: impl Fn() -> String) -> Result<String, ExportError> {
    serde_json::to_string(record).map_err(|error| ExportError::Unwritable {
        what: what(),
        reason: error.to_string(),
    })
}

/// The whole export: events in the order given, each checkpoint right after the event it signs.
pub fn render_export(
    events: &[AuditEvent],
    checkpoints: &[Checkpoint],
) -> Result<String, ExportError> {
    let mut pending: Vec<&Checkpoint> = checkpoints.iter().collect();
    pending.sort_by_key(|checkpoint| checkpoint.seq);
    let mut pending = pending.into_iter().peekable();
    let mut out = String::new();
    for event in events {
        while let Some(checkpoint) = pending.next_if(|c| c.seq < event.seq) {
            push_line(&mut out, render_checkpoint(checkpoint)?);
        }
        push_line(&mut out, render_event(event)?);
    }
    for checkpoint in pending {
        push_line(&mut out, render_checkpoint(checkpoint)?);
    }
    Ok(out)
}

fn push_line(out: &mut String, line: String) {
    out.push_str(&line);
    out.push('\n');
}

/// Reads a whole export. The first faulty line is reported, numbered from 1.
pub fn parse_export(text: &str) -> Result<Export, ExportError> {
    let mut export = Export::default();
    for (index, line) in text.lines().enumerate() {
        match parse_line(line, index + 1)? {
            Record::Event(event) => export.events.push(event),
            Record::Checkpoint(checkpoint) => export.checkpoints.push(checkpoint),
        }
    }
    Ok(export)
}

/// Reads one line of an export; `line_number` is only used to name the line in an error.
pub fn parse_line(line: &str, line_number: usize) -> Result<Record, ExportError> {
    let bad_line = |reason: String| ExportError::BadLine {
        line: line_number,
        reason,
    };
    if line.trim().is_empty() {
        return Err(bad_line("it is empty".to_owned()));
    }
    let StrictValue(value) = serde_json::from_str(line).map_err(|error| {
        // serde_json counts lines within the text it was given, always 1 here; keep the column.
        let location = format!(" at line {} column {}", error.line(), error.column());
        let message = error.to_string();
        let message = message.strip_suffix(&location).unwrap_or(&message);
        bad_line(format!("{message} (column {})", error.column()))
    })?;
    const SHAPE: &str =
        "each line must be an object with a single key, \"event\" or \"checkpoint\"";
    let Value::Object(envelope) = value else {
        return Err(bad_line(SHAPE.to_owned()));
    };
    if envelope.len() != 1 {
        return Err(bad_line(format!(
            "{SHAPE}; this one has {}",
            plural_keys(envelope.len())
        )));
    }
    let Some((key, inner)) = envelope.into_iter().next() else {
        return Err(bad_line(SHAPE.to_owned()));
    };
    match key.as_str() {
        "event" => serde_json::from_value(inner)
            .map(Record::Event)
            .map_err(|error| bad_line(format!("in its event, {error}"))),
        "checkpoint" => serde_json::from_value(inner)
            .map(Record::Checkpoint)
            .map_err(|error| bad_line(format!("in its checkpoint, {error}"))),
        other => Err(bad_line(format!("{SHAPE}, not \"{other}\""))),
    }
}

fn plural_keys(count: usize) -> String {
    match count {
        1 => "1 key".to_owned(),
        n => format!("{n} keys"),
    }
}
