//! The pages: the routes, and how a request is named and described wherever it is listed.

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
use countersign_model::Action;
use countersign_model::action::shell_join;

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

/// One line naming what the action does: the command, the SQL, or kind and resource. Agent text:
/// returned escaped.
pub fn action_title(action: &Action) -> String {
    if let Some(argv) = action.argv() {
        return untrusted(&shell_join(argv));
    }
    if let Some(sql) = action.sql() {
        return untrusted(sql);
    }
    if let Some(tool) = action.details.get("tool").and_then(|v| v.as_str()) {
        return format!("{} {}", escape(&action.kind), untrusted(tool));
    }
    format!(
        "{} on {}",
        escape(&action.kind),
        untrusted(&action.resource)
    )
}

/// "deploy-bot (agent), acting for alice": who asks. Escaped.
pub fn who_asks(action: &Action) -> String {
    escape(&action.principal.describe())
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
