//! The inbox: the requests waiting for a review, updated live (server-sent events tell the page
//! a request changed; the page fetches the list again), and the ones decided last.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::Html;
use axum::response::sse::{Event, KeepAlive, Sse};
use countersign_approval::Request;
use countersign_broker::RequestFilter;
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::{action_title, claims, labels, own_request, quorum, who_asks};
use crate::html::{Nav, escape, page as layout, state_badge, time};
use crate::{App, PageError, Reviewer};

/// How many pending requests the inbox lists.
const PENDING_SHOWN: u32 = 200;
/// How many recently decided requests it shows below them.
const RECENT_SHOWN: u32 = 10;

fn card(request: &Request, now: countersign_model::Timestamp, viewer: &str) -> String {
    let id = request.id.to_string();
    let own = match own_request(&request.action, viewer) {
        Some(relation) if request.state.is_pending() => format!(
            "<div class=\"meta own\">You cannot review this one: {}.</div>",
            escape(&relation)
        ),
        _ => String::new(),
    };
    let left = if request.state.is_pending() {
        format!(
            "expires in {}",
            countersign_model::format_duration(now.until(request.expires_at))
        )
    } else {
        String::new()
    };
    format!(
        "<li class=\"request\" data-request=\"{id}\">\
         <a class=\"title\" href=\"/requests/{id}\"><code>{title}</code></a>\
         <div class=\"meta\">{badge} <span>{who}</span> <span>on <code>{resource}</code></span> {labels}</div>{claims}\
         <div class=\"meta\"><span>rule {rules}</span> · <span class=\"quorum\">{quorum}</span> · <span>{left}</span> · <span>asked {created}</span></div>\
         {own}</li>",
        id = escape(&id),
        title = action_title(&request.action),
        badge = state_badge(request.state.name()),
        who = who_asks(&request.action),
        resource = crate::html::untrusted(&request.action.resource),
        labels = labels(&request.action),
        claims = claims(&request.action),
        rules = escape(&request.decision.rules.join(", ")),
        quorum = quorum(request),
        left = escape(&left),
        created = time(request.created_at),
    )
}

/// The live part of the inbox: pending requests, then the last decided.
async fn render_lists(app: &App, viewer: &str) -> Result<String, PageError> {
    let pending = app
        .broker
        .requests(&RequestFilter {
            state: Some("pending".into()),
            limit: PENDING_SHOWN,
            ..Default::default()
        })
        .await?;
    let recent = app
        .broker
        .requests(&RequestFilter {
            limit: RECENT_SHOWN + PENDING_SHOWN.min(pending.len() as u32),
            ..Default::default()
        })
        .await?;
    let now = countersign_broker::now();
    let mut out = format!(
        "<h2 id=\"waiting\">Waiting for a review <span class=\"count\">{}</span></h2>",
        pending.len()
    );
    if pending.is_empty() {
        out.push_str("<p class=\"empty\">Nothing is waiting for a review.</p>");
    } else {
        out.push_str("<ul class=\"requests\" aria-labelledby=\"waiting\">");
        for request in &pending {
            out.push_str(&card(request, now, viewer));
        }
        out.push_str("</ul>");
    }
    out.push_str("<h2 id=\"decided\">Decided last</h2>");
    let decided: Vec<&Request> = recent
        .iter()
        .filter(|r| !r.state.is_pending())
        .take(RECENT_SHOWN as usize)
        .collect();
    if decided.is_empty() {
        out.push_str("<p class=\"empty\">Nothing decided yet.</p>");
    } else {
        out.push_str("<ul class=\"requests decided\" aria-labelledby=\"decided\">");
        for request in decided {
            let _ = write!(out, "{}", card(request, now, viewer));
        }
        out.push_str("</ul>");
    }
    Ok(out)
}

pub async fn page(
    State(app): State<Arc<App>>,
    reviewer: Reviewer,
) -> Result<Html<String>, PageError> {
    let lists = render_lists(&app, &reviewer.principal.id).await?;
    let alerts = super::alerts::section(&app).await?;
    let body = format!(
        "<h1>Inbox</h1>\
         <p class=\"live-status\" data-live-status>Updates live as requests arrive and are decided. \
         <a href=\"/inbox\">Reload</a></p>{alerts}\
         <div id=\"lists\" data-live-src=\"/inbox/pending\" aria-live=\"polite\">{lists}</div>"
    );
    Ok(Html(layout(
        "Inbox",
        Some(reviewer.viewer()),
        Nav::Inbox,
        &body,
    )))
}

pub async fn fragment(
    State(app): State<Arc<App>>,
    reviewer: Reviewer,
) -> Result<Html<String>, PageError> {
    Ok(Html(render_lists(&app, &reviewer.principal.id).await?))
}

/// Server-sent events: one `change` event per durable change to any request (its id and what
/// happened), and `resync` when this stream fell behind and changes were missed. The stream ends
/// at the first change after the session does (signed out or expired).
pub async fn events(
    State(app): State<Arc<App>>,
    reviewer: Reviewer,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let changes = app.broker.subscribe();
    let session = reviewer.session_id;
    let stream = futures_util::stream::unfold(changes, move |mut changes| {
        let app = Arc::clone(&app);
        let session = session.clone();
        async move {
            let event = match changes.recv().await {
                Ok(change) => Event::default().event("change").data(format!(
                    "{{\"id\":\"{}\",\"kind\":\"{}\"}}",
                    change.id, change.kind
                )),
                Err(RecvError::Lagged(_)) => Event::default().event("resync").data("{}"),
                Err(RecvError::Closed) => return None,
            };
            app.sessions.get(&session)?;
            Some((Ok(event), changes))
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
