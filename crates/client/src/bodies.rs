//! What the client sends: the request bodies of countersign-api. Strict: every body has exactly
//! the fields docs/api.md names, and reading one back refuses unknown fields, so a typo cannot
//! slip a field past the broker unnoticed.

pub use countersign_api::{
    ActionBody as ActionRequest, OutcomeStatus, ReportedEvent, ReportedEventType,
};
pub(crate) use countersign_api::{ConsumeBody, OutcomeBody, ReviewBody};
use serde::Serialize;

/// A batch of events for `POST /v1/audit/events`: typed events, or ones a spool kept already
/// serialized (`&RawValue`), sent on without being decoded again.
#[derive(Debug, Serialize)]
pub(crate) struct AppendBody<'a, E> {
    pub events: &'a [E],
}
