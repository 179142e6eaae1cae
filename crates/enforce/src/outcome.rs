//! Recording how an approved action went: on its request, or, when the broker cannot take it now
//! and the enforcement point has a spool, in the spool, shipped with the rest.

use countersign_client::{Client, ClientError, OutcomeStatus, ReportedEvent, ReportedEventType};
use countersign_model::RequestId;
use serde_json::json;

use crate::spool::{Spool, SpoolError};

/// Why an outcome was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum Unrecorded {
    /// The broker did not take it, and there is no spool to keep it.
    #[error(transparent)]
    Broker(ClientError),
    /// The broker did not take it, and neither did the spool.
    #[error(transparent)]
    Spool(SpoolError),
}

/// How an approved action went.
#[derive(Debug, Clone, Copy)]
pub struct Report<'a> {
    pub request: RequestId,
    pub status: OutcomeStatus,
    pub exit_code: Option<i32>,
    pub summary: &'a str,
}

/// Records `report` on its request; when the broker cannot take it and `spool` is given, appends
/// it to the spool as an `action.outcome` event instead.
pub async fn record(
    client: &Client,
    spool: Option<&Spool>,
    report: Report<'_>,
) -> Result<(), Unrecorded> {
    let Report {
        request,
        status,
        exit_code,
        summary,
    } = report;
    let Err(e) = client
        .record_outcome(request, status, exit_code, Some(summary))
        .await
    else {
        return Ok(());
    };
    let Some(spool) = spool else {
        return Err(Unrecorded::Broker(e));
    };
    tracing::warn!("the outcome of request {request} goes to the spool: {e}");
    let mut data = json!({"status": status, "summary": summary});
    if let (Some(code), Some(data)) = (exit_code, data.as_object_mut()) {
        data.insert("exit_code".into(), json!(code));
    }
    let event = ReportedEvent {
        kind: ReportedEventType::ActionOutcome,
        request_id: Some(request),
        data,
        explanation: format!("The action of request {request} {status}."),
    };
    spool.append(event).map_err(Unrecorded::Spool)
}
