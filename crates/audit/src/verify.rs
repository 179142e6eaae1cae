//! Chain verification: walks a run of events and names the first broken link in plain words.

use std::fmt;

use crate::event::{AuditEvent, ChainHead, genesis_hash};

/// What a verified run of events amounts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainSummary {
    /// How many events were verified.
    pub count: usize,
    /// The last verified event; the `after` head passed in if the run was empty, `None` for an
    /// empty log.
    pub head: Option<ChainHead>,
}

impl ChainSummary {
    /// The sequence number of the last event, 0 for an empty log.
    pub fn last_seq(&self) -> u64 {
        self.head.map_or(0, |head| head.seq)
    }
}

/// How a chain is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakKind {
    /// The event's hash does not match its contents.
    Edited,
    /// The sequence jumps forward and the skipped event is nowhere later in the run.
    Missing,
    /// The sequence jumps backward, or forward to an event whose predecessor comes later.
    OutOfOrder,
    /// The event has the same sequence number as the one before it.
    Duplicated,
    /// The event is consistent on its own but its `prev_hash` is not the previous event's hash.
    Unlinked,
    /// Verifying from the start of the log, but the first event is not event 1.
    BadStart,
}

/// The first broken link of a chain. Its `Display` is a sentence an auditor can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    pub kind: BreakKind,
    /// The first sequence number that cannot be trusted: every event before it verified.
    pub seq: u64,
    /// The sequence number of the last event that verified (`None`: the start of the log).
    pub previous: Option<u64>,
    /// The sequence number written on the event found where event `seq` should be.
    pub found: u64,
    /// Where that event is in the run that was verified, counting from 0.
    pub position: usize,
}

impl std::error::Error for ChainBreak {}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (seq, found) = (self.seq, self.found);
        let previous = match self.previous {
            Some(previous) => format!("event {previous}"),
            None => "the start of the audit log".to_owned(),
        };
        match self.kind {
            BreakKind::Edited => write!(f, "event {seq} was changed after it was written"),
            BreakKind::Missing => {
                write!(
                    f,
                    "event {seq} is missing: {previous} is followed by event {found}"
                )
            }
            BreakKind::OutOfOrder if found > seq => write!(
                f,
                "events are out of order: {previous} is followed by event {found}, \
                 and event {seq} comes later"
            ),
            BreakKind::OutOfOrder => {
                write!(
                    f,
                    "events are out of order: {previous} is followed by event {found}"
                )
            }
            BreakKind::Duplicated => write!(
                f,
                "event {found} appears twice: an event was duplicated or replayed"
            ),
            BreakKind::Unlinked => write!(
                f,
                "event {seq} does not link to {previous}: an event was inserted or replaced"
            ),
            BreakKind::BadStart => write!(
                f,
                "the audit log does not start at event 1: its first event is event {found}"
            ),
        }
    }
}

/// Verifies that `events` form an unbroken chain following `after`, the head of the events
/// just before them (`None`: `events` starts the log, at event 1 and the genesis hash).
///
/// Returns the first broken link. Within one event the sequence number is checked before the
/// hash, and the hash before the link, so the sentence names the most basic fault.
pub fn verify(events: &[AuditEvent], after: Option<ChainHead>) -> Result<ChainSummary, ChainBreak> {
    let mut head = after;
    for (position, event) in events.iter().enumerate() {
        let expected_seq = head.map_or(1, |head| head.seq.saturating_add(1));
        let broken = |kind| ChainBreak {
            kind,
            seq: expected_seq,
            previous: head.map(|head| head.seq),
            found: event.seq,
            position,
        };
        if event.seq != expected_seq {
            let kind = match head {
                None => BreakKind::BadStart,
                Some(head) if event.seq == head.seq => BreakKind::Duplicated,
                Some(_) if event.seq < expected_seq => BreakKind::OutOfOrder,
                Some(_)
                    if events
                        .iter()
                        .skip(position + 1)
                        .any(|e| e.seq == expected_seq) =>
                {
                    BreakKind::OutOfOrder
                }
                Some(_) => BreakKind::Missing,
            };
            return Err(broken(kind));
        }
        // An event whose contents cannot be hashed was never sealed by Countersign, which refuses
        // such events, so it too was changed after it was written.
        if event.content_hash().ok() != Some(event.hash) {
            return Err(broken(BreakKind::Edited));
        }
        let expected_prev = head.map_or_else(genesis_hash, |head| head.hash);
        if event.prev_hash != expected_prev {
            return Err(broken(BreakKind::Unlinked));
        }
        head = Some(event.head());
    }
    Ok(ChainSummary {
        count: events.len(),
        head,
    })
}
