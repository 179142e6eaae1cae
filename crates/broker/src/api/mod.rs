//! The HTTP API v1 (docs/api.md): the router and the extractors every handler shares.

mod actions;
mod audit;
mod grants;
mod input;
mod requests;
mod system;

pub(crate) use actions::submit_action;
pub use audit::AuditVerification;
pub(crate) use audit::verify_log;
pub use input::{Body, PathId, Query, within};
pub(crate) use requests::{cancel_request, submit_review};

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::routing::{get, post};
use countersign_api::ErrorCode;
use countersign_model::{PrincipalKind, RequestId};

use crate::config::Principal;
use crate::error::ApiError;
use crate::state::State;

/// Request bodies larger than this are refused with 413…
pub const MAX_BODY: usize = 256 * 1024;
/// …except batches of reported audit events: an allowed tool call's event holds its arguments,
/// which may be large (a file written), and must reach the log all the same.
pub const MAX_AUDIT_BODY: usize = 16 * 1024 * 1024;

pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/v1/actions", post(actions::evaluate))
        .route("/v1/requests", get(requests::list))
        .route("/v1/requests/{id}", get(requests::show))
        .route("/v1/requests/{id}/wait", get(requests::wait))
        .route("/v1/requests/{id}/reviews", post(requests::review))
        .route("/v1/requests/{id}/cancel", post(requests::cancel))
        .route("/v1/requests/{id}/outcome", post(requests::outcome))
        .route("/v1/grants/consume", post(grants::consume))
        .route("/v1/policy", get(system::policy))
        .route("/v1/whoami", get(system::whoami))
        .route("/v1/admin/policy/reload", post(system::reload))
        .route("/v1/audit", get(audit::list))
        .route(
            "/v1/audit/events",
            post(audit::append).layer(DefaultBodyLimit::max(MAX_AUDIT_BODY)),
        )
        .route("/v1/audit/verify", get(audit::verify))
        .route("/v1/audit/export", get(audit::export))
        .route("/v1/audit/key", get(audit::key))
        .route("/metrics", get(system::metrics))
        .route("/openapi.json", get(system::openapi))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(|| async {
            ApiError::not_found("no such endpoint; see /openapi.json for the API")
        })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::map_response_with_state(
            Arc::clone(&state),
            count_unavailable,
        ))
        // After the layers: a failing health check is not a call Countersign refused, and must
        // not count as one.
        .route(
            "/healthz",
            get(system::healthz).fallback(method_not_allowed),
        )
        .route("/readyz", get(system::readyz).fallback(method_not_allowed))
        .with_state(state)
}

/// A known endpoint asked with a method it does not answer.
async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        format!("this endpoint does not answer {method}; see /openapi.json for the API"),
    )
}

/// Every 503 means Countersign could not record something and so did nothing: count them all in
/// one place, whichever handler answered.
async fn count_unavailable(
    axum::extract::State(state): axum::extract::State<Arc<State>>,
    response: axum::response::Response,
) -> axum::response::Response {
    if response.status() == StatusCode::SERVICE_UNAVAILABLE {
        state.metrics.unavailable();
    }
    response
}

/// The authenticated principal making the call, and the service it came through when a service
/// calls on behalf of an agent (`Countersign-Agent-Token`): then the agent is the caller.
#[derive(Debug, Clone)]
pub struct Caller(pub Arc<Principal>, pub Option<Arc<Principal>>);

impl Caller {
    pub fn is_human(&self) -> bool {
        self.0.kind == PrincipalKind::Human
    }

    pub fn require_human(&self, what: &str) -> Result<(), ApiError> {
        if self.is_human() {
            Ok(())
        } else {
            let kind = if self.0.kind == PrincipalKind::Service {
                "a service"
            } else {
                "an agent"
            };
            Err(ApiError::forbidden(format!(
                "{} is {kind}; only humans can {what}",
                self.0.id
            )))
        }
    }
}

impl FromRequestParts<Arc<State>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<State>,
    ) -> Result<Self, Self::Rejection> {
        let unauthenticated = |message: &str| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthenticated,
                message,
            )
        };
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| unauthenticated("no token: send Authorization: Bearer TOKEN"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(|| unauthenticated("the Authorization header must be: Bearer TOKEN"))?;
        let principal = state.principal_by_token(token.trim()).ok_or_else(|| {
            unauthenticated(
                "unknown token: check COUNTERSIGN_TOKEN, or ask an administrator for one",
            )
        })?;
        let acting = crate::trust::on_behalf(state, principal, &parts.headers)?;
        Ok(Caller(acting.requester, acting.via))
    }
}

/// Parses a request id from the path, or answers 400 naming the expected form.
pub fn request_id(text: &str) -> Result<RequestId, ApiError> {
    text.parse()
        .map_err(|e: countersign_model::IdError| ApiError::bad_request(e.to_string()))
}

/// The longest one call blocks waiting for a decision; clients call again to wait longer.
const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Parses `30s`, `2m`… for `wait` and `timeout` parameters, capped at [`MAX_WAIT`].
pub fn wait_duration(text: &str) -> Result<std::time::Duration, ApiError> {
    // The documented form exactly (openapi.json's Duration): 1 to 4 groups of up to 9 digits
    // and a unit, nothing around them; 0s does not wait.
    let mut seconds: u64 = 0;
    let mut groups = 0;
    let mut digits: u64 = 0;
    let mut count = 0;
    let mut documented = !text.is_empty();
    for b in text.bytes() {
        let unit = match b {
            b'0'..=b'9' if count < 9 => {
                digits = digits * 10 + u64::from(b - b'0');
                count += 1;
                continue;
            }
            b'd' => 86_400,
            b'h' => 3600,
            b'm' => 60,
            b's' => 1,
            _ => 0,
        };
        groups += 1;
        if unit == 0 || count == 0 || groups > 4 {
            documented = false;
            break;
        }
        seconds += digits * unit;
        (digits, count) = (0, 0);
    }
    if !documented || count != 0 {
        return Err(ApiError::bad_request(format!(
            "'{text}' is not a duration (expected a number and a unit, such as 90s, 30m, 1h30m \
             or 2d)"
        )));
    }
    let d = std::time::Duration::from_secs(seconds);
    Ok(d.min(MAX_WAIT))
}
