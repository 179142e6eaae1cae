//! How actions and requests read in a terminal: one-line summaries, quorum so far, time left, and
//! text from the broker (much of it written by agents) made unable to drive the terminal.

use std::time::Duration;

use countersign_client::{ProgressView, RequestView};
use countersign_model::{Action, Chain, Summary, Timestamp, format_duration, summary};

pub use countersign_broker::now;
pub use countersign_model::text::{clean, truncate};

/// What runs, in one line, chosen by the action's kind: the command of a `shell.exec`, the SQL
/// of a `sql.statement`, otherwise the kind and every detail (a tool call's `argv` argument is
/// one argument among the others).
pub fn what_runs(action: &Action) -> String {
    let summary = summary(action);
    match summary {
        Summary::Command(_) => format!("`{}`", clean(&summary.line())),
        Summary::Sql(_) => format!("SQL `{}`", clean(&summary.line())),
        Summary::Details(details) if details.as_object().is_some_and(|d| d.is_empty()) => {
            clean(&action.kind)
        }
        Summary::Details(_) => format!("{} {}", clean(&action.kind), clean(&summary.line())),
    }
}

/// "`pg_dump customers` on db:prod/customers".
pub fn action_summary(action: &Action) -> String {
    format!("{} on {}", what_runs(action), clean(&action.resource))
}

/// "deploy-bot for alice": who asks, compactly.
pub fn requester(chain: &Chain) -> String {
    let mut s = clean(&chain.id);
    if !chain.on_behalf_of.is_empty() {
        s.push_str(" for ");
        s.push_str(&clean(&chain.on_behalf_of.join(", ")));
    }
    s
}

/// How long from `now` until `until`, to the second: `29m12s`, `0s` once past.
pub fn time_left(now: Timestamp, until: Timestamp) -> String {
    format_duration(Duration::from_secs(now.until(until).as_secs()))
}

/// Approvals so far against approvals needed, per requirement: `1/2`, `1/2 (1/2 groups)`.
pub fn quorum(progress: &[ProgressView]) -> String {
    let parts: Vec<String> = progress
        .iter()
        .map(|p| {
            let mut s = format!("{}/{}", p.approved_by.len(), p.needed);
            if p.groups_needed > 1 {
                s.push_str(&format!(
                    " ({}/{} groups)",
                    p.groups_covered, p.groups_needed
                ));
            }
            s
        })
        .collect();
    if parts.is_empty() {
        "-".to_owned()
    } else {
        parts.join(", ")
    }
}

/// Who still has to approve and how far each requirement has got:
/// "1/2 approvals (dana), 1/2 groups": how far one requirement's approvals have come.
pub fn approvals(p: &ProgressView) -> String {
    let mut s = format!("{}/{} approvals", p.approved_by.len(), p.needed);
    if !p.approved_by.is_empty() {
        s.push_str(&format!(" ({})", clean(&p.approved_by.join(", "))));
    }
    if p.groups_needed > 1 {
        s.push_str(&format!(
            ", {}/{} groups",
            p.groups_covered, p.groups_needed
        ));
    }
    s
}

/// "members of dba or sre: 1/2 approvals (dana), 1/2 groups".
pub fn waiting_for(view: &RequestView) -> String {
    let parts: Vec<String> = view
        .progress
        .iter()
        .filter(|p| !p.satisfied)
        .map(|p| {
            let who = view
                .requirement(&p.rule)
                .map_or_else(|| format!("rule {}", p.rule), |r| r.who());
            format!("{}: {}", clean(&who), approvals(p))
        })
        .collect();
    if parts.is_empty() {
        "the last approvals to be counted".to_owned()
    } else {
        parts.join("; ")
    }
}
