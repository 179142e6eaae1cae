//! The audit log over HTTP: read it, verify it, export it, and let enforcement points append what
//! they decided locally. Nobody can change or delete an event through any of these.

use std::collections::HashSet;
use std::sync::Arc;

use axum::Json;
use axum::extract::State as AxumState;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use countersign_api::{AppendBody, Appended, AuditKey, AuditPage, ErrorCode};
use countersign_approval::Request;
use countersign_audit::{
    AuditEvent, ChainSummary, EventKind, VerifyError, render_export, verify_with_checkpoints,
};
use countersign_model::RequestId;
use countersign_policy::Outcome;
use countersign_store::GrantStatus;
use serde::Deserialize;
use serde_json::{Value, json};

use super::input::{MAX_EXACT, inexact_number};
use super::requests::visible;
use super::{Body, Caller, Query, within};
use crate::error::ApiError;
use crate::state::{State, draft, now};

/// The longest `data.event_id` a reported event may carry, in characters.
const MAX_EVENT_ID: usize = 256;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    after: Option<u64>,
    limit: Option<u32>,
}

pub async fn list(
    AxumState(state): AxumState<Arc<State>>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    caller.require_human("read the audit log")?;
    let after = query.after.unwrap_or(0);
    let limit = within("limit", query.limit, 1, 5000)?.unwrap_or(500);
    let events = state.store.audit_after(after, limit).await?;
    let last = events.last().map_or(after, |e| e.seq);
    let checkpoints = state.store.checkpoints(after, last).await?;
    Ok(Json(AuditPage {
        events,
        checkpoints,
    }))
}

/// Every event of the log, read in pages.
async fn all_events(state: &State) -> Result<Vec<AuditEvent>, ApiError> {
    let mut events = Vec::new();
    loop {
        let after = events.last().map_or(0, |e: &AuditEvent| e.seq);
        let page = state.store.audit_after(after, 10_000).await?;
        if page.is_empty() {
            return Ok(events);
        }
        events.extend(page);
    }
}

/// Verifies the whole log: every event's hash and link, and every checkpoint's signature.
pub(crate) async fn verify_log(state: &State) -> Result<AuditVerification, ApiError> {
    let events = all_events(state).await?;
    let checkpoints = state.store.checkpoints(0, u64::MAX).await?;
    Ok(AuditVerification {
        checkpoints: checkpoints.len(),
        result: verify_with_checkpoints(&events, &checkpoints, &state.public_key),
    })
}

/// What verifying the audit log found.
#[derive(Debug)]
pub struct AuditVerification {
    /// How many signed checkpoints were checked.
    pub checkpoints: usize,
    /// The verified chain, or the first broken link in words.
    pub result: Result<ChainSummary, VerifyError>,
}

pub async fn verify(
    AxumState(state): AxumState<Arc<State>>,
    caller: Caller,
) -> Result<Json<countersign_api::AuditVerification>, ApiError> {
    caller.require_human("verify the audit log")?;
    let verification = verify_log(&state).await?;
    Ok(Json(match verification.result {
        Ok(summary) => countersign_api::AuditVerification::Intact {
            events: summary.count as u64,
            head: summary.head,
            checkpoints: Some(verification.checkpoints as u64),
        },
        Err(error) => countersign_api::AuditVerification::Broken {
            error: error.to_string(),
            seq: Some(error.seq()),
        },
    }))
}

pub async fn export(
    AxumState(state): AxumState<Arc<State>>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_human("export the audit log")?;
    let events = all_events(&state).await?;
    let checkpoints = state.store.checkpoints(0, u64::MAX).await?;
    let text =
        render_export(&events, &checkpoints).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], text))
}

pub async fn key(AxumState(state): AxumState<Arc<State>>, _caller: Caller) -> Json<AuditKey> {
    Json(AuditKey {
        public_key: state.public_key,
    })
}

pub async fn append(
    AxumState(state): AxumState<Arc<State>>,
    caller: Caller,
    Body(body): Body<AppendBody>,
) -> Result<Json<Appended>, ApiError> {
    if body.events.len() > 1000 {
        return Err(ApiError::bad_request("at most 1000 events per call"));
    }
    let at = now();
    let mut reported = Vec::with_capacity(body.events.len());
    // Each request an outcome names is checked once per batch (a refusal ends the batch).
    let mut allowed: HashSet<RequestId> = HashSet::new();
    for (i, event) in body.events.into_iter().enumerate() {
        let kind = EventKind::from(event.kind);
        let mut data = event.data;
        if !data.is_object() {
            return Err(ApiError::bad_request(format!(
                "events[{i}]: data must be a JSON object"
            )));
        }
        if let Some(named) = data.pointer("/action/principal/id")
            && named != &json!(caller.0.id)
        {
            return Err(ApiError::bad_request(format!(
                "events[{i}]: data.action.principal.id is {named}, but {} reports it; an \
                 enforcement point reports only the actions of the principal whose token it uses",
                caller.0.id
            )));
        }
        match (kind, event.request_id) {
            (EventKind::ActionOutcome, None) => {
                return Err(ApiError::bad_request(format!(
                    "events[{i}]: an action.outcome names the request whose action ran: add \
                     request_id"
                )));
            }
            (EventKind::ActionOutcome, Some(id)) => {
                if !allowed.contains(&id) {
                    // Another agent's request does not exist for this one, as everywhere.
                    let checked = async {
                        let request = visible(&state, &caller, id).await?;
                        outcome_allowed(&state, &caller, &request).await
                    };
                    if let Err(why) = checked.await {
                        return Err(ApiError::new(
                            why.status,
                            why.code,
                            format!("events[{i}]: {}", why.message),
                        ));
                    }
                    allowed.insert(id);
                }
            }
            (kind, Some(id)) => {
                return Err(ApiError::bad_request(format!(
                    "events[{i}]: an {kind} event is a decision made without a request, but it \
                     names request {id}: remove request_id"
                )));
            }
            (_, None) => {}
        }
        crate::trust::check_reported(&caller.0, caller.1.as_ref(), &data, i)?;
        if let Some(path) = inexact_number(&data, &format!("events[{i}].data")) {
            return Err(ApiError::bad_request(format!(
                "the field {path}: numbers in an audit event must be within ±{MAX_EXACT}, which \
                 canonical JSON (RFC 8785) represents exactly; send larger ones as strings"
            )));
        }
        let event_id = match data.get("event_id") {
            None => None,
            Some(Value::String(id)) if !id.is_empty() && id.chars().count() <= MAX_EVENT_ID => {
                Some(id.clone())
            }
            Some(_) => {
                return Err(ApiError::bad_request(format!(
                    "events[{i}]: data.event_id must be a string of 1 to {MAX_EVENT_ID} characters \
                     (the reporter's own id for the event, which makes sending it again harmless)"
                )));
            }
        };
        data["reported_by"] = json!(caller.0.id);
        let event =
            draft(at, kind, &caller.0.id, event.request_id, event.explanation).with_data(data);
        reported.push(crate::reported::checked(&state, &caller.0, event_id, event));
    }
    let (appended, repeated) =
        state
            .store
            .append_reported(reported)
            .await
            .map_err(|e| match e {
                countersign_store::StoreError::Audit(seal) => {
                    ApiError::bad_request(seal.to_string())
                }
                other => ApiError::from(other),
            })?;
    // Decisions made locally count once recorded; a repeated batch appends nothing, so counts
    // nothing again.
    for event in &appended {
        match event.event_kind() {
            Some(EventKind::ActionAllowed) => state.metrics.reported_decision(Outcome::Allow),
            Some(EventKind::ActionDenied) => state.metrics.reported_decision(Outcome::Deny),
            _ => {}
        }
    }
    Ok(Json(Appended {
        // Alerts about the reports are not the reporter's events: its answer stays silent on them.
        appended: crate::reported::appended(&state, &appended) as u64,
        already_recorded: repeated as u64,
    }))
}

/// Whether `caller` may report the outcome of `request`, one it can see (`visible`): only its
/// requester, and only once the approval was used (a grant consumed), since before that nothing
/// ran. `Err` says why not: 403 for a human reporting another principal's request, 409 `not_run`
/// before its grant was consumed.
pub(crate) async fn outcome_allowed(
    state: &State,
    caller: &Caller,
    request: &Request,
) -> Result<(), ApiError> {
    let id = request.id;
    if request.action.principal.id != caller.0.id {
        return Err(ApiError::forbidden(format!(
            "only the requester ({}) records the outcome of request {id}",
            request.action.principal.id
        )));
    }
    match state.store.grant_status(id, now()).await? {
        GrantStatus::Consumed => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::NotRun,
            format!(
                "the approval of request {id} was never used (no grant of it was consumed), so its \
                 action has not run and has no outcome yet; consume the grant first"
            ),
        )),
    }
}
