//! The audit log as the API shows it: pages of events and checkpoints, and the broker's own
//! verification. Events and checkpoints travel in wire shapes that ignore fields they do not
//! know, and reach readers as the audit crate's types, which verification works on.

use countersign_audit::{AuditEvent, ChainHead, Checkpoint};
use countersign_model::{Digest, RequestId, Timestamp};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use utoipa::ToSchema;

use crate::openapi::schemas;

/// A page of the audit log (`GET /v1/audit`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    #[serde(serialize_with = "events_out", deserialize_with = "events_in")]
    #[schema(value_type = Vec<AuditEventView>)]
    pub events: Vec<AuditEvent>,
    /// The checkpoints that sign events of this page.
    #[serde(
        default,
        serialize_with = "checkpoints_out",
        deserialize_with = "checkpoints_in"
    )]
    #[schema(value_type = Vec<CheckpointView>)]
    pub checkpoints: Vec<Checkpoint>,
}

/// One audit event on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEventView {
    pub seq: u64,
    #[schema(schema_with = schemas::timestamp)]
    pub time: Timestamp,
    /// The event's type, such as `request.created` (the audit crate's `EventKind`).
    #[serde(rename = "type")]
    pub kind: String,
    pub principal: Option<String>,
    #[schema(schema_with = schemas::request_id_or_null)]
    pub request_id: Option<RequestId>,
    /// Structured details; a JSON object.
    #[schema(schema_with = schemas::json_object)]
    pub data: Value,
    pub explanation: String,
    #[schema(schema_with = schemas::digest)]
    pub prev_hash: Digest,
    #[schema(schema_with = schemas::digest)]
    pub hash: Digest,
}

impl From<&AuditEvent> for AuditEventView {
    fn from(e: &AuditEvent) -> AuditEventView {
        AuditEventView {
            seq: e.seq,
            time: e.time,
            kind: e.kind.clone(),
            principal: e.principal.clone(),
            request_id: e.request_id,
            data: e.data.clone(),
            explanation: e.explanation.clone(),
            prev_hash: e.prev_hash,
            hash: e.hash,
        }
    }
}

impl From<AuditEventView> for AuditEvent {
    fn from(e: AuditEventView) -> AuditEvent {
        AuditEvent {
            seq: e.seq,
            time: e.time,
            kind: e.kind,
            principal: e.principal,
            request_id: e.request_id,
            data: e.data,
            explanation: e.explanation,
            prev_hash: e.prev_hash,
            hash: e.hash,
        }
    }
}

/// A signed statement that event `seq` of the log had hash `head_hash` at `time`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CheckpointView {
    pub seq: u64,
    #[schema(schema_with = schemas::digest)]
    pub head_hash: Digest,
    #[schema(schema_with = schemas::timestamp)]
    pub time: Timestamp,
    pub key_id: String,
    pub signature: String,
}

impl From<&Checkpoint> for CheckpointView {
    fn from(c: &Checkpoint) -> CheckpointView {
        CheckpointView {
            seq: c.seq,
            head_hash: c.head_hash,
            time: c.time,
            key_id: c.key_id.clone(),
            signature: c.signature.clone(),
        }
    }
}

impl From<CheckpointView> for Checkpoint {
    fn from(c: CheckpointView) -> Checkpoint {
        Checkpoint {
            seq: c.seq,
            head_hash: c.head_hash,
            time: c.time,
            key_id: c.key_id,
            signature: c.signature,
        }
    }
}

fn events_out<S: Serializer>(events: &[AuditEvent], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(events.iter().map(AuditEventView::from))
}

fn events_in<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<AuditEvent>, D::Error> {
    Vec::<AuditEventView>::deserialize(deserializer)
        .map(|views| views.into_iter().map(AuditEvent::from).collect())
}

fn checkpoints_out<S: Serializer>(
    checkpoints: &[Checkpoint],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(checkpoints.iter().map(CheckpointView::from))
}

fn checkpoints_in<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Checkpoint>, D::Error> {
    Vec::<CheckpointView>::deserialize(deserializer)
        .map(|views| views.into_iter().map(Checkpoint::from).collect())
}

/// Where a verified chain ends: the number and hash of its last event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChainHeadView {
    pub seq: u64,
    #[schema(schema_with = schemas::digest)]
    pub hash: Digest,
}

/// The broker's verification of its own audit log (`GET /v1/audit/verify`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawVerification", into = "RawVerification")]
pub enum AuditVerification {
    /// Every event chains and every checkpoint matches.
    Intact {
        events: u64,
        /// `None` for an empty log.
        head: Option<ChainHead>,
        checkpoints: Option<u64>,
    },
    /// The first broken link, as a sentence an auditor can act on.
    Broken { error: String, seq: Option<u64> },
}

impl AuditVerification {
    pub fn is_intact(&self) -> bool {
        matches!(self, AuditVerification::Intact { .. })
    }
}

/// The wire shape: `{"ok": true, "events", "head", "checkpoints"}` or `{"ok": false, "error",
/// "seq"}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = AuditVerification)]
pub struct RawVerification {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<ChainHeadView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoints: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

impl TryFrom<RawVerification> for AuditVerification {
    type Error = String;

    fn try_from(raw: RawVerification) -> Result<Self, Self::Error> {
        if raw.ok {
            let events = raw
                .events
                .ok_or("a successful verification must say how many events it checked")?;
            Ok(AuditVerification::Intact {
                events,
                head: raw.head.map(|h| ChainHead {
                    seq: h.seq,
                    hash: h.hash,
                }),
                checkpoints: raw.checkpoints,
            })
        } else {
            let error = raw
                .error
                .ok_or("a failed verification must name the broken link")?;
            Ok(AuditVerification::Broken {
                error,
                seq: raw.seq,
            })
        }
    }
}

impl From<AuditVerification> for RawVerification {
    fn from(verification: AuditVerification) -> Self {
        match verification {
            AuditVerification::Intact {
                events,
                head,
                checkpoints,
            } => RawVerification {
                ok: true,
                events: Some(events),
                head: head.map(|h| ChainHeadView {
                    seq: h.seq,
                    hash: h.hash,
                }),
                checkpoints,
                error: None,
                seq: None,
            },
            AuditVerification::Broken { error, seq } => RawVerification {
                ok: false,
                events: None,
                head: None,
                checkpoints: None,
                error: Some(error),
                seq,
            },
        }
    }
}
