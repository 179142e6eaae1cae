//! Countersign's tamper-evident audit chain: events hashed into a chain, verification that names
//! the first broken link, signed checkpoints, and the JSON Lines export.
//!
//! Every event carries the hash of the one before it, so an edit, a deletion, a reordering or an
//! insertion breaks the chain where it happened. A rewrite that re-hashes everything after an
//! edit, or a cut at the end of the log, is caught by checkpoints: Ed25519 signatures over the
//! head of the log at some event.
//!
//! Architecture invariant: this crate does no I/O. It reads no clock, no file, no environment and
//! no random source; callers pass times and keys in, and exports in and out as text. Writing
//! events durably is the store's job.

pub mod checkpoint;
pub mod event;
pub mod export;
pub mod kind;
pub mod verify;

pub use checkpoint::{Checkpoint, CheckpointError, VerifyError, verify_with_checkpoints};
pub use event::{
    AuditEvent, ChainHead, EventDraft, GENESIS_BYTES, MAX_SEQ, SealError, genesis_hash, seal,
    unusual_of,
};
pub use export::{
    Export, ExportError, Record, parse_export, parse_line, render_checkpoint, render_event,
    render_export,
};
pub use kind::{EventKind, UnknownEventKind};
pub use verify::{BreakKind, ChainBreak, ChainSummary, verify};
