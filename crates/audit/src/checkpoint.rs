//! Signed checkpoints: an Ed25519 signature over the head of the log at some event, so that
//! rewriting the log (re-hashing every event after an edit) or cutting events off its end is
//! caught, which chain verification alone cannot do.

use countersign_model::canonical::to_canonical_string;
use countersign_model::{Digest, PublicKey, SecretKey, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::event::{AuditEvent, MAX_SEQ, genesis_hash};
use crate::verify::{ChainBreak, ChainSummary, verify};

/// Signed along with every checkpoint, and never by anything else.
const SIGNATURE_PURPOSE: &str = "countersign audit checkpoint v1";

/// A signed statement that event `seq` of the log had hash `head_hash` at `time`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an audit checkpoint object")]
pub struct Checkpoint {
    #[serde(deserialize_with = "crate::event::deserialize_seq")]
    pub seq: u64,
    pub head_hash: Digest,
    pub time: Timestamp,
    /// The `key_id` of the public key that verifies `signature`.
    pub key_id: String,
    /// Base64url Ed25519 signature over the canonical JSON of the four fields above.
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error(
        "the checkpoint at event {seq} was signed with key {found}, not with the audit key {expected}"
    )]
    WrongKey {
        seq: u64,
        found: String,
        expected: String,
    },
    #[error(
        "the checkpoint at event {seq} has an invalid signature: it was altered after it was \
         signed, or signed with another key"
    )]
    BadSignature { seq: u64 },
    #[error(
        "the checkpoint at event {seq} does not match the log: the log was rewritten after it \
         was signed"
    )]
    Mismatch { seq: u64 },
    #[error("{}", beyond_end_sentence(*seq, *last))]
    BeyondEnd { seq: u64, last: u64 },
    #[error("a checkpoint cannot sign event {seq}: event numbers cannot go beyond 2^53")]
    SeqTooLarge { seq: u64 },
}

fn beyond_end_sentence(seq: u64, last: u64) -> String {
    if last == 0 {
        format!(
            "the audit log holds no events but a checkpoint signed event {seq}: events were \
             removed from the end"
        )
    } else {
        format!(
            "the log ends at event {last} but a checkpoint signed event {seq}: events were \
             removed from the end"
        )
    }
}

impl CheckpointError {
    /// The event the faulty checkpoint signed.
    pub fn seq(&self) -> u64 {
        match self {
            CheckpointError::WrongKey { seq, .. }
            | CheckpointError::BadSignature { seq }
            | CheckpointError::Mismatch { seq }
            | CheckpointError::BeyondEnd { seq, .. }
            | CheckpointError::SeqTooLarge { seq } => *seq,
        }
    }
}

/// Why a log with its checkpoints does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Chain(#[from] ChainBreak),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

impl VerifyError {
    /// The event the sentence is about.
    pub fn seq(&self) -> u64 {
        match self {
            VerifyError::Chain(broken) => broken.seq,
            VerifyError::Checkpoint(error) => error.seq(),
        }
    }
}

impl Checkpoint {
    /// Signs the head of the log at event `seq`.
    pub fn sign(
        seq: u64,
        head_hash: Digest,
        time: Timestamp,
        key: &SecretKey,
    ) -> Result<Checkpoint, CheckpointError> {
        let mut checkpoint = Checkpoint {
            seq,
            head_hash,
            time,
            key_id: key.public_key().key_id(),
            signature: String::new(),
        };
        checkpoint.signature = key.sign(checkpoint.signed_message()?.as_bytes());
        Ok(checkpoint)
    }

    /// Checks that `key` made this checkpoint's signature over its current contents.
    pub fn verify_signature(&self, key: &PublicKey) -> Result<(), CheckpointError> {
        let expected = key.key_id();
        if self.key_id != expected {
            return Err(CheckpointError::WrongKey {
                seq: self.seq,
                found: self.key_id.clone(),
                expected,
            });
        }
        key.verify(self.signed_message()?.as_bytes(), &self.signature)
            .map_err(|_| CheckpointError::BadSignature { seq: self.seq })
    }

    fn signed_message(&self) -> Result<String, CheckpointError> {
        let too_large = || CheckpointError::SeqTooLarge { seq: self.seq };
        if self.seq > MAX_SEQ {
            return Err(too_large());
        }
        let mut fields = Map::new();
        fields.insert("seq".into(), Value::from(self.seq));
        fields.insert(
            "head_hash".into(),
            Value::String(self.head_hash.to_string()),
        );
        fields.insert("time".into(), Value::String(self.time.to_string()));
        fields.insert("key_id".into(), Value::String(self.key_id.clone()));
        // The same key signs grants; naming the purpose keeps one kind of signature from ever
        // being accepted as the other.
        fields.insert("purpose".into(), Value::String(SIGNATURE_PURPOSE.into()));
        to_canonical_string(&Value::Object(fields)).map_err(|_| too_large())
    }
}

/// Verifies a whole log from event 1, together with its checkpoints, all signed by `key`.
///
/// Reports, in this order: a checkpoint `key` did not sign (the checkpoints themselves cannot
/// be trusted); a checkpoint contradicting the part of the log that chains correctly; the first
/// broken link of the chain; a checkpoint beyond the last event.
pub fn verify_with_checkpoints(
    events: &[AuditEvent],
    checkpoints: &[Checkpoint],
    key: &PublicKey,
) -> Result<ChainSummary, VerifyError> {
    for checkpoint in checkpoints {
        checkpoint.verify_signature(key)?;
    }
    let chain = verify(events, None);
    // Checkpoints are compared only against events that chain correctly, because only there is
    // an event's position in `events` known from its sequence number.
    let chained_up_to = match &chain {
        Ok(summary) => summary.last_seq(),
        Err(broken) => broken.seq.saturating_sub(1),
    };
    let mut by_seq: Vec<&Checkpoint> = checkpoints.iter().collect();
    by_seq.sort_by_key(|checkpoint| checkpoint.seq);
    for checkpoint in by_seq.iter().filter(|c| c.seq <= chained_up_to) {
        let signed_hash = match checkpoint.seq {
            0 => Some(genesis_hash()),
            seq => usize::try_from(seq - 1)
                .ok()
                .and_then(|index| events.get(index))
                .map(|event| event.hash),
        };
        if signed_hash != Some(checkpoint.head_hash) {
            return Err(CheckpointError::Mismatch {
                seq: checkpoint.seq,
            }
            .into());
        }
    }
    let summary = chain?;
    let last = summary.last_seq();
    if let Some(beyond) = by_seq.iter().find(|c| c.seq > last) {
        return Err(CheckpointError::BeyondEnd {
            seq: beyond.seq,
            last,
        }
        .into());
    }
    Ok(summary)
}
