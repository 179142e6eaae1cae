//! The plain-language explanation of a decision: who asked, for what, and which rules said what,
//! in words a reviewer and an auditor can read. Deterministic: the same action and policy always
//! give the same text.

use std::time::Duration;

use countersign_model::action::shell_join;
use countersign_model::canonical::to_canonical_string;
use countersign_model::{Action, Summary, format_duration, summary};

use crate::compile::Rule;
use crate::decision::{ConditionFailure, Outcome};

/// Quoted action text longer than this is cut, so one explanation stays one readable paragraph.
const MAX_QUOTED: usize = 200;

pub(crate) fn explain(
    action: &Action,
    outcome: Outcome,
    deciding: &[&Rule],
    failures: &[ConditionFailure],
    timeout: Option<Duration>,
) -> String {
    let chain = &action.principal;
    let clause_end = if chain.on_behalf_of.is_empty() && chain.started_by.is_none() {
        ""
    } else {
        ","
    };
    let mut s = format!(
        "{}{clause_end} asked to {} on {}",
        chain.describe(),
        describe_action(action),
        action.resource
    );
    if !action.labels.is_empty() {
        s.push_str(&format!(" ({})", action.labels_line()));
    }
    s.push('.');
    for failure in failures {
        s.push_str(&format!(
            " The condition of rule {} could not be evaluated ({}), so the action is denied: \
             Countersign fails closed.",
            failure.rule, failure.error
        ));
    }
    if deciding.is_empty() && failures.is_empty() {
        s.push_str(match outcome {
            Outcome::Allow => " No rule matches it; the policy's default is to allow.",
            _ => " No rule matches it; the policy's default is to deny.",
        });
    }
    for rule in deciding {
        let verdict = match (&rule.requirement, outcome) {
            (Some(requirement), Outcome::RequireApproval) => {
                format!("requires {}", requirement.describe())
            }
            (_, Outcome::Deny) => "denies it".to_owned(),
            _ => "allows it".to_owned(),
        };
        s.push_str(&format!(
            " Rule {} {verdict}: {}",
            rule.id,
            end_sentence(&rule.reason)
        ));
    }
    if let Some(timeout) = timeout {
        s.push_str(&format!(
            " The request stays open for {}.",
            format_duration(timeout)
        ));
    }
    s
}

fn end_sentence(text: &str) -> String {
    if text.ends_with(['.', '!', '?']) {
        text.to_owned()
    } else {
        format!("{text}.")
    }
}

/// "run `pg_dump customers` (the program /usr/bin/pg_dump)", "execute the SQL `COPY …`", "call
/// the tool with …". The program is named because `pg_dump` alone does not say which file runs.
fn describe_action(action: &Action) -> String {
    let details = &action.details;
    let text = |key: &str| details.get(key).and_then(|v| v.as_str());
    // By the kind alone, as every channel sums it up: a tool call's `argv` argument is not a
    // command it runs.
    match summary(action) {
        Summary::Command(argv) => {
            let mut s = format!("run `{}`", quote(&shell_join(argv)));
            if let Some(program) = text("program") {
                s.push_str(&format!(" (the program {})", quote(program)));
            }
            return s;
        }
        Summary::Sql(sql) => return format!("execute the SQL `{}`", quote(sql)),
        Summary::Details(_) => {}
    }
    if let (Some(method), Some(target)) = (text("method"), text("url").or_else(|| text("path"))) {
        return format!("send `{}`", quote(&format!("{method} {target}")));
    }
    if action.kind == "mcp.tool_call" {
        let arguments = details.get("arguments").unwrap_or(details);
        let arguments = to_canonical_string(arguments).unwrap_or_else(|_| arguments.to_string());
        return format!("call a tool with arguments `{}`", quote(&arguments));
    }
    format!("perform {}", action.kind)
}

/// Cuts long text and neutralises backticks, so quoted text cannot close its own quotes.
fn quote(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| match c {
            '`' => '\'',
            c if c.is_control() => ' ',
            c => c,
        })
        .take(MAX_QUOTED)
        .collect();
    if text.chars().count() > MAX_QUOTED {
        out.push('…');
    }
    out
}
