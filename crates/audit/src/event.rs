//! Audit events: the append-only records of the log, and sealing a draft onto the chain.
//!
//! An event's `hash` is the SHA-256 of the RFC 8785 canonical JSON of every other field of the
//! event (absent options written as `null`), so no field can change without changing the hash;
//! `prev_hash` ties each event to the one before it.

use countersign_model::canonical::{CanonicalError, to_canonical_string};
use countersign_model::{Digest, RequestId, Timestamp};
use std::fmt;

use serde::de::{Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The bytes of the `prev_hash` of event 1: there is no event before it.
pub const GENESIS_BYTES: [u8; 32] = [0; 32];

/// The `prev_hash` of event 1, the all-zero digest.
pub fn genesis_hash() -> Digest {
    Digest::from_bytes(GENESIS_BYTES)
}

/// The largest event number the log can hold: canonical JSON (I-JSON) represents integers
/// exactly only up to 2^53, and an event number that cannot be hashed exactly cannot be chained.
pub const MAX_SEQ: u64 = 1 << 53;

/// One record of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an audit event object")]
pub struct AuditEvent {
    /// 1 for the first event of the log, then consecutive.
    #[serde(deserialize_with = "deserialize_seq")]
    pub seq: u64,
    pub time: Timestamp,
    /// A dotted name such as `request.created` or `grant.consumed`: one of [`EventKind`]'s,
    /// kept as text so a log written by a newer broker still reads and verifies.
    ///
    /// [`EventKind`]: crate::EventKind
    #[serde(rename = "type")]
    pub kind: String,
    // `deserialize_with` makes these required: an export writes `null`, never leaves them out.
    #[serde(deserialize_with = "Option::deserialize")]
    pub principal: Option<String>,
    #[serde(deserialize_with = "Option::deserialize")]
    pub request_id: Option<RequestId>,
    /// Structured details; always a JSON object.
    pub data: Value,
    /// What happened, in plain language for an auditor.
    pub explanation: String,
    /// The `hash` of the event before this one, or the genesis hash for event 1.
    pub prev_hash: Digest,
    pub hash: Digest,
}

/// Where a chain ends: the sequence number and hash of its last event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainHead {
    pub seq: u64,
    pub hash: Digest,
}

/// An event before it is written: what the caller knows. Sealing adds its place in the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct EventDraft {
    pub time: Timestamp,
    pub kind: String,
    pub principal: Option<String>,
    pub request_id: Option<RequestId>,
    pub data: Value,
    pub explanation: String,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SealError {
    #[error("the data of an audit event of type '{kind}' must be a JSON object, not {found}")]
    DataNotObject { kind: String, found: &'static str },
    #[error("the data of an audit event of type '{kind}' cannot be hashed: {source}")]
    DataNotCanonical {
        kind: String,
        #[source]
        source: CanonicalError,
    },
    #[error("the audit log is full: event numbers cannot go beyond 2^53")]
    LogFull,
}

impl EventDraft {
    /// A draft with no principal, no request and empty data.
    pub fn new(time: Timestamp, kind: impl Into<String>, explanation: impl Into<String>) -> Self {
        EventDraft {
            time,
            kind: kind.into(),
            principal: None,
            request_id: None,
            data: Value::Object(Map::new()),
            explanation: explanation.into(),
        }
    }

    pub fn with_principal(mut self, principal: impl Into<String>) -> Self {
        self.principal = Some(principal.into());
        self
    }

    pub fn with_request_id(mut self, request_id: RequestId) -> Self {
        self.request_id = Some(request_id);
        self
    }

    pub fn with_data(mut self, data: Value) -> Self {
        self.data = data;
        self
    }
}

/// Seals `draft` as the event that follows `after` (`None`: the first event of the log).
///
/// Fails only if the data is not a JSON object or holds a number canonical JSON cannot represent
/// exactly; such an event is refused rather than written with a hash that might not be stable.
pub fn seal(draft: EventDraft, after: Option<ChainHead>) -> Result<AuditEvent, SealError> {
    let (seq, prev_hash) = match after {
        None => (1, genesis_hash()),
        Some(head) => (head.seq.saturating_add(1), head.hash),
    };
    let mut event = AuditEvent {
        seq,
        time: draft.time,
        kind: draft.kind,
        principal: draft.principal,
        request_id: draft.request_id,
        data: draft.data,
        explanation: draft.explanation,
        prev_hash,
        // Overwritten below once the contents are final.
        hash: genesis_hash(),
    };
    event.hash = event.content_hash()?;
    Ok(event)
}

impl AuditEvent {
    /// The event's type, when it is one this version of Countersign knows.
    pub fn event_kind(&self) -> Option<crate::EventKind> {
        self.kind.parse().ok()
    }

    /// The hash this event's contents call for; `hash` must equal it.
    pub fn content_hash(&self) -> Result<Digest, SealError> {
        if self.seq > MAX_SEQ {
            return Err(SealError::LogFull);
        }
        if !self.data.is_object() {
            return Err(SealError::DataNotObject {
                kind: self.kind.clone(),
                found: countersign_model::strict_json::type_name(&self.data),
            });
        }
        let canonical = to_canonical_string(&self.hashed_fields()).map_err(|source| {
            SealError::DataNotCanonical {
                kind: self.kind.clone(),
                source,
            }
        })?;
        Ok(Digest::of(canonical.as_bytes()))
    }

    /// Where the chain ends if this is its last event.
    pub fn head(&self) -> ChainHead {
        ChainHead {
            seq: self.seq,
            hash: self.hash,
        }
    }

    // Built by hand rather than through serde so the hashed form cannot drift if the serialized
    // form ever gains a `skip_serializing_if` or a rename.
    fn hashed_fields(&self) -> Value {
        let optional = |value: Option<String>| value.map_or(Value::Null, Value::String);
        let mut fields = Map::new();
        fields.insert("seq".into(), Value::from(self.seq));
        fields.insert("time".into(), Value::String(self.time.to_string()));
        fields.insert("type".into(), Value::String(self.kind.clone()));
        fields.insert("principal".into(), optional(self.principal.clone()));
        let request_id = self.request_id.map(|id| id.to_string());
        fields.insert("request_id".into(), optional(request_id));
        fields.insert("data".into(), self.data.clone());
        fields.insert(
            "explanation".into(),
            Value::String(self.explanation.clone()),
        );
        fields.insert(
            "prev_hash".into(),
            Value::String(self.prev_hash.to_string()),
        );
        Value::Object(fields)
    }
}

/// Reads an event number; serde's own message would call it a `u64`.
pub(crate) fn deserialize_seq<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    struct SeqVisitor;

    impl Visitor<'_> for SeqVisitor {
        type Value = u64;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an event number (a whole number, 0 or more)")
        }

        fn visit_u64<E>(self, value: u64) -> Result<u64, E> {
            Ok(value)
        }
    }

    deserializer.deserialize_u64(SeqVisitor)
}

/// How a request's command differed from its requester's last request for the same program, as
/// the broker compared them when it opened the request (`countersign_model::usual`, recorded in
/// the `request.created` event): one sentence each, cleaned again; empty when it said nothing.
pub fn unusual_of(events: &[AuditEvent]) -> Vec<String> {
    events
        .iter()
        .find(|e| e.kind == crate::EventKind::RequestCreated)
        .map(|e| countersign_model::usual::recorded(&e.data))
        .unwrap_or_default()
}
