//! `countersign pending | show ID | approve ID | deny ID`: a reviewer's work from the terminal.
//!
//! Exit codes: 0 done; 1 the broker refused (not eligible, self-approval, already decided, not
//! found…), with its reason on stderr; 2 usage error, or the broker could not be asked.

#[cfg(test)]
mod tests;

use std::process::ExitCode;

use clap::Args;
use countersign_audit::AuditEvent;
use countersign_client::{Client, ClientError, RequestState, RequestView, Verdict};
use countersign_model::{RequestId, Summary, Timestamp, claims, summary};
use serde_json::json;

use crate::connection::Connection;
use crate::describe::{
    action_summary, approvals, clean, now, quorum, requester, time_left, truncate, what_runs,
};

/// List the requests waiting for approval.
#[derive(Debug, Args)]
pub struct PendingArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// At most this many requests, newest first.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Print the requests as JSON, for scripts.
    #[arg(long)]
    pub json: bool,
}

/// Show everything about one request, and its audit events if you may read the log.
#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// The request id (r_…).
    pub id: RequestId,
    /// Print the request (and its audit events) as JSON, for scripts.
    #[arg(long)]
    pub json: bool,
}

/// Approve or deny a request.
#[derive(Debug, Args)]
pub struct ReviewArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// The request id (r_…).
    pub id: RequestId,
    /// Why, for the requester and the audit log.
    #[arg(long, value_name = "TEXT")]
    pub comment: Option<String>,
    /// Print the request as it now stands as JSON, for scripts.
    #[arg(long)]
    pub json: bool,
}

pub async fn pending(args: PendingArgs) -> anyhow::Result<ExitCode> {
    let client = args.connection.client()?;
    let requests = match client
        .list_requests(Some(RequestState::Pending), Some(args.limit))
        .await
    {
        Ok(requests) => requests,
        Err(error) => return refused(error),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&requests)?);
    } else if requests.is_empty() {
        println!("no requests are waiting for approval");
    } else {
        print!("{}", pending_table(&requests, now()));
    }
    Ok(ExitCode::SUCCESS)
}

/// How much of an action the pending table shows; `countersign show` shows it all.
const ACTION_SHOWN: usize = 100;

/// One row per request: id, requester, action, rule, quorum, expires in.
pub fn pending_table(requests: &[RequestView], now: Timestamp) -> String {
    let header = ["ID", "REQUESTER", "ACTION", "RULE", "QUORUM", "EXPIRES IN"].map(String::from);
    let mut rows = vec![header];
    for view in requests {
        rows.push([
            view.id.to_string(),
            requester(&view.action.principal),
            truncate(&action_summary(&view.action), ACTION_SHOWN),
            clean(&view.rules.join(", ")),
            quorum(&view.progress),
            time_left(now, view.expires_at),
        ]);
    }
    let mut widths = [0usize; 6];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    // The table has no room for labels; a request whose agent contradicts one is flagged below
    // it, so nobody approves from the list without knowing.
    for view in requests {
        for disagreement in claims::disagreements(&view.action.labels, &view.action.claims) {
            out.push_str(&format!(
                "WARNING {}: {}\n",
                view.id,
                clean(&disagreement.warning())
            ));
        }
    }
    out
}

pub async fn show(args: ShowArgs) -> anyhow::Result<ExitCode> {
    let client = args.connection.client()?;
    let view = match client.get_request(args.id).await {
        Ok(view) => view,
        Err(error) => return refused(error),
    };
    let audit = request_events(&client, args.id).await;
    if args.json {
        let events = audit.as_ref().ok();
        let out = json!({ "request": view, "audit_events": events });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    print!(
        "{}",
        render_request(&view, &client.request_link(view.id), now())
    );
    if let Ok(events) = &audit {
        print!("{}", render_unusual(&view.action.principal.id, events));
    }
    println!();
    match audit {
        Ok(events) if events.is_empty() => println!("audit events: none"),
        Ok(events) => {
            println!("audit events:");
            for event in &events {
                println!("  {}", render_event(event));
            }
        }
        Err(why) => println!("audit events: {why}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Everything in a request view, one labelled line per field, then the explanation.
pub fn render_request(view: &RequestView, link: &str, now: Timestamp) -> String {
    let action = &view.action;
    let mut lines: Vec<(&str, String)> = vec![
        ("request", view.id.to_string()),
        ("state", view.state.to_string()),
        ("summary", clean(&view.summary)),
        ("requester", clean(&action.principal.describe())),
        (
            "action",
            format!("{} on {}", clean(&action.kind), clean(&action.resource)),
        ),
    ];
    if !action.labels.is_empty() {
        let labels: Vec<String> = action
            .labels
            .iter()
            .map(|(k, v)| clean(&format!("{k}={v}")))
            .collect();
        lines.push(("labels", labels.join(", ")));
    }
    // The agent's claims on their own line, in its words, and a warning for each that
    // contradicts a label: the label is what rules matched.
    if let Some(says) = claims::says(&action.claims) {
        lines.push(("claims", clean(&says)));
    }
    for disagreement in claims::disagreements(&action.labels, &action.claims) {
        lines.push(("WARNING", clean(&disagreement.warning())));
    }
    // By the kind alone: a tool call's `argv` argument is shown with the rest, in `details`.
    if matches!(summary(action), Summary::Command(_) | Summary::Sql(_)) {
        lines.push(("runs", what_runs(action)));
    }
    lines.push(("details", clean(&action.details.to_string())));
    if let Some(justification) = &action.justification {
        lines.push((
            "justification",
            format!("(the requester's own words) \"{}\"", clean(justification)),
        ));
    }
    lines.push(("digest", view.digest.to_string()));
    lines.push(("rules", clean(&view.rules.join(", "))));
    for requirement in &view.requirements {
        lines.push((
            "requires",
            format!(
                "{} (rule {})",
                clean(&requirement.describe()),
                clean(&requirement.rule)
            ),
        ));
    }
    for p in &view.progress {
        let mut s = approvals(p);
        s.push_str(", ");
        s.push_str(&denials(&p.denied_by, p.denials_needed));
        let state = if p.rejected {
            "rejected"
        } else if p.satisfied {
            "satisfied"
        } else {
            "open"
        };
        s.push_str(&format!(": {state} (rule {})", clean(&p.rule)));
        lines.push(("progress", s));
    }
    for review in &view.reviews {
        let comment = review
            .comment
            .as_deref()
            .map(|c| format!(": \"{}\"", clean(c)))
            .unwrap_or_default();
        lines.push((
            "review",
            format!(
                "{} {} {} via {} ({}){comment}",
                review.at,
                clean(&review.reviewer),
                review.verdict,
                clean(&review.channel),
                clean(&review.authentication)
            ),
        ));
    }
    lines.push(("created", view.created_at.to_string()));
    let expires = if view.state.is_pending() {
        format!(
            "{} (in {})",
            view.expires_at,
            time_left(now, view.expires_at)
        )
    } else {
        view.expires_at.to_string()
    };
    lines.push(("expires", expires));
    if let Some(at) = view.decided_at {
        let by = view
            .decided_by
            .as_deref()
            .map(|by| format!(" by {}", clean(by)))
            .unwrap_or_default();
        lines.push(("decided", format!("{at}{by}")));
    }
    if let Some(grant) = &view.grant {
        lines.push((
            "grant",
            format!("issued to you, valid until {}", grant.expires_at),
        ));
    }
    lines.push(("link", link.to_owned()));

    let width = lines
        .iter()
        .map(|(label, _)| label.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (label, value) in lines {
        out.push_str(&format!("{label:<width$}  {value}\n"));
    }
    out.push('\n');
    out.push_str(&clean(&view.explanation));
    out.push('\n');
    out
}

/// Where the denials stand, in words (a count like `0/1` reads as a quota to fill):
/// "no denials yet (a denial ends it)", "denied by dana (3 denials end it)".
fn denials(denied_by: &[String], needed: u32) -> String {
    let ends = if needed <= 1 {
        "a denial ends it".to_owned()
    } else {
        format!("{needed} denials end it")
    };
    if denied_by.is_empty() {
        format!("no denials yet ({ends})")
    } else {
        format!("denied by {} ({ends})", clean(&denied_by.join(", ")))
    }
}

/// How the command differs from the requester's last request for the same program, as
/// Countersign compared them when the request was made (its `request.created` event): a caption
/// and one line per difference, or nothing.
pub fn render_unusual(requester: &str, events: &[AuditEvent]) -> String {
    let sentences = countersign_audit::unusual_of(events);
    if sentences.is_empty() {
        return String::new();
    }
    let mut out = format!("{}:\n", countersign_model::usual::caption(requester));
    for sentence in sentences {
        out.push_str(&format!("  - {sentence}\n"));
    }
    out
}

fn render_event(event: &AuditEvent) -> String {
    format!(
        "#{} {} {} by {}: {}",
        event.seq,
        event.time,
        clean(&event.kind),
        clean(event.principal.as_deref().unwrap_or("-")),
        clean(&event.explanation)
    )
}

/// Pages of the audit log read to find a request's events; the log has no index by request.
const AUDIT_PAGE: u32 = 5000;
const AUDIT_MAX_PAGES: usize = 40;

/// The audit events of one request, or why they are not shown.
async fn request_events(client: &Client, id: RequestId) -> Result<Vec<AuditEvent>, String> {
    let mut events = Vec::new();
    let mut after = 0;
    for _ in 0..AUDIT_MAX_PAGES {
        let page = match client.audit(after, Some(AUDIT_PAGE)).await {
            Ok(page) => page,
            Err(error) if error.status() == Some(403) => {
                return Err("not shown (only humans may read the audit log)".to_owned());
            }
            Err(error) => return Err(format!("could not be read: {error}")),
        };
        let Some(last) = page.events.last() else {
            return Ok(events);
        };
        after = last.seq;
        events.extend(
            page.events
                .into_iter()
                .filter(|event| event.request_id == Some(id)),
        );
    }
    Err(format!(
        "not all shown: the log is longer than {} events ({} found so far)",
        AUDIT_PAGE as usize * AUDIT_MAX_PAGES,
        events.len()
    ))
}

pub async fn review(args: ReviewArgs, verdict: Verdict) -> anyhow::Result<ExitCode> {
    let client = args.connection.client()?;
    let view = match client
        .review(args.id, verdict, args.comment.as_deref())
        .await
    {
        Ok(view) => view,
        Err(error) => return refused(error),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        print!("{}", review_result(&view, verdict));
    }
    Ok(ExitCode::SUCCESS)
}

/// "recorded your approval of request r_…; it is now approved", then the broker's summary.
pub fn review_result(view: &RequestView, verdict: Verdict) -> String {
    let noun = match verdict {
        Verdict::Approve => "approval",
        Verdict::Deny => "denial",
    };
    format!(
        "recorded your {noun} of request {}; it is now {}\n{}\n",
        view.id,
        view.state,
        clean(&view.summary)
    )
}

/// The broker's refusal (exit 1, its message verbatim), or an error that stopped us asking.
fn refused(error: ClientError) -> anyhow::Result<ExitCode> {
    if let ClientError::Api { message, .. } = &error
        && !error.is_unavailable()
    {
        eprintln!("countersign: {}", clean(message));
        return Ok(ExitCode::from(1));
    }
    Err(error.into())
}
