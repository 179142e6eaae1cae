//! What the API shows of a request (docs/api.md, "Views").

use countersign_approval::{Request, RequirementProgress, State as RequestState, Verdict};
use countersign_model::{Action, Digest, RequestId, Timestamp};
use countersign_policy::Requirement;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct RequestView {
    pub id: RequestId,
    pub state: &'static str,
    pub digest: Digest,
    pub action: Action,
    pub rules: Vec<String>,
    pub explanation: String,
    pub requirements: Vec<Requirement>,
    pub progress: Vec<RequirementProgress>,
    pub reviews: Vec<ReviewView>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub decided_at: Option<Timestamp>,
    pub decided_by: Option<String>,
    /// For an approved request: when its approval stops letting the action run.
    pub approval_expires_at: Option<Timestamp>,
    pub summary: String,
    pub grant: Option<GrantView>,
}

#[derive(Debug, Serialize)]
pub struct ReviewView {
    pub reviewer: String,
    pub verdict: Verdict,
    pub comment: Option<String>,
    pub channel: countersign_approval::Channel,
    pub authentication: countersign_approval::Authentication,
    pub at: Timestamp,
}

#[derive(Debug, Clone, Serialize)]
pub struct GrantView {
    pub token: String,
    pub expires_at: Timestamp,
}

/// The sentence a requester reads about where its request stands.
pub fn summary(request: &Request) -> String {
    match &request.state {
        RequestState::Pending => request.waiting_summary(),
        RequestState::Approved { .. } => match request.approval_expires_at() {
            Some(until) => format!(
                "approved; request {}. The approval can be used until {until}",
                request.id
            ),
            None => format!("approved; request {}", request.id),
        },
        RequestState::Denied { by, .. } => {
            let comment = request
                .denial()
                .and_then(|r| r.comment.as_deref())
                .map(|c| format!(": {c}"))
                .unwrap_or_default();
            format!(
                "denied by {by}{comment}; request {}. Do not retry without a change: a human said no.",
                request.id
            )
        }
        RequestState::Expired { at } => format!(
            "expired at {at}: nobody approved in time; request {}. Ask a reviewer before trying again.",
            request.id
        ),
        RequestState::Cancelled { by, .. } => format!("cancelled by {by}; request {}", request.id),
    }
}

pub fn view(request: &Request, grant: Option<GrantView>) -> RequestView {
    let (decided_at, decided_by) = match &request.state {
        RequestState::Pending => (None, None),
        RequestState::Approved { at } | RequestState::Expired { at } => (Some(*at), None),
        RequestState::Denied { at, by } | RequestState::Cancelled { at, by } => {
            (Some(*at), Some(by.clone()))
        }
    };
    RequestView {
        id: request.id,
        state: request.state.name(),
        digest: request.digest,
        action: request.action.clone(),
        rules: request.decision.rules.clone(),
        explanation: request.decision.explanation.clone(),
        requirements: request.decision.requirements.clone(),
        progress: request.progress(),
        reviews: request
            .reviews
            .iter()
            .map(|r| ReviewView {
                reviewer: r.reviewer.id.clone(),
                verdict: r.verdict,
                comment: r.comment.clone(),
                channel: r.channel,
                authentication: r.reviewer.authentication,
                at: r.at,
            })
            .collect(),
        created_at: request.created_at,
        expires_at: request.expires_at,
        decided_at,
        decided_by,
        approval_expires_at: request.approval_expires_at(),
        summary: summary(request),
        grant,
    }
}
