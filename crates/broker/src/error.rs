//! API errors: an HTTP status, a stable code, and a sentence that names the problem and the fix.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use countersign_approval::Refusal;
use countersign_store::StoreError;
use serde_json::json;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// The store could not commit: nothing was done, and nothing may run.
    pub fn unavailable(error: &StoreError) -> ApiError {
        tracing::error!(%error, "the store failed; answering 503 (fail closed)");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!(
                "Countersign cannot record this right now, so nothing was done and no action may run: {error}"
            ),
        )
    }

    pub fn body(&self) -> serde_json::Value {
        json!({ "error": { "code": self.code, "message": self.message } })
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::UnknownRequest(id) => {
                ApiError::not_found(format!("request {id} does not exist"))
            }
            other => ApiError::unavailable(&other),
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> ApiError {
        let (status, code) = match refusal {
            Refusal::AlreadyDecided { .. } => (StatusCode::CONFLICT, "already_decided"),
            Refusal::Expired { .. } => (StatusCode::CONFLICT, "expired"),
            Refusal::Agent { .. } => (StatusCode::FORBIDDEN, "agent_reviewer"),
            Refusal::SelfApproval { .. } => (StatusCode::FORBIDDEN, "self_approval"),
            Refusal::NotEligible { .. } => (StatusCode::FORBIDDEN, "not_eligible"),
            Refusal::AlreadyReviewed { .. } => (StatusCode::FORBIDDEN, "already_reviewed"),
            Refusal::NotRequester { .. } => (StatusCode::FORBIDDEN, "not_requester"),
            Refusal::NotYetExpired { .. } => (StatusCode::CONFLICT, "not_yet_expired"),
        };
        ApiError::new(status, code, refusal.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}
