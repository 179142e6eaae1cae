//! What the broker answers, as typed views mirroring docs/api.md: the wire types of
//! countersign-api.
//!
//! Views ignore fields they do not know, at every depth, so a newer broker can add some without
//! breaking older clients. The action, requirements and audit events reach callers as the core's
//! own types, so a view holds exactly what the core computed.

pub use countersign_api::{
    Allowed, ApprovalRequired, AuditPage, AuditVerification, Denied, ErrorCode, ErrorDetail,
    EvaluateResponse, GrantConsumed, GrantView, Health, PolicyReloaded, PolicyView, ProgressView,
    ReadCode, RequestState, RequestView, ReviewView, UnknownState, Verdict, Whoami,
};
pub(crate) use countersign_api::{Appended, AuditKey, OutcomeRecorded, RequestList};
use serde::Deserialize;

/// `{"error": {...}}` as the client reads it: any code, known or one a newer broker added (see
/// [`ReadCode`]), so a refusal is still reported with its code and sentence.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ErrorBody {
    pub error: ReadError,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ReadError {
    pub code: String,
    pub message: String,
}
