//! The wire types of Countersign's HTTP API v1 (docs/api.md), apart from the domain model so that
//! either can change without the other: what callers send (strict: unknown fields and repeated
//! keys refused), what the broker answers (tolerant: fields a newer broker adds are ignored, at
//! every depth), the closed list of error codes, and conversions at the edge from the core types.
//! The OpenAPI document of the API is generated from these types ([`openapi::document`]).
//!
//! Architecture invariant: like the core it converts from, this crate does no I/O; the broker
//! serves its types and the client reads them.

mod answers;
mod audit;
mod bodies;
mod convert;
mod error;
pub mod openapi;
mod request;

pub use answers::{
    Allowed, Appended, ApprovalRequired, AuditKey, Denied, EvaluateResponse, GrantConsumed, Health,
    OutcomeRecorded, PolicyReloaded, PolicySummary, PolicyView, Readiness, RequestList, Whoami,
};
pub use audit::{
    AuditEventView, AuditPage, AuditVerification, ChainHeadView, CheckpointView, RawVerification,
};
pub use bodies::{
    ActionBody, AppendBody, ConsumeBody, OutcomeBody, OutcomeStatus, ReportedEvent,
    ReportedEventType, ReviewBody,
};
pub use convert::summary;

/// The header through which a service principal names the agent it submits an action for:
/// that agent's own token, which the broker hashes and looks up like any other.
pub const AGENT_TOKEN_HEADER: &str = "Countersign-Agent-Token";
pub use countersign_approval::Verdict;
pub use error::{ErrorBody, ErrorCode, ErrorDetail, ReadCode, UnknownErrorCode};
pub use request::{
    ActionView, ChainView, GrantView, ProgressView, RequestState, RequestView, RequirementView,
    ReviewView, UnknownState,
};
