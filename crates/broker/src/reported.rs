//! Reported decisions are checked: an enforcement point that runs as the agent (`countersign run`,
//! stdio `countersign mcp`) decides allow and deny itself and reports them, so the broker decides
//! each reported action again under the policy the report names, and records an alert
//! (`action.report_mismatch`) when the outcome or the deciding rules differ, when it never served
//! that policy or no longer remembers it, or when the report cannot be decided at all. The check
//! comes after the fact (the action already ran or was refused): it detects a tampered or stale
//! local gate, it does not stop one. The reporter's answer says nothing of it, so a gate cannot
//! use reports to probe the policy.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use countersign_audit::{AuditEvent, EventDraft, EventKind};
use countersign_model::{Action, Chain, Digest, Timestamp, summary, text};
use countersign_policy::{Outcome, Policy};
use countersign_store::{Reported, StoreError};
use serde_json::{Value, json};

use crate::config::Principal;
use crate::state::{State, draft};

/// How many policies replaced by reloads the broker remembers, besides the one in force: a gate
/// polls for changes every few seconds and ships its spool within a second, so a report names one
/// of the last few; one older than that is reported as naming an unknown policy.
pub const REMEMBERED: usize = 16;

/// The policies this broker served since it started and replaced by reloads, newest last.
#[derive(Debug, Default)]
pub struct Served {
    replaced: Mutex<VecDeque<Arc<Policy>>>,
}

impl Served {
    /// Remembers `policy`, about to be replaced by a reload, forgetting the oldest beyond
    /// [`REMEMBERED`].
    pub fn replaced(&self, policy: Arc<Policy>) {
        let mut replaced = self.replaced.lock().unwrap_or_else(|e| e.into_inner());
        replaced.retain(|p| p.hash() != policy.hash());
        replaced.push_back(policy);
        while replaced.len() > REMEMBERED {
            replaced.pop_front();
        }
    }

    fn find(&self, hash: Digest) -> Option<Arc<Policy>> {
        let replaced = self.replaced.lock().unwrap_or_else(|e| e.into_inner());
        replaced.iter().rev().find(|p| p.hash() == hash).cloned()
    }
}

/// The policy with this hash, if the broker serves or remembers it.
fn policy_named(state: &State, hash: Digest) -> Option<Arc<Policy>> {
    let in_force = state.policy();
    if in_force.hash() == hash {
        return Some(in_force);
    }
    state.served.find(hash)
}

/// What a reported `action.allowed` / `action.denied` says, read from its data.
struct Report {
    outcome: Outcome,
    action: Action,
    digest: Digest,
    rules: Vec<String>,
    policy: Digest,
}

/// The alert to record with a reported event, if it does not match the policy it names; `None`
/// for a matching report, and for events that are not local decisions (`action.outcome`).
/// `reporter` is the requester: the action is decided with its chain as the configuration says.
pub fn check(
    state: &State,
    reporter: &Principal,
    kind: EventKind,
    data: &Value,
    at: Timestamp,
) -> Option<EventDraft> {
    let reported = match kind {
        EventKind::ActionAllowed => Outcome::Allow,
        EventKind::ActionDenied => Outcome::Deny,
        _ => return None,
    };
    let who = &reporter.id;
    let report = match read(reported, data) {
        Ok(report) => report,
        Err(why) => {
            let explanation = format!(
                "{who} reported an {kind} that cannot be checked against the policy: {why}"
            );
            return Some(alert(
                at,
                who,
                data,
                explanation,
                json!({ "outcome": reported }),
                Value::Null,
                &["malformed"],
            ));
        }
    };
    let mut action = report.action.clone();
    action.principal = Chain {
        id: reporter.id.clone(),
        kind: reporter.kind,
        on_behalf_of: reporter.acts_for.clone(),
        started_by: reporter.started_by.clone(),
        via: None,
    };
    let said = format!(
        "{who} reported {} {} `{}`",
        by_rules(&report.rules),
        past(report.outcome),
        text::truncate(&summary(&report.action).line(), 200)
    );
    let reported_json = json!({
        "outcome": report.outcome,
        "rules": report.rules,
        "policy": report.policy,
        "digest": report.digest,
    });
    let Some(policy) = policy_named(state, report.policy) else {
        let explanation = format!(
            "{said} under policy {}, which this broker never served or no longer remembers (it \
             keeps the policy in force and the last {REMEMBERED} it replaced since it started), \
             so the decision cannot be checked",
            report.policy
        );
        return Some(alert(
            at,
            who,
            data,
            explanation,
            reported_json,
            Value::Null,
            &["unknown_policy"],
        ));
    };
    let decision = policy.decide(&action);
    let digest = action.digest().ok();
    let mut why = Vec::new();
    let mut differences = Vec::new();
    if decision.outcome != report.outcome || decision.rules != report.rules {
        if decision.outcome != report.outcome {
            why.push("outcome");
        }
        if decision.rules != report.rules {
            why.push("rules");
        }
        differences.push(format!(
            "under that policy it {} {}",
            present(decision.outcome),
            by_rules_passive(&decision.rules)
        ));
    }
    if digest != Some(report.digest) {
        why.push("digest");
        differences.push(format!(
            "the digest it reported ({}) is not that of the action with {who}'s chain as \
             configured",
            report.digest
        ));
    }
    if why.is_empty() {
        return None;
    }
    let decided = json!({
        "outcome": decision.outcome,
        "rules": decision.rules,
        "digest": digest,
    });
    Some(alert(
        at,
        who,
        data,
        format!("{said}; {}", differences.join("; ")),
        reported_json,
        decided,
        &why,
    ))
}

/// Reads what a report says; `Err` names the field that is missing or wrong.
fn read(outcome: Outcome, data: &Value) -> Result<Report, String> {
    let field = |name: &str| {
        data.get(name)
            .ok_or_else(|| format!("data.{name} is missing"))
    };
    let action: Action = serde_json::from_value(field("action")?.clone())
        .map_err(|e| format!("data.action is not an action ({e})"))?;
    action
        .validate()
        .map_err(|e| format!("data.action is not valid ({e})"))?;
    let digest: Digest = serde_json::from_value(field("digest")?.clone())
        .map_err(|e| format!("data.digest is not a digest ({e})"))?;
    let rules: Vec<String> = serde_json::from_value(field("rules")?.clone())
        .map_err(|e| format!("data.rules is not a list of rule ids ({e})"))?;
    let policy: Digest = serde_json::from_value(field("policy")?.clone())
        .map_err(|e| format!("data.policy is not a policy hash ({e})"))?;
    Ok(Report {
        outcome,
        action,
        digest,
        rules,
        policy,
    })
}

/// The alert itself: it names the reported event by the reporter's id for it (the event itself
/// is the one recorded just before it), what was reported, what the broker decided, and why
/// they differ (`outcome`, `rules`, `digest`, `unknown_policy`, `malformed`).
fn alert(
    at: Timestamp,
    who: &str,
    data: &Value,
    explanation: String,
    reported: Value,
    decided: Value,
    why: &[&str],
) -> EventDraft {
    draft(at, EventKind::ActionReportMismatch, who, None, explanation).with_data(json!({
        "reported_event_id": data.get("event_id").cloned().unwrap_or(Value::Null),
        "reported_by": who,
        "enforced_by": data.get("enforced_by").cloned().unwrap_or(Value::Null),
        "reported": reported,
        "decided": decided,
        "why": why,
    }))
}

/// "rule a", "rules a, b", or "the default" for a decision no rule made.
fn by_rules(rules: &[String]) -> String {
    match rules {
        [] => "the default".to_owned(),
        [rule] => format!("rule {rule}"),
        rules => format!("rules {}", rules.join(", ")),
    }
}

fn by_rules_passive(rules: &[String]) -> String {
    match rules {
        [] => "by default".to_owned(),
        rules => format!("by {}", by_rules(rules)),
    }
}

fn past(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Allow => "allowed",
        Outcome::RequireApproval => "held for approval",
        Outcome::Deny => "denied",
    }
}

fn present(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Allow => "is allowed",
        Outcome::RequireApproval => "requires approval",
        Outcome::Deny => "is denied",
    }
}

/// Counts what a batch of reports appended: the reported events (what the reporter is told was
/// appended) and, in the metrics, the alerts among them.
pub fn appended(state: &State, events: &[AuditEvent]) -> usize {
    let alerts = events
        .iter()
        .filter(|e| e.event_kind() == Some(EventKind::ActionReportMismatch))
        .count();
    state.metrics.report_mismatches(alerts as u64);
    events.len() - alerts
}

/// A reported event as the store appends it: with its alert, if it does not match the policy.
pub fn checked(
    state: &State,
    reporter: &Principal,
    event_id: Option<String>,
    event: EventDraft,
) -> Reported {
    let alert = event
        .kind
        .parse()
        .ok()
        .and_then(|kind| check(state, reporter, kind, &event.data, event.time));
    Reported {
        event_id,
        event,
        follow_ups: alert.into_iter().collect(),
    }
}

/// How far back, in events of the log, [`recent_alerts`] looks: the inbox shows recent alerts,
/// and a busy log is not read whole for each page.
pub const SCANNED: u64 = 50_000;

/// The newest `action.report_mismatch` alerts among the last [`SCANNED`] events of the log, at most
/// `limit`, newest first.
pub async fn recent_alerts(state: &State, limit: usize) -> Result<Vec<AuditEvent>, StoreError> {
    const PAGE: u64 = 5_000;
    let head = state.store.audit_head().await?.map_or(0, |h| h.seq);
    let floor = head.saturating_sub(SCANNED);
    let mut through = head;
    let mut found = Vec::new();
    while through > floor && found.len() < limit {
        let after = through.saturating_sub(PAGE).max(floor);
        let page = state
            .store
            .audit_after(after, u32::try_from(through - after).unwrap_or(u32::MAX))
            .await?;
        found.extend(
            page.into_iter()
                .rev()
                .filter(|e| e.seq <= through)
                .filter(|e| e.event_kind() == Some(EventKind::ActionReportMismatch))
                .take(limit - found.len()),
        );
        through = after;
    }
    Ok(found)
}
