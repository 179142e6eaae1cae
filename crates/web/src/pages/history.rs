//! History: every request, newest first, filtered by state, agent, rule and time.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Html;
use countersign_broker::RequestFilter;
use countersign_model::{PrincipalKind, Timestamp};
use serde::Deserialize;

use super::{action_title, who_asks};
use crate::html::{Nav, escape, notice, page as layout, state_badge, time};
use crate::{App, PageError, Reviewer};

/// History shows at most this many of the newest requests that match.
const SHOWN: u32 = 200;
const STATES: [&str; 5] = ["pending", "approved", "denied", "expired", "cancelled"];

#[derive(Debug, Default, Deserialize)]
pub struct Filters {
    state: Option<String>,
    agent: Option<String>,
    rule: Option<String>,
    /// `YYYY-MM-DD`, inclusive, UTC.
    from: Option<String>,
    to: Option<String>,
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// The start of a UTC day written `YYYY-MM-DD`.
fn day(text: &str) -> Option<Timestamp> {
    format!("{text}T00:00:00Z").parse().ok()
}

fn select(name: &str, label: &str, chosen: Option<&str>, options: &[String]) -> String {
    let mut out = format!(
        "<div class=\"field\"><label for=\"{name}\">{label}</label><select id=\"{name}\" name=\"{name}\"><option value=\"\">any</option>"
    );
    for option in options {
        let selected = if Some(option.as_str()) == chosen {
            " selected"
        } else {
            ""
        };
        let _ = write!(out, "<option{selected}>{}</option>", escape(option));
    }
    out.push_str("</select></div>");
    out
}

pub async fn page(
    State(app): State<Arc<App>>,
    reviewer: Reviewer,
    Query(filters): Query<Filters>,
) -> Result<Html<String>, PageError> {
    let mut problems = Vec::new();
    let state = non_empty(&filters.state).filter(|s| STATES.contains(s));
    let agent = non_empty(&filters.agent);
    let rule = non_empty(&filters.rule);
    let mut bound = |value: &Option<String>, name: &str, offset_days: i64| {
        let text = non_empty(value)?;
        match day(text) {
            Some(t) => Some(Timestamp::from_unix_millis(
                t.unix_millis() + offset_days * 86_400_000,
            )),
            None => {
                problems.push(format!("{name} '{text}' is not a date like 2026-05-02"));
                None
            }
        }
    };
    let from = bound(&filters.from, "From", 0);
    let to = bound(&filters.to, "To", 1);
    let matching = app
        .broker
        .requests(&RequestFilter {
            state: state.map(str::to_owned),
            requester: agent.map(str::to_owned),
            rule: rule.map(str::to_owned),
            created_from: from,
            created_before: to,
            limit: SHOWN,
        })
        .await?;

    let agents: Vec<String> = app
        .broker
        .principals()
        .iter()
        .filter(|p| p.kind == PrincipalKind::Agent)
        .map(|p| p.id.clone())
        .collect();
    let rules: Vec<String> = app
        .broker
        .policy()
        .rules()
        .iter()
        .map(|r| r.id.clone())
        .collect();
    let states: Vec<String> = STATES.iter().map(|s| (*s).to_owned()).collect();
    let date = |name: &str, label: &str, value: &Option<String>| {
        format!(
            "<div class=\"field\"><label for=\"{name}\">{label}</label><input type=\"date\" id=\"{name}\" name=\"{name}\" value=\"{}\"></div>",
            escape(non_empty(value).unwrap_or_default())
        )
    };
    let mut body = format!(
        "<h1>History</h1><form class=\"filters\" method=\"get\" action=\"/history\">{}{}{}{}{}\
         <div class=\"field\"><button type=\"submit\">Filter</button> <a href=\"/history\">Clear</a></div></form>",
        select("state", "State", state, &states),
        select("agent", "Agent", agent, &agents),
        select("rule", "Rule", rule, &rules),
        date("from", "From (UTC)", &filters.from),
        date("to", "To (UTC)", &filters.to),
    );
    for problem in &problems {
        body.push_str(&notice("error", "Filter ignored:", problem));
    }
    if matching.is_empty() {
        body.push_str("<p class=\"empty\">No request matches these filters.</p>");
    } else {
        let _ = write!(
            body,
            "<p>{} request{} (newest first{}).</p><div class=\"table\"><table><thead><tr>\
             <th scope=\"col\">Request</th><th scope=\"col\">Asked</th><th scope=\"col\">Requester</th>\
             <th scope=\"col\">Action</th><th scope=\"col\">Rule</th><th scope=\"col\">State</th><th scope=\"col\">Reviews</th></tr></thead><tbody>",
            matching.len(),
            if matching.len() == 1 { "" } else { "s" },
            if matching.len() == SHOWN as usize {
                ", the first 200"
            } else {
                ""
            }
        );
        for r in &matching {
            let reviews: Vec<String> = r
                .reviews
                .iter()
                .map(|v| format!("{} {}", v.reviewer.id, v.verdict))
                .collect();
            let _ = write!(
                body,
                "<tr><td><a href=\"/requests/{id}\"><code>{id}</code></a></td><td>{asked}</td><td>{who}</td>\
                 <td><code>{action}</code></td><td>{rules}</td><td>{state}</td><td>{reviews}</td></tr>",
                id = escape(&r.id.to_string()),
                asked = time(r.created_at),
                who = who_asks(&r.action),
                action = action_title(&r.action),
                rules = escape(&r.decision.rules.join(", ")),
                state = state_badge(r.state.name()),
                reviews = escape(&reviews.join(", ")),
            );
        }
        body.push_str("</tbody></table></div>");
    }
    Ok(Html(layout(
        "History",
        Some(reviewer.viewer()),
        Nav::History,
        &body,
    )))
}
