//! `POST /v1/grants/consume`: the enforcement point's last check before it runs an approved
//! action. The grant must be signed by this broker, bound to the digest of the action about to run,
//! unexpired, and unused: an approval runs at most once.

use std::sync::Arc;

use axum::Json;
use axum::extract::State as AxumState;
use axum::http::StatusCode;
use countersign_api::{ConsumeBody, ErrorCode, GrantConsumed};
use countersign_approval::{Grant, GrantClaims, Lapse, Request};
use countersign_audit::EventKind;
use countersign_model::Digest;
use countersign_policy::Decision;
use countersign_store::Consumed;
use serde_json::json;

use super::{Body, Caller};
use crate::error::ApiError;
use crate::state::{State, draft, now};

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, ErrorCode::GrantInvalid, message)
}

/// Records that a grant was not used because its approval no longer stands, and says why. The
/// refusal is answered even if it cannot be recorded: the action does not run either way.
async fn refuse(
    state: &State,
    caller: &Caller,
    request: &Request,
    claims: &GrantClaims,
    decision: &Decision,
    policy: Digest,
    lapse: Lapse,
) -> ApiError {
    let (code, message) = match &lapse {
        Lapse::DeniedNow { .. } => (ErrorCode::Denied, format!("{lapse}; it did not run")),
        Lapse::RequirementsUnmet { .. } => (
            ErrorCode::ApprovalOutdated,
            format!("{lapse}; it did not run"),
        ),
        Lapse::Expired { .. } => (
            ErrorCode::ApprovalExpired,
            format!("{lapse}; it did not run"),
        ),
        Lapse::NotApproved { .. } => (ErrorCode::GrantInvalid, lapse.to_string()),
    };
    let refused = draft(
        now(),
        EventKind::GrantRefused,
        &caller.0.id,
        Some(request.id),
        format!(
            "{} could not use the approval of request {}: {message}.",
            caller.0.id, request.id
        ),
    )
    .with_data(json!({
        "grant": claims.grant,
        "digest": claims.digest,
        "rules": decision.rules,
        "decision": decision.outcome,
        "policy": policy,
    }));
    if let Err(error) = state.audit.append(refused).await {
        tracing::error!(%error, "cannot record a refused grant");
    }
    ApiError::new(StatusCode::FORBIDDEN, code, message)
}

pub async fn consume(
    AxumState(state): AxumState<Arc<State>>,
    caller: Caller,
    Body(body): Body<ConsumeBody>,
) -> Result<Json<GrantConsumed>, ApiError> {
    let at = now();
    let claims = Grant::verify(&body.token, &state.public_key, &body.digest, None, at)
        .map_err(|e| invalid(e.to_string()))?;
    let request = state
        .store
        .get_request(claims.request)
        .await?
        .ok_or_else(|| {
            invalid(format!(
                "the grant names request {}, which does not exist",
                claims.request
            ))
        })?;
    if request.action.principal.id != caller.0.id {
        return Err(invalid(format!(
            "the grant was issued to {}, not to {}",
            request.action.principal.id, caller.0.id
        )));
    }
    // The last check before the action runs decides it again with the policy in force now.
    let policy = state.policy();
    let decision = policy.decide(&request.action);
    if let Err(lapse) = request.approval_in_force(&decision, at) {
        return Err(refuse(
            &state,
            &caller,
            &request,
            &claims,
            &decision,
            policy.hash(),
            lapse,
        )
        .await);
    }
    let consumed = draft(
        at,
        EventKind::GrantConsumed,
        &caller.0.id,
        Some(request.id),
        format!(
            "{} used the approval of request {} to run the action with digest {}.",
            caller.0.id, request.id, body.digest
        ),
    )
    .with_data(json!({ "grant": claims.grant, "digest": body.digest }));
    let (verdict, _) = state
        .store
        .consume_grant(claims.grant, request.id, body.digest, at, vec![consumed])
        .await?;
    match verdict {
        Consumed::Ok => Ok(Json(GrantConsumed {
            consumed: true,
            request: request.id,
        })),
        Consumed::AlreadyUsed { at } => Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::GrantUsed,
            format!(
                "the approval of request {} was already used at {at}; an approval runs once",
                request.id
            ),
        )),
        Consumed::Expired { at } => Err(invalid(format!("the grant expired at {at}"))),
        Consumed::WrongDigest => Err(invalid("the grant approves a different action")),
        Consumed::Unknown => Err(invalid("this broker never issued that grant")),
    }
}
