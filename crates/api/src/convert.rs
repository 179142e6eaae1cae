//! From the core's request to its view: the one place that says what the API shows of a request.

use countersign_approval::{Request, RequirementProgress, State};

use crate::request::{GrantView, ProgressView, RequestState, RequestView, ReviewView};

impl From<&State> for RequestState {
    fn from(state: &State) -> RequestState {
        match state {
            State::Pending => RequestState::Pending,
            State::Approved { .. } => RequestState::Approved,
            State::Denied { .. } => RequestState::Denied,
            State::Expired { .. } => RequestState::Expired,
            State::Cancelled { .. } => RequestState::Cancelled,
        }
    }
}

impl From<RequirementProgress> for ProgressView {
    fn from(p: RequirementProgress) -> ProgressView {
        ProgressView {
            rule: p.rule,
            approved_by: p.approved_by,
            needed: p.needed,
            groups_covered: p.groups_covered,
            groups_needed: p.groups_needed,
            denied_by: p.denied_by,
            denials_needed: p.denials_needed,
            satisfied: p.satisfied,
            rejected: p.rejected,
        }
    }
}

/// The sentence a requester reads about where its request stands.
pub fn summary(request: &Request) -> String {
    match &request.state {
        State::Pending => request.waiting_summary(),
        State::Approved { .. } => match request.approval_expires_at() {
            Some(until) => format!(
                "approved; request {}. The approval can be used until {until}",
                request.id
            ),
            None => format!("approved; request {}", request.id),
        },
        State::Denied { by, .. } => {
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
        State::Expired { at } => format!(
            "expired at {at}: nobody approved in time; request {}. Ask a reviewer before trying again.",
            request.id
        ),
        State::Cancelled { by, .. } => format!("cancelled by {by}; request {}", request.id),
    }
}

impl RequestView {
    /// What the API shows of `request`; `grant` only to its requester, once approved.
    pub fn of(request: &Request, grant: Option<GrantView>) -> RequestView {
        let (decided_at, decided_by) = match &request.state {
            State::Pending => (None, None),
            State::Approved { at } | State::Expired { at } => (Some(*at), None),
            State::Denied { at, by } | State::Cancelled { at, by } => (Some(*at), Some(by.clone())),
        };
        RequestView {
            id: request.id,
            state: RequestState::from(&request.state),
            digest: request.digest,
            action: request.action.clone(),
            rules: request.decision.rules.clone(),
            explanation: request.decision.explanation.clone(),
            requirements: request.decision.requirements.clone(),
            progress: request
                .progress()
                .into_iter()
                .map(ProgressView::from)
                .collect(),
            reviews: request
                .reviews
                .iter()
                .map(|r| ReviewView {
                    reviewer: r.reviewer.id.clone(),
                    verdict: r.verdict,
                    comment: r.comment.clone(),
                    channel: r.channel.as_str().to_owned(),
                    authentication: r.reviewer.authentication.as_str().to_owned(),
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
}
