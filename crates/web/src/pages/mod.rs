//! The pages: the routes, and how a request is named and described wherever it is listed.

mod alerts;
mod audit;
mod dashboard;
mod history;
mod inbox;
mod request;
mod sign_in;

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::response::Redirect;
use axum::routing::{get, post};
use countersign_approval::Request;
use countersign_model::claims;
use countersign_model::text::{clean, truncate};
use countersign_model::{Action, Summary, summary};

use crate::App;
use crate::html::{escape, untrusted};

pub use sign_in::{forged, principal_for};

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/inbox") }))
        .route("/inbox", get(inbox::page))
        .route("/inbox/pending", get(inbox::fragment))
        .route("/inbox/events", get(inbox::events))
        .route("/requests/{id}", get(request::page))
        .route("/requests/{id}/live", get(request::fragment))
        .route("/requests/{id}/review", post(request::review))
        .route("/history", get(history::page))
        .route("/audit", get(audit::page))
        .route("/dashboard", get(dashboard::page))
        .route("/sign-in", get(sign_in::page))
        .route("/sign-in/token", post(sign_in::with_token))
        .route("/auth/login", get(sign_in::start_oidc))
        .route("/auth/callback", get(sign_in::callback))
        .route("/sign-out", post(sign_in::sign_out))
}

/// How long a title may quote an action's details; the request's page shows them all.
const TITLE_DETAILS: usize = 300;

/// One line naming what the action does, chosen by its kind: the command of a `shell.exec`, the
/// SQL of a `sql.statement`, otherwise the kind, the resource and every detail. Agent text:
/// returned escaped.
pub fn action_title(action: &Action) -> String {
    let summary = summary(action);
    match summary {
        Summary::Command(_) | Summary::Sql(_) => untrusted(&summary.line()),
        Summary::Details(details) => {
            let mut title = format!(
                "{} on {}",
                untrusted(&action.kind),
                untrusted(&action.resource)
            );
            if details.as_object().is_none_or(|d| !d.is_empty()) {
                title.push(' ');
                title.push_str(&untrusted(&truncate(&summary.line(), TITLE_DETAILS)));
            }
            title
        }
    }
}

/// "deploy-bot (agent), acting for alice": who asks. Escaped.
pub fn who_asks(action: &Action) -> String {
    untrusted(&action.principal.describe())
}

/// How `reviewer` is in the request's own chain, in words ("deploy-bot acts for you"): such a
/// reviewer is shown why they cannot review, not buttons that can only be refused.
pub fn own_request(action: &Action, reviewer: &str) -> Option<String> {
    countersign_model::summary::own_chain(&action.principal, reviewer)
}

/// Labels as small `name=value` chips. Escaped.
pub fn labels(action: &Action) -> String {
    let mut out = String::new();
    for (name, value) in &action.labels {
        let _ = write!(
            out,
            "<span class=\"chip\">{}={}</span> ",
            untrusted(name),
            untrusted(value)
        );
    }
    out
}

/// The agent's claims on their own marked line, then a warning for each one that contradicts a
/// label; empty when the agent claimed nothing. The agent's text, escaped and its hidden
/// characters shown, as the justification is.
pub fn claims(action: &Action) -> String {
    let Some(says) = claims::says(&action.claims) else {
        return String::new();
    };
    let mut out = format!(
        "<div class=\"claims untrusted\"><span class=\"caption\">{}</span> <q>{}</q></div>",
        escape(claims::CLAIMS_CAPTION),
        escape(&clean(&says))
    );
    for disagreement in claims::disagreements(&action.labels, &action.claims) {
        let _ = write!(
            out,
            "<div class=\"disagreement\"><strong>Warning:</strong> {}</div>",
            escape(&clean(&disagreement.warning()))
        );
    }
    out
}

/// "1 of 2 approvals": where the quorum stands, over every requirement.
pub fn quorum(request: &Request) -> String {
    request
        .progress()
        .iter()
        .map(|p| {
            let mut text = format!(
                "{} of {} approval{} ({})",
                p.approved_by.len(),
                p.needed,
                if p.needed == 1 { "" } else { "s" },
                p.rule
            );
            if p.groups_needed > 0 {
                let _ = write!(
                    text,
                    ", {} of {} groups covered",
                    p.groups_covered, p.groups_needed
                );
            }
            escape(&text)
        })
        .collect::<Vec<_>>()
        .join("; ")
}
