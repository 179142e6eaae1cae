//! Requests: list, show, wait for a decision, review, cancel, and record the outcome.
//! Reviews and cancellations go through the approval core inside one store transaction.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, StatusCode};
use countersign_api::{
    ErrorCode, OutcomeBody, OutcomeRecorded, OutcomeStatus, RequestList, ReviewBody,
};
use countersign_approval::{
    Authentication, Channel, DEFAULT_GRANT_TTL, Event, Grant, Request, Review, Reviewer,
    State as RequestState, Verdict,
};
use countersign_approval::{GrantClaims, Refusal};
use countersign_audit::{EventDraft, EventKind};
use countersign_model::{PrincipalKind, RequestId, Timestamp};
use countersign_store::{GrantStatus, RequestFilter, Update, Updated};
use serde::Deserialize;
use serde_json::json;
use tokio::time::Instant;

use super::{Body, Caller, PathId, Query, wait_duration, within};
use crate::config::Principal;
use crate::error::ApiError;
use crate::state::{State, draft, new_grant_id, now};
use crate::views::{GrantView, RequestView, view};

/// Loads a request the caller may see: humans see every request, agents their own.
pub(super) async fn visible(
    state: &State,
    caller: &Caller,
    id: RequestId,
) -> Result<Request, ApiError> {
    let request = state
        .store
        .get_request(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("request {id} does not exist")))?;
    if caller.is_human() || request.action.principal.id == caller.0.id {
        Ok(request)
    } else {
        Err(ApiError::not_found(format!("request {id} does not exist")))
    }
}

/// Waits until the request is decided or `timeout` passes; returns it as it then stands.
pub async fn wait_for_decision(
    state: &State,
    id: RequestId,
    timeout: Duration,
) -> Result<Request, ApiError> {
    let deadline = Instant::now() + timeout;
    // Subscribe before reading, so a decision landing in between still wakes us.
    let mut changes = state.waiters.subscribe(id);
    loop {
        let request = state
            .store
            .get_request(id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("request {id} does not exist")))?;
        if !request.state.is_pending() {
            return Ok(request);
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => continue,
            // Timed out, or the channel closed: answer with the request as it stands.
            _ => return Ok(request),
        }
    }
}

/// The `grant.issued` audit event.
fn grant_issued(at: Timestamp, request: &Request, claims: &GrantClaims) -> EventDraft {
    let requester = &request.action.principal.id;
    draft(
        at,
        EventKind::GrantIssued,
        requester,
        Some(request.id),
        format!(
            "A grant for request {} was issued to {requester}, valid until {}, for the action with digest {}.",
            request.id, claims.expires_at, request.digest
        ),
    )
    .with_data(json!({ "grant": claims.grant, "expires_at": claims.expires_at }))
}

/// The view of a request after waiting; the requester of an approved request also gets its grant:
/// the one the approval wrote (re-signed, which gives the same token and writes nothing), or, once
/// that has expired unused, a new one.
pub async fn decided_view(
    state: &State,
    caller: &Caller,
    request: &Request,
) -> Result<RequestView, ApiError> {
    let is_requester = request.action.principal.id == caller.0.id;
    if !is_requester || !matches!(request.state, RequestState::Approved { .. }) {
        return Ok(view(request, None));
    }
    let at = now();
    let claims = match state.store.grant_status(request.id, at).await? {
        // Consuming it decides again; handing it out writes nothing.
        GrantStatus::Active(claims) => claims,
        GrantStatus::Consumed => return Ok(view(request, None)),
        GrantStatus::None => {
            // A new grant only while the approval lasts, and only if the policy in force still
            // lets the approval stand: otherwise the requester is told why there is none.
            let decision = state.policy().decide(&request.action);
            if let Err(lapse) = request.approval_in_force(&decision, at) {
                let mut shown = view(request, None);
                shown.summary = format!("approved, but no grant can be issued: {lapse}");
                return Ok(shown);
            }
            let grant_id = new_grant_id()?;
            let grant = Grant::issue(request, grant_id, at, DEFAULT_GRANT_TTL, &state.key)
                .map_err(|e| {
                    ApiError::new(
                        StatusCode::CONFLICT,
                        ErrorCode::AlreadyDecided,
                        e.to_string(),
                    )
                })?;
            state
                .store
                .insert_grant(
                    &grant.claims,
                    vec![grant_issued(at, request, &grant.claims)],
                )
                .await?;
            grant.claims
        }
    };
    let grant = Grant::sign(claims, &state.key);
    Ok(view(
        request,
        Some(GrantView {
            token: grant.token,
            expires_at: grant.claims.expires_at,
        }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    state: Option<String>,
    limit: Option<u32>,
}

pub async fn list(
    AxumState(state): AxumState<Arc<State>>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<RequestList>, ApiError> {
    if let Some(s) = &query.state
        && !["pending", "approved", "denied", "expired", "cancelled"].contains(&s.as_str())
    {
        return Err(ApiError::bad_request(format!(
            "state '{s}' is not one of pending, approved, denied, expired, cancelled"
        )));
    }
    let filter = RequestFilter {
        state: query.state,
        requester: (!caller.is_human()).then(|| caller.0.id.clone()),
        limit: within("limit", query.limit, 1, 500)?.unwrap_or(50),
        ..Default::default()
    };
    let requests = state.store.list_requests(&filter).await?;
    let requests = requests.iter().map(|r| view(r, None)).collect();
    Ok(Json(RequestList { requests }))
}

pub async fn show(
    AxumState(state): AxumState<Arc<State>>,
    caller: Caller,
    PathId(id): PathId,
) -> Result<Json<RequestView>, ApiError> {
    let request = visible(&state, &caller, id).await?;
    Ok(Json(view(&request, None)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    timeout: Option<String>,
}

pub async fn wait(
    AxumState(state): AxumState<Arc<State>>,
    caller: Caller,
    PathId(id): PathId,
    Query(query): Query<WaitQuery>,
) -> Result<Json<RequestView>, ApiError> {
    let timeout = wait_duration(query.timeout.as_deref().unwrap_or("30s"))?;
    visible(&state, &caller, id).await?;
    let request = wait_for_decision(&state, id, timeout).await?;
    Ok(Json(decided_view(&state, &caller, &request).await?))
}

/// Applies one event to a request through the core, records it, wakes waiters; refusals are
/// recorded too (an attempted self-approval is worth an auditor's eye) and answered with the reason.
async fn transition(
    state: &State,
    actor: &str,
    id: RequestId,
    event: Event,
    describe: String,
) -> Result<Request, ApiError> {
    let at = now();
    let kind = match &event {
        Event::Review(r) if r.verdict == Verdict::Approve => EventKind::ReviewApproved,
        Event::Review(_) => EventKind::ReviewDenied,
        Event::Cancel { .. } => EventKind::RequestCancelled,
        Event::Expire { .. } => EventKind::RequestExpired,
    };
    let recorded = describe.clone();
    // Drawn now, used only if this event approves the request: the grant is then written in the
    // same transaction, so the waiting requester's wake-up needs no write of its own.
    let grant_id = new_grant_id()?;
    let key = state.key.clone();
    let by = actor.to_owned();
    let outcome = state
        .store
        .update_request(
            id,
            Box::new(move |current: &Request| {
                let next = current.apply(&event)?;
                let mut audit = vec![draft(at, kind, &by, Some(id), recorded)];
                let mut grant = None;
                match &next.state {
                    RequestState::Approved { .. } => {
                        audit.push(draft(
                            at,
                            EventKind::RequestApproved,
                            &by,
                            Some(id),
                            format!("Request {id} is approved: every requirement is met."),
                        ));
                        // INVARIANT: `next` is approved, the only state Grant::issue refuses to leave.
                        if let Ok(issued) =
                            Grant::issue(&next, grant_id, at, DEFAULT_GRANT_TTL, &key)
                        {
                            audit.push(grant_issued(at, &next, &issued.claims));
                            grant = Some(issued.claims);
                        }
                    }
                    RequestState::Denied { by: denier, .. } if kind == EventKind::ReviewDenied => audit
                        .push(draft(
                            at,
                            EventKind::RequestDenied,
                            &by,
                            Some(id),
                            format!(
                                "Request {id} is denied: {denier} denied it. The action will not run."
                            ),
                        )),
                    _ => {}
                }
                Ok(Update {
                    request: next,
                    audit,
                    grant,
                })
            }),
        )
        .await?;
    match outcome {
        Updated::Applied { request, .. } => {
            let published = match request.state {
                RequestState::Pending => kind,
                RequestState::Approved { .. } => EventKind::RequestApproved,
                RequestState::Denied { .. } if kind == EventKind::ReviewDenied => {
                    EventKind::RequestDenied
                }
                _ => kind,
            };
            if !request.state.is_pending() {
                state.metrics.request_closed(request.created_at.until(at));
            }
            state.changed(id, published);
            Ok(request)
        }
        Updated::Refused { refusal, .. } => Err(refuse(
            state,
            actor,
            id,
            format!("Refused: {describe}. Reason: {refusal}."),
            refusal,
        )
        .await),
    }
}

/// Records a refused review or cancellation (an attempted self-approval is worth an auditor's
/// eye) and turns it into the answer. Recording is best effort: the refusal is answered anyway.
async fn refuse(
    state: &State,
    actor: &str,
    id: RequestId,
    explanation: String,
    refusal: Refusal,
) -> ApiError {
    let refused = draft(
        now(),
        EventKind::ReviewRefused,
        actor,
        Some(id),
        explanation,
    );
    if let Err(error) = state.audit.append(refused).await {
        tracing::error!(%error, "cannot record a refused review");
    }
    ApiError::from(refusal)
}

/// The one path every review takes, whatever channel it came through (API, CLI, Slack, the web
/// inbox): agents are refused, the comment is bounded, and the approval core decides the rest
/// (self-approval, eligibility, quorum) inside the store's transaction.
pub(crate) async fn submit_review(
    state: &State,
    principal: &Principal,
    id: RequestId,
    verdict: Verdict,
    comment: Option<String>,
    channel: Channel,
    authentication: Authentication,
) -> Result<Request, ApiError> {
    if principal.kind != PrincipalKind::Human {
        let refusal = Refusal::Agent {
            reviewer: principal.id.clone(),
            kind: principal.kind,
        };
        let explanation = format!("Refused: {refusal}.");
        return Err(refuse(state, &principal.id, id, explanation, refusal).await);
    }
    if comment.as_ref().is_some_and(|c| c.chars().count() > 2000) {
        return Err(ApiError::bad_request(
            "the comment is longer than 2000 characters",
        ));
    }
    let quoted = comment
        .as_ref()
        .map(|c| format!(" with the comment \"{c}\""))
        .unwrap_or_default();
    let via = match channel {
        Channel::Api | Channel::Cli => String::new(),
        other => format!(" in {}", channel_name(other)),
    };
    let describe = format!(
        "{} chose to {verdict} request {id}{via}{quoted}",
        principal.id
    );
    let review = Review {
        reviewer: Reviewer {
            id: principal.id.clone(),
            kind: principal.kind,
            groups: principal.groups.clone(),
            authentication,
        },
        verdict,
        comment,
        channel,
        at: now(),
    };
    transition(state, &principal.id, id, Event::Review(review), describe).await
}

fn channel_name(channel: Channel) -> &'static str {
    match channel {
        Channel::Api => "the API",
        Channel::Cli => "the command line",
        Channel::Web => "the web inbox",
        Channel::Slack => "Slack",
        Channel::Teams => "Microsoft Teams",
    }
}

pub async fn review(
    AxumState(state): AxumState<Arc<State>>,
    caller: Caller,
    headers: HeaderMap,
    PathId(id): PathId,
    Body(body): Body<ReviewBody>,
) -> Result<Json<RequestView>, ApiError> {
    // The CLI says so; anything else through the API is the API.
    let channel = match headers
        .get("x-countersign-channel")
        .and_then(|v| v.to_str().ok())
    {
        Some("cli") => Channel::Cli,
        _ => Channel::Api,
    };
    let request = submit_review(
        &state,
        &caller.0,
        id,
        body.verdict,
        body.comment,
        channel,
        Authentication::ApiToken,
    )
    .await?;
    Ok(Json(view(&request, None)))
}

pub async fn cancel(
    AxumState(state): AxumState<Arc<State>>,
    caller: Caller,
    PathId(id): PathId,
) -> Result<Json<RequestView>, ApiError> {
    let request = cancel_request(&state, &caller, id).await?;
    Ok(Json(view(&request, None)))
}

/// Cancels a request the caller may see, whatever channel asked: the approval core decides
/// whether the caller may (its requester or a human in its chain).
pub(crate) async fn cancel_request(
    state: &State,
    caller: &Caller,
    id: RequestId,
) -> Result<Request, ApiError> {
    visible(state, caller, id).await?;
    let describe = format!(
        "{} cancelled request {id}; the action will not run",
        caller.0.id
    );
    let event = Event::Cancel {
        by: caller.0.id.clone(),
        at: now(),
    };
    transition(state, &caller.0.id, id, event, describe).await
}

pub async fn outcome(
    AxumState(state): AxumState<Arc<State>>,
    caller: Caller,
    PathId(id): PathId,
    Body(body): Body<OutcomeBody>,
) -> Result<Json<OutcomeRecorded>, ApiError> {
    let exit_code = body.exit_code.as_ref().map(exit_status).transpose()?;
    let request = visible(&state, &caller, id).await?;
    super::audit::outcome_allowed(&state, &caller, &request).await?;
    let summary: String = body
        .summary
        .unwrap_or_default()
        .chars()
        .take(1000)
        .collect();
    let verb = match body.status {
        OutcomeStatus::Ran => "ran",
        OutcomeStatus::Failed => "failed",
    };
    let exit = exit_code
        .map(|c| format!(" with exit status {c}"))
        .unwrap_or_default();
    let event = draft(
        now(),
        EventKind::ActionOutcome,
        &caller.0.id,
        Some(id),
        format!("The action of request {id} {verb}{exit}."),
    )
    .with_data(json!({ "status": body.status, "exit_code": exit_code, "summary": summary }));
    state.store.append_audit(vec![event]).await?;
    state.changed(id, EventKind::ActionOutcome);
    Ok(Json(OutcomeRecorded { recorded: true }))
}

/// An exit status as JSON writes it: `1`, or `1.0` (the same number to JSON Schema).
fn exit_status(n: &serde_json::Number) -> Result<i32, ApiError> {
    n.as_i64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() <= f64::from(i32::MAX) + 1.0)
                .map(|f| f as i64)
        })
        .and_then(|whole| i32::try_from(whole).ok())
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "the field exit_code: {n} is not a whole number from {} to {}",
                i32::MIN,
                i32::MAX
            ))
        })
}
