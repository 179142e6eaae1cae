//! One request: the exact action, who asks, the rule and why, the quorum so far, every review,
//! the outcome and the request's audit events; and the form to approve or deny it.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use countersign_approval::{Authentication, Channel, Request, State as RequestState, Verdict};
use countersign_audit::{AuditEvent, EventKind};
use countersign_broker::{ApiError, ReviewInput};
use countersign_model::{Action, RequestId, Summary, summary};
use serde::Deserialize;

use super::{action_title, claims, labels, own_request, quorum};
use crate::html::{Nav, escape, notice, page as layout, state_badge, time, untrusted};
use crate::{App, PageError, Reviewer};

fn parse_id(text: &str) -> Result<RequestId, PageError> {
    text.parse().map_err(|e: countersign_model::IdError| {
        PageError::new(StatusCode::NOT_FOUND, "Not found", e.to_string())
    })
}

async fn load(app: &App, id: RequestId) -> Result<Request, PageError> {
    app.broker
        .request(id)
        .await?
        .ok_or_else(|| PageError::from(ApiError::not_found(format!("request {id} does not exist"))))
}

/// The exact action that will run. Every byte of it is the agent's: escaped, invisible
/// characters shown.
pub fn action_block(action: &Action) -> String {
    let mut out =
        String::from("<section aria-labelledby=\"action\"><h2 id=\"action\">What will run</h2>");
    // Chosen by the kind alone: a tool call's `argv` argument is one argument among the others.
    match summary(action) {
        Summary::Command(argv) => {
            let _ = write!(
                out,
                "<pre class=\"exact\"><code>{}</code></pre><details><summary>Each argument, exactly</summary><ol class=\"argv\">",
                action_title(action)
            );
            for arg in argv {
                let _ = write!(out, "<li><code>{}</code></li>", untrusted(arg));
            }
            out.push_str("</ol></details>");
        }
        Summary::Sql(sql) => {
            let _ = write!(
                out,
                "<pre class=\"exact\"><code>{}</code></pre>",
                untrusted(sql)
            );
        }
        Summary::Details(_) => {}
    }
    let details = serde_json::to_string_pretty(&action.details).unwrap_or_default();
    let _ = write!(
        out,
        "<dl class=\"facts\"><dt>Kind</dt><dd><code>{kind}</code></dd>\
         <dt>Resource</dt><dd><code>{resource}</code></dd>\
         <dt>Labels</dt><dd>{labels}</dd></dl>{claims}\
         <h3>All details, as sent</h3><pre class=\"details\"><code>{details}</code></pre>",
        kind = escape(&action.kind),
        resource = untrusted(&action.resource),
        labels = if action.labels.is_empty() {
            "none".into()
        } else {
            labels(action)
        },
        claims = claims(action),
        details = untrusted(&details),
    );
    if let Some(justification) = &action.justification {
        let _ = write!(
            out,
            "<figure class=\"untrusted\"><figcaption>The agent's own words — not checked by Countersign</figcaption>\
             <blockquote>{}</blockquote></figure>",
            untrusted(justification)
        );
    }
    out.push_str("</section>");
    out
}

fn chain_block(action: &Action) -> String {
    let chain = &action.principal;
    // The agent names who it acts for and what started it: its text, shown as such.
    let mut out = format!(
        "<section aria-labelledby=\"who\"><h2 id=\"who\">Who asks</h2><dl class=\"facts\">\
         <dt>Requester</dt><dd>{} ({})</dd>",
        untrusted(&chain.id),
        escape(&chain.kind.to_string())
    );
    if !chain.on_behalf_of.is_empty() {
        let _ = write!(
            out,
            "<dt>Acting for</dt><dd>{}</dd>",
            untrusted(&chain.on_behalf_of.join(", "))
        );
    }
    if let Some(started) = &chain.started_by {
        let _ = write!(out, "<dt>Started by</dt><dd>{}</dd>", untrusted(started));
    }
    out.push_str(
        "</dl><p class=\"hint\">Nobody in this chain can review the request.</p></section>",
    );
    out
}

fn rule_block(app: &App, request: &Request) -> String {
    let policy = app.broker.policy();
    let mut out = String::from(
        "<section aria-labelledby=\"why\"><h2 id=\"why\">Why it needs a review</h2><ul class=\"rules\">",
    );
    for requirement in request.requirements() {
        let reason = policy
            .rules()
            .iter()
            .find(|r| r.id == requirement.rule)
            .map(|r| format!(": {}", r.reason))
            .unwrap_or_default();
        let _ = write!(
            out,
            "<li>Rule <strong>{}</strong> requires {}{}</li>",
            escape(&requirement.rule),
            escape(&requirement.describe()),
            escape(&reason)
        );
    }
    let _ = write!(
        out,
        "</ul><p class=\"explanation\">{}</p></section>",
        untrusted(&request.decision.explanation)
    );
    out
}

fn outcome_of(events: &[AuditEvent]) -> Option<String> {
    let event = events
        .iter()
        .rev()
        .find(|e| e.kind == EventKind::ActionOutcome)?;
    let status = event.data["status"].as_str().unwrap_or("reported");
    let exit = event.data["exit_code"]
        .as_i64()
        .map(|c| format!(" with exit status {c}"))
        .unwrap_or_default();
    let summary = event.data["summary"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(|s| format!(": {}", untrusted(s)))
        .unwrap_or_default();
    Some(format!(
        "<p class=\"outcome {s}\" id=\"outcome\">The action <strong>{s}</strong>{exit}{summary} ({at}).</p>",
        s = escape(status),
        exit = escape(&exit),
        at = time(event.time)
    ))
}

/// How the command differs from the requester's last request for the same program, as
/// Countersign compared them when the request was made; nothing when it did not.
fn unusual_block(request: &Request, events: &[AuditEvent]) -> String {
    let sentences = countersign_audit::unusual_of(events);
    if sentences.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "<section class=\"unusual\" aria-labelledby=\"unusual\"><h2 id=\"unusual\">{}</h2><ul>",
        untrusted(&countersign_model::usual::caption(
            &request.action.principal.id
        ))
    );
    for sentence in &sentences {
        let _ = write!(out, "<li>{}</li>", untrusted(sentence));
    }
    out.push_str("</ul></section>");
    out
}

/// The parts of the page that change while it is open.
async fn live_part(app: &App, request: &Request) -> Result<String, PageError> {
    let events = app.broker.audit_of(request.id).await?;
    let mut out = unusual_block(request, &events);
    let _ = write!(
        out,
        "<section aria-labelledby=\"state\"><h2 id=\"state\">Where it stands</h2>\
         <p class=\"state\">{} {}</p><p class=\"quorum\">{}</p>",
        state_badge(request.state.name()),
        escape(&countersign_broker::views::summary(request)),
        quorum(request)
    );
    let _ = write!(
        out,
        "<dl class=\"facts\"><dt>Asked</dt><dd>{}</dd><dt>Expires</dt><dd>{}</dd>",
        time(request.created_at),
        time(request.expires_at)
    );
    match &request.state {
        RequestState::Pending => {}
        RequestState::Approved { at } | RequestState::Expired { at } => {
            let _ = write!(out, "<dt>Decided</dt><dd>{}</dd>", time(*at));
        }
        RequestState::Denied { at, by } | RequestState::Cancelled { at, by } => {
            let _ = write!(
                out,
                "<dt>Decided</dt><dd>{} by {}</dd>",
                time(*at),
                escape(by)
            );
        }
    }
    out.push_str("</dl>");
    if let Some(outcome) = outcome_of(&events) {
        out.push_str(&outcome);
    } else if matches!(request.state, RequestState::Approved { .. }) {
        out.push_str("<p class=\"outcome\" id=\"outcome\">Approved; the action has not reported its outcome yet.</p>");
    }
    out.push_str("</section><section aria-labelledby=\"reviews\"><h2 id=\"reviews\">Reviews</h2>");
    if request.reviews.is_empty() {
        out.push_str("<p class=\"empty\">No reviews yet.</p>");
    } else {
        out.push_str(
            "<div class=\"table\"><table><thead><tr><th scope=\"col\">Reviewer</th><th scope=\"col\">Verdict</th>\
             <th scope=\"col\">Comment</th><th scope=\"col\">Where</th><th scope=\"col\">When</th></tr></thead><tbody>",
        );
        for review in &request.reviews {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}, {}</td><td>{}</td></tr>",
                escape(&review.reviewer.id),
                escape(&review.verdict.to_string()),
                untrusted(review.comment.as_deref().unwrap_or("")),
                escape(review.channel.as_str()),
                signed_in_with(review.reviewer.authentication),
                time(review.at)
            );
        }
        out.push_str("</tbody></table></div>");
    }
    out.push_str("</section><section aria-labelledby=\"trail\"><h2 id=\"trail\">Audit events</h2><ol class=\"events\">");
    for event in &events {
        let _ = write!(
            out,
            "<li><span class=\"seq\">#{}</span> {} <code>{}</code> {}</li>",
            event.seq,
            time(event.time),
            escape(&event.kind),
            untrusted(&event.explanation)
        );
    }
    out.push_str("</ol></section>");
    Ok(out)
}

/// How a reviewer proved who they are, in words.
fn signed_in_with(authentication: Authentication) -> &'static str {
    match authentication {
        Authentication::ApiToken => "API token",
        Authentication::Slack => "Slack",
        Authentication::Teams => "Microsoft Teams",
        Authentication::Oidc => "single sign-on",
        Authentication::OidcMfa => "single sign-on with MFA",
    }
}

fn review_form(request: &Request, reviewer: &Reviewer) -> String {
    if !request.state.is_pending() {
        return String::new();
    }
    if let Some(relation) = own_request(&request.action, &reviewer.principal.id) {
        // Buttons that could only be refused would say otherwise.
        return format!(
            "<section class=\"card review own\" id=\"own-request\"><h2>Your review</h2>\
             <p>You are in this request's delegation chain ({}), so you cannot approve or deny it: \
             nobody reviews their own agent's request. Other approvers decide; this page shows \
             their reviews as they come.</p></section>",
            escape(&relation)
        );
    }
    format!(
        "<form class=\"card review\" method=\"post\" action=\"/requests/{id}/review\">\
         <h2>Your review</h2>\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <label for=\"comment\">Comment (optional; shown to the requester and kept in the audit log)</label>\
         <textarea id=\"comment\" name=\"comment\" rows=\"3\" maxlength=\"2000\"></textarea>\
         <div class=\"buttons\"><button type=\"submit\" name=\"verdict\" value=\"approve\" class=\"approve\">Approve</button>\
         <button type=\"submit\" name=\"verdict\" value=\"deny\" class=\"deny\">Deny</button></div></form>",
        id = escape(&request.id.to_string()),
        csrf = escape(&reviewer.session.csrf),
    )
}

async fn render(
    app: &App,
    request: &Request,
    reviewer: &Reviewer,
    banner: &str,
) -> Result<String, PageError> {
    let id = request.id.to_string();
    let live = live_part(app, request).await?;
    let body = format!(
        "<p class=\"crumbs\"><a href=\"/inbox\">Inbox</a> / request <code>{id}</code></p>\
         <h1><code>{title}</code></h1>{banner}\
         <div class=\"columns\"><div>{action}{chain}{rules}</div>\
         <div><div id=\"live\" data-live-src=\"/requests/{id}/live\" data-live-id=\"{id}\" aria-live=\"polite\">{live}</div>\
         {form}</div></div>",
        id = escape(&id),
        title = action_title(&request.action),
        action = action_block(&request.action),
        chain = chain_block(&request.action),
        rules = rule_block(app, request),
        form = review_form(request, reviewer),
    );
    Ok(layout(
        &format!("Request {id}"),
        Some(reviewer.viewer()),
        Nav::Inbox,
        &body,
    ))
}

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    reviewed: Option<String>,
}

pub async fn page(
    State(app): State<Arc<App>>,
    reviewer: Reviewer,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Html<String>, PageError> {
    let request = load(&app, parse_id(&id)?).await?;
    let banner = match query.reviewed.as_deref() {
        Some("approve") => notice("ok", "Approved.", "Your approval is recorded."),
        Some("deny") => notice("ok", "Denied.", "Your denial is recorded."),
        _ => String::new(),
    };
    Ok(Html(render(&app, &request, &reviewer, &banner).await?))
}

pub async fn fragment(
    State(app): State<Arc<App>>,
    _reviewer: Reviewer,
    Path(id): Path<String>,
) -> Result<Html<String>, PageError> {
    let request = load(&app, parse_id(&id)?).await?;
    Ok(Html(live_part(&app, &request).await?))
}

#[derive(Debug, Deserialize)]
pub struct ReviewForm {
    csrf: Option<String>,
    verdict: Option<String>,
    comment: Option<String>,
}

pub async fn review(
    State(app): State<Arc<App>>,
    reviewer: Reviewer,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ReviewForm>,
) -> Result<Response, PageError> {
    reviewer.check_form(&app, &headers, form.csrf.as_deref())?;
    let id = parse_id(&id)?;
    let verdict = match form.verdict.as_deref() {
        Some("approve") => Verdict::Approve,
        Some("deny") => Verdict::Deny,
        _ => {
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                "Refused",
                "Choose Approve or Deny.",
            ));
        }
    };
    let comment = form
        .comment
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty());
    match app
        .broker
        .review(ReviewInput {
            reviewer: Arc::clone(&reviewer.principal),
            request: id,
            verdict,
            comment,
            channel: Channel::Web,
            authentication: reviewer.session.authentication,
        })
        .await
    {
        Ok(_) => Ok(Redirect::to(&format!("/requests/{id}?reviewed={verdict}")).into_response()),
        Err(refusal)
            if refusal.status.is_client_error() && refusal.status != StatusCode::NOT_FOUND =>
        {
            let request = load(&app, id).await?;
            let banner = notice(
                "error",
                "Countersign refused your review:",
                &refusal.message,
            );
            let page = render(&app, &request, &reviewer, &banner).await?;
            Ok((refusal.status, Html(page)).into_response())
        }
        Err(other) => Err(PageError::from(other)),
    }
}
