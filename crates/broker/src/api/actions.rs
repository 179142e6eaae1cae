//! `POST /v1/actions`: evaluate an action against the policy in force. Allowed and denied actions
//! answer once their audit event is durable; gated ones open a request, and may wait for it.

use std::sync::Arc;

use axum::Json;
use axum::extract::State as AxumState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use countersign_api::{ActionBody, Allowed, ApprovalRequired, Denied, ErrorCode, EvaluateResponse};
use countersign_approval::Request;
use countersign_audit::EventKind;
use countersign_model::{Action, Chain, Digest, PrincipalKind};
use countersign_policy::Outcome;
use countersign_store::RequestFilter;
use serde::Deserialize;
use serde_json::json;

use super::input::{MAX_EXACT, inexact_number};
use super::requests::{decided_view, wait_for_decision};
use super::{Body, Caller, Query, wait_duration};
use crate::config::Principal;
use crate::error::ApiError;
use crate::service::Submitted;
use crate::state::{State, draft, new_request_id, now};
use crate::trust;
use crate::views::view;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluateQuery {
    wait: Option<String>,
}

/// The humans in the chain: always every human the configuration says the principal acts for.
/// A list the agent sends is checked against them, never taken instead of them: leaving one out
/// would let that human approve the request, naming a stranger would silence a reviewer.
fn chain_humans(
    principal: &Principal,
    named: Option<Vec<String>>,
) -> Result<Vec<String>, ApiError> {
    let configured = &principal.acts_for;
    let Some(named) = named else {
        return Ok(configured.clone());
    };
    let listed = |humans: &[String]| {
        if humans.is_empty() {
            "nobody".to_owned()
        } else {
            humans.join(", ")
        }
    };
    if let Some(stranger) = named.iter().find(|h| !configured.contains(h)) {
        return Err(ApiError::forbidden(format!(
            "{} may not act for {stranger}: the configuration lets it act for {}",
            principal.id,
            listed(configured)
        )));
    }
    if let Some(left_out) = configured.iter().find(|h| !named.contains(h)) {
        return Err(ApiError::forbidden(format!(
            "on_behalf_of leaves out {left_out}: the configuration says {} acts for {}, and every \
             one of them is part of each request it makes (so none of them reviews it); omit \
             on_behalf_of, or name them all",
            principal.id,
            listed(configured)
        )));
    }
    Ok(configured.clone())
}

/// Who started the principal: only ever what the configuration says. An agent naming someone
/// else would take them out of the reviewers of its own request.
fn chain_starter(principal: &Principal, named: Option<String>) -> Result<Option<String>, ApiError> {
    let configured = &principal.started_by;
    match (named, configured) {
        (None, _) => Ok(configured.clone()),
        (Some(named), Some(starter)) if &named == starter => Ok(configured.clone()),
        (Some(named), Some(starter)) => Err(ApiError::forbidden(format!(
            "started_by '{named}' is not who starts {}: the configuration says {starter} does; \
             omit started_by (the broker fills it in from the configuration)",
            principal.id
        ))),
        (Some(named), None) => Err(ApiError::forbidden(format!(
            "started_by '{named}' cannot be accepted: {} has no started_by in the broker's \
             configuration, and an agent cannot name who started it; omit started_by, or ask an \
             administrator to set started_by on {} in the configuration",
            principal.id, principal.id
        ))),
    }
}

pub async fn evaluate(
    AxumState(state): AxumState<Arc<State>>,
    caller: Caller,
    Query(query): Query<EvaluateQuery>,
    Body(mut body): Body<ActionBody>,
) -> Result<Response, ApiError> {
    if let Some(path) = inexact_number(&body.details, "details") {
        return Err(ApiError::bad_request(format!(
            "the field {path}: numbers in details must be within ±{MAX_EXACT}, which canonical \
             JSON (RFC 8785) represents exactly; send larger ones as strings"
        )));
    }
    if caller.0.kind == PrincipalKind::Service {
        return Err(ApiError::forbidden(format!(
            "{} is a service: a service submits only on behalf of an agent; pass the token the \
             agent authenticated with in the Countersign-Agent-Token header",
            caller.0.id
        )));
    }
    let submitter = trust::Submitter {
        requester: Arc::clone(&caller.0),
        via: caller.1.clone(),
    };
    let principal = &submitter.requester;
    let on_behalf_of = chain_humans(principal, body.on_behalf_of.take())?;
    let started_by = chain_starter(principal, body.started_by.take())?;
    body.labels = submitter.labels(std::mem::take(&mut body.labels), &body.resource)?;
    let action = body.into_action(Chain {
        id: principal.id.clone(),
        kind: principal.kind,
        on_behalf_of,
        started_by,
        via: submitter.via.as_ref().map(|service| service.id.clone()),
    });
    let wait = query.wait.as_deref().map(wait_duration).transpose()?;
    let labels = action.labels.clone();
    let submitted = submit_action(&state, action).await?;
    let Submitted {
        decision,
        digest,
        request,
    } = submitted;
    match request {
        None if decision.outcome == Outcome::Allow => {
            let answer = EvaluateResponse::Allow(Allowed {
                rules: decision.rules,
                explanation: decision.explanation,
                digest,
                labels,
            });
            Ok((StatusCode::OK, Json(answer)).into_response())
        }
        None => {
            let error = ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::Denied,
                decision.explanation.clone(),
            );
            let answer = EvaluateResponse::Deny(Denied {
                rules: decision.rules,
                explanation: decision.explanation,
                digest,
                error: Some(error.body().error),
            });
            Ok((StatusCode::FORBIDDEN, Json(answer)).into_response())
        }
        Some(request) => {
            let shown = match wait {
                Some(wait) => {
                    let latest = wait_for_decision(&state, request.id, wait).await?;
                    decided_view(&state, &caller, &latest).await?
                }
                None => view(&request, None),
            };
            let answer = EvaluateResponse::RequireApproval(ApprovalRequired {
                rules: shown.rules.clone(),
                explanation: shown.explanation.clone(),
                digest,
                request: Box::new(shown),
            });
            Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
        }
    }
}

/// Decides an action with the policy in force, whatever channel submits it: an allowed or denied
/// action is answered once its audit event is durable; a gated one opens a request, stored with
/// its `request.created` event.
pub(crate) async fn submit_action(state: &State, action: Action) -> Result<Submitted, ApiError> {
    action
        .validate()
        .map_err(|e| ApiError::bad_request(format!("the action is not valid: {e}")))?;
    let digest = action
        .digest()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let requester = action.principal.id.clone();
    let policy = state.policy();
    let decision = policy.decide(&action);
    state.metrics.decision(decision.outcome);
    let at = now();
    let mut record = json!({
        "digest": digest,
        "rules": decision.rules,
        "policy": policy.hash(),
        "action": action,
    });
    let overridden = claims_overridden(&action, &digest);

    match decision.outcome {
        Outcome::Allow | Outcome::Deny => {
            let kind = if decision.outcome == Outcome::Allow {
                EventKind::ActionAllowed
            } else {
                EventKind::ActionDenied
            };
            let event =
                draft(at, kind, &requester, None, decision.explanation.clone()).with_data(record);
            if let Some((summary, data)) = overridden {
                let overridden = draft(
                    at,
                    EventKind::ActionClaimOverridden,
                    &requester,
                    None,
                    summary,
                )
                .with_data(data);
                state
                    .audit
                    .append(overridden)
                    .await
                    .map_err(|e| ApiError::unavailable(&e))?;
            }
            state
                .audit
                .append(event)
                .await
                .map_err(|e| ApiError::unavailable(&e))?;
            Ok(Submitted {
                decision,
                digest,
                request: None,
            })
        }
        Outcome::RequireApproval => {
            let unusual = unusual(state, &action).await?;
            if !unusual.is_empty() {
                record[countersign_model::usual::UNUSUAL] = json!(unusual);
            }
            let id = new_request_id()?;
            let request = Request::open(id, action, decision.clone(), at)
                .map_err(|e| ApiError::bad_request(format!("the request cannot be opened: {e}")))?;
            let created = draft(
                at,
                EventKind::RequestCreated,
                &requester,
                Some(id),
                request.decision.explanation.clone(),
            )
            .with_data(record);
            let mut events = vec![created];
            if let Some((summary, data)) = overridden {
                events.push(
                    draft(
                        at,
                        EventKind::ActionClaimOverridden,
                        &requester,
                        Some(id),
                        summary,
                    )
                    .with_data(data),
                );
            }
            state.store.create_request(&request, events).await?;
            state.metrics.request_opened();
            state.deadlines.notify_one();
            state.changes.publish(id, EventKind::RequestCreated);
            Ok(Submitted {
                decision,
                digest,
                request: Some(request),
            })
        }
    }
}

/// How a gated `shell.exec` differs from its requester's most recent earlier request for the
/// same program (issue 15), where there is one: a reviewer then sees what is not the agent's
/// usual. Only the requester's last 200 requests are looked at, and only for gated commands, so
/// the cost of a submission stays bounded.
async fn unusual(state: &State, action: &Action) -> Result<Vec<String>, ApiError> {
    if action.kind != countersign_model::summary::SHELL_EXEC {
        return Ok(Vec::new());
    }
    let Some(program) = action.details.get("program").and_then(|p| p.as_str()) else {
        return Ok(Vec::new());
    };
    let filter = RequestFilter {
        requester: Some(action.principal.id.clone()),
        limit: 200,
        ..RequestFilter::default()
    };
    // Newest first: the first with the same program is the last one asked for.
    let earlier = state.store.list_requests(&filter).await?;
    let last = earlier.iter().find(|request| {
        request
            .action
            .details
            .get("program")
            .and_then(|p| p.as_str())
            == Some(program)
    });
    Ok(last.map_or_else(Vec::new, |last| {
        countersign_model::changes_from(&last.action, action)
    }))
}

/// The `action.claim_overridden` event's summary and data where the agent's claims contradict a
/// label: the label was used, and what the agent said is kept for reviewers and investigators.
/// A type of its own rather than data on the decision's event, so that an agent contradicting
/// the configuration can be found and alerted on by type, whether its action was allowed, denied
/// or gated.
fn claims_overridden(action: &Action, digest: &Digest) -> Option<(String, serde_json::Value)> {
    let disagreements = countersign_model::disagreements(&action.labels, &action.claims);
    if disagreements.is_empty() {
        return None;
    }
    let said: Vec<String> = disagreements
        .iter()
        .map(|d| format!("{} is '{}', the agent said '{}'", d.key, d.label, d.claim))
        .collect();
    let summary = format!(
        "the label was kept where the agent's claim disagreed: {}",
        said.join("; ")
    );
    let data = json!({
        "digest": digest,
        "disagreements": disagreements
            .iter()
            .map(|d| json!({ "key": d.key, "label": d.label, "claim": d.claim }))
            .collect::<Vec<_>>(),
    });
    Some((countersign_model::text::clean(&summary), data))
}
