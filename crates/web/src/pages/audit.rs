//! The audit log, newest first, a page at a time, under the verification status of the whole
//! chain (hashes, links and signed checkpoints), as `GET /v1/audit/verify` reports it.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Html;
use serde::Deserialize;

use crate::html::{Nav, escape, notice, page as layout, time, untrusted};
use crate::{App, PageError, Reviewer};

const PAGE: u64 = 100;

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    /// Show events up to this sequence number (the newest when absent).
    through: Option<u64>,
}

pub async fn page(
    State(app): State<Arc<App>>,
    reviewer: Reviewer,
    Query(query): Query<AuditQuery>,
) -> Result<Html<String>, PageError> {
    let head = app.broker.audit_head().await?.map_or(0, |h| h.seq);
    let through = query.through.unwrap_or(head).min(head);
    let after = through.saturating_sub(PAGE);
    let verification = app.broker.verify_audit().await?;
    let status = match &verification.result {
        Ok(summary) => notice(
            "ok",
            "The audit log is intact.",
            &format!(
                "{} events chain correctly by hash and match {} signed checkpoints{}.",
                summary.count,
                verification.checkpoints,
                summary
                    .head
                    .map(|h| format!("; the newest is event {} ({})", h.seq, h.hash))
                    .unwrap_or_default()
            ),
        ),
        Err(error) => notice(
            "error",
            "The audit log is broken:",
            &format!(
                "{error}. Events from there on cannot be trusted; keep a copy and investigate."
            ),
        ),
    };
    let mut events = app
        .broker
        .audit_after(after, u32::try_from(through - after).unwrap_or(0).max(1))
        .await?;
    events.retain(|e| e.seq <= through);
    events.reverse();
    let mut body = format!(
        "<h1>Audit log</h1>{status}<p class=\"hint\">Verify an export offline with \
         <code>countersign audit verify --file log.jsonl --key {}</code>.</p>",
        escape(&app.broker.public_key().to_string())
    );
    body.push_str(
        "<div class=\"table\"><table><thead><tr><th scope=\"col\">#</th><th scope=\"col\">When</th>\
         <th scope=\"col\">Event</th><th scope=\"col\">Who</th><th scope=\"col\">Request</th>\
         <th scope=\"col\">What happened</th></tr></thead><tbody>",
    );
    for event in &events {
        let request = event
            .request_id
            .map(|id| {
                format!(
                    "<a href=\"/requests/{id}\"><code>{id}</code></a>",
                    id = escape(&id.to_string())
                )
            })
            .unwrap_or_default();
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            event.seq,
            time(event.time),
            escape(&event.kind),
            escape(event.principal.as_deref().unwrap_or("")),
            request,
            untrusted(&event.explanation)
        );
    }
    body.push_str("</tbody></table></div><nav class=\"pages\" aria-label=\"Pages of the log\">");
    if through < head {
        let _ = write!(
            body,
            "<a href=\"/audit?through={}\">Newer</a> ",
            (through + PAGE).min(head)
        );
    }
    if after > 0 {
        let _ = write!(body, "<a href=\"/audit?through={after}\">Older</a>");
    }
    body.push_str("</nav>");
    Ok(Html(layout(
        "Audit log",
        Some(reviewer.viewer()),
        Nav::Audit,
        &body,
    )))
}
