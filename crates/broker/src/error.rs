//! API errors: an HTTP status, a stable code, and a sentence that names the problem and the fix.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use countersign_api::{ErrorBody, ErrorCode, ErrorDetail};
use countersign_approval::Refusal;
use countersign_store::StoreError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }

    /// The store could not commit: nothing was done, and nothing may run.
    pub fn unavailable(error: &StoreError) -> ApiError {
        tracing::error!(%error, "the store failed; answering 503 (fail closed)");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            format!(
                "Countersign cannot record this right now, so nothing was done and no action may run: {error}"
            ),
        )
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message.clone(),
            },
        }
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
            Refusal::AlreadyDecided { .. } => (StatusCode::CONFLICT, ErrorCode::AlreadyDecided),
            Refusal::Expired { .. } => (StatusCode::CONFLICT, ErrorCode::Expired),
            Refusal::Agent { .. } => (StatusCode::FORBIDDEN, ErrorCode::AgentReviewer),
            Refusal::SelfApproval { .. } => (StatusCode::FORBIDDEN, ErrorCode::SelfApproval),
            Refusal::NotEligible { .. } => (StatusCode::FORBIDDEN, ErrorCode::NotEligible),
            Refusal::AlreadyReviewed { .. } => (StatusCode::FORBIDDEN, ErrorCode::AlreadyReviewed),
            Refusal::NotRequester { .. } => (StatusCode::FORBIDDEN, ErrorCode::NotRequester),
            Refusal::NotYetExpired { .. } => (StatusCode::CONFLICT, ErrorCode::NotYetExpired),
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
