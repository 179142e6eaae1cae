//! Health, metrics, the OpenAPI document, who-am-I, the policy in force and its reload.

use std::sync::Arc;

use axum::Json;
use axum::extract::State as AxumState;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use countersign_api::{ErrorCode, PolicyReloaded, PolicySummary, PolicyView, Readiness, Whoami};
use serde_json::json;

use super::Caller;
use crate::error::ApiError;
use crate::state::State;

/// Whether the store can commit: when it cannot, every call that must record something answers
/// 503, so an orchestrator should alert (or restart, once the disk or the files are restored).
pub async fn healthz(AxumState(state): AxumState<Arc<State>>) -> Response {
    match state.store.health().await {
        Ok(()) => Json(json!({ "ok": true })).into_response(),
        Err(error) => {
            let error = store_cannot_commit(&error);
            let mut body = json!(error.body());
            body["ok"] = json!(false);
            (error.status, Json(body)).into_response()
        }
    }
}

/// Ready for traffic: the store is open and can commit, and a policy is in force.
pub async fn readyz(AxumState(state): AxumState<Arc<State>>) -> Response {
    let policy = state.policy();
    let policy = PolicySummary {
        hash: policy.hash(),
        rules: policy.rules().len() as u64,
    };
    match state.store.health().await {
        Ok(()) => Json(Readiness {
            ready: true,
            store: "ok".to_owned(),
            policy,
        })
        .into_response(),
        Err(error) => {
            let error = store_cannot_commit(&error);
            let mut body = json!(error.body());
            body["ready"] = json!(false);
            body["store"] = json!(error.message);
            body["policy"] = json!(policy);
            (error.status, Json(body)).into_response()
        }
    }
}

fn store_cannot_commit(error: &countersign_store::StoreError) -> ApiError {
    tracing::warn!(%error, "health check: the store cannot commit");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::StoreUnavailable,
        format!(
            "the store cannot commit, so Countersign refuses every action that needs a record: {error}"
        ),
    )
}

pub async fn metrics(AxumState(state): AxumState<Arc<State>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

pub async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        countersign_api::openapi::COMMITTED,
    )
}

pub async fn whoami(caller: Caller) -> Json<Whoami> {
    let p = &caller.0;
    Json(Whoami {
        id: p.id.clone(),
        kind: p.kind,
        groups: p.groups.iter().cloned().collect(),
        acts_for: p.acts_for.clone(),
        started_by: p.started_by.clone(),
        admin: p.admin,
        labels: p.labels.clone(),
        resources: p.resources.iter().map(|g| g.as_str().to_owned()).collect(),
    })
}

pub async fn policy(AxumState(state): AxumState<Arc<State>>, _caller: Caller) -> Json<PolicyView> {
    let policy = state.policy();
    Json(PolicyView {
        hash: policy.hash(),
        text: policy.text().to_owned(),
    })
}

pub async fn reload(
    AxumState(state): AxumState<Arc<State>>,
    caller: Caller,
) -> Result<Json<PolicyReloaded>, ApiError> {
    if !(caller.is_human() && caller.0.admin) {
        return Err(ApiError::forbidden(format!(
            "{} cannot reload the policy: only human administrators can",
            caller.0.id
        )));
    }
    match crate::reload_policy(&state, &caller.0.id).await {
        Ok(hash) => Ok(Json(PolicyReloaded { hash })),
        Err(errors) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            errors,
        )),
    }
}
