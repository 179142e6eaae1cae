//! Health, metrics, the OpenAPI document, who-am-I, the policy in force and its reload.

use std::sync::Arc;

use axum::Json;
use axum::extract::State as AxumState;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::Caller;
use crate::error::ApiError;
use crate::state::State;

pub async fn healthz() -> Json<Value> {
    Json(json!({ "ok": true }))
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
        include_str!("../openapi.json"),
    )
}

pub async fn whoami(caller: Caller) -> Json<Value> {
    let p = &caller.0;
    let mut me = json!({ "id": p.id, "kind": p.kind, "groups": p.groups, "acts_for": p.acts_for, "admin": p.admin });
    if let Some(starter) = &p.started_by {
        me["started_by"] = json!(starter);
    }
    Json(me)
}

pub async fn policy(AxumState(state): AxumState<Arc<State>>, _caller: Caller) -> Json<Value> {
    let policy = state.policy();
    Json(json!({ "hash": policy.hash(), "text": policy.text() }))
}

pub async fn reload(
    AxumState(state): AxumState<Arc<State>>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    if !(caller.is_human() && caller.0.admin) {
        return Err(ApiError::forbidden(format!(
            "{} cannot reload the policy: only human administrators can",
            caller.0.id
        )));
    }
    match crate::reload_policy(&state, &caller.0.id).await {
        Ok(hash) => Ok(Json(json!({ "hash": hash }))),
        Err(errors) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            errors,
        )),
    }
}
