//! Deciding one action: find the candidate rules through the index, match each in full, and apply
//! the precedence deny > require approval > allow, whatever the order of the rules.

use cel::Context;
use countersign_model::Action;

use crate::compile::{DEFAULT_APPROVAL_TTL, Matchers, Policy, Rule};
use crate::condition::context_for;
use crate::decision::{ConditionFailure, Decision, Outcome};
use crate::explain::explain;
use crate::program::CommandLines;
use crate::sql::statements;

/// What a decision computes at most once per action, and only if a candidate rule needs it.
struct Facts<'a> {
    action: &'a Action,
    commands: Option<CommandLines>,
    sql: Option<Option<Vec<String>>>,
    context: Option<Context<'static, 'static>>,
}

impl Facts<'_> {
    fn sql(&mut self) -> Option<&[String]> {
        let action = self.action;
        self.sql
            .get_or_insert_with(|| action.sql().map(statements))
            .as_deref()
    }
}

impl Matchers {
    /// Whether the rule's `match` fits the action (its condition aside). An allow rule
    /// (`strict`) must fit the whole action: every statement of its SQL, and a command's program
    /// as resolved (see [`CommandLines::fit`]); a deny or approval rule fits if any part does.
    fn fit(&self, facts: &mut Facts<'_>, strict: bool) -> bool {
        let action = facts.action;
        self.kinds.iter().any(|g| g.matches(&action.kind))
            && (self.resources.is_empty()
                || self.resources.iter().any(|g| g.matches(&action.resource)))
            && fits_pairs(&self.labels, &action.labels)
            && fits_pairs(&self.claims, &action.claims)
            && (self.commands.is_empty()
                || facts
                    .commands
                    .as_ref()
                    .is_some_and(|lines| lines.fit(&self.commands, strict)))
            && (self.sql.is_empty() || {
                let globs = &self.sql;
                let fits = |statement: &String| globs.iter().any(|g| g.matches(statement));
                facts.sql().is_some_and(|statements| {
                    if strict {
                        !statements.is_empty() && statements.iter().all(fits)
                    } else {
                        statements.iter().any(fits)
                    }
                })
            })
    }
}

impl Policy {
    /// Decides `action`. Never fails: a condition that cannot be evaluated makes the decision deny.
    pub fn decide(&self, action: &Action) -> Decision {
        let mut facts = Facts {
            action,
            commands: CommandLines::of(action),
            sql: None,
            context: None,
        };
        let lines: Vec<&str> = facts.commands.iter().flat_map(CommandLines::all).collect();
        let candidates = self
            .index
            .candidates(&action.kind, &action.resource, &lines);
        let mut matched: Vec<&Rule> = Vec::new();
        let mut failures = Vec::new();
        let mut failed_rules: Vec<&Rule> = Vec::new();
        for i in candidates {
            let rule = &self.rules[i as usize];
            if !rule
                .matchers
                .fit(&mut facts, rule.outcome == Outcome::Allow)
            {
                continue;
            }
            if let Some(condition) = &rule.condition {
                let context = facts
                    .context
                    .get_or_insert_with(|| context_for(&self.env, action));
                match condition.evaluate(context) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(error) => {
                        failed_rules.push(rule);
                        failures.push(ConditionFailure {
                            rule: rule.id.clone(),
                            error,
                        });
                        continue;
                    }
                }
            }
            matched.push(rule);
        }

        let outcome = if !failures.is_empty() {
            Outcome::Deny
        } else {
            matched
                .iter()
                .map(|r| r.outcome)
                .max()
                .unwrap_or(self.default)
        };
        let deciding: Vec<&Rule> = matched
            .into_iter()
            .filter(|r| r.outcome == outcome)
            .collect();
        // A fail-closed deny names the rules whose conditions failed, beside any deny rules.
        let mut rule_ids: Vec<(usize, &str)> =
            deciding.iter().map(|r| (r.line, r.id.as_str())).collect();
        for failed in &failed_rules {
            rule_ids.push((failed.line, failed.id.as_str()));
        }
        rule_ids.sort_unstable();
        let requirements: Vec<_> = deciding
            .iter()
            .filter_map(|r| r.requirement.clone())
            .collect();
        let timeout = (outcome == Outcome::RequireApproval).then(|| {
            deciding
                .iter()
                .map(|r| r.timeout.unwrap_or(self.default_timeout))
                .min()
                .unwrap_or(self.default_timeout)
        });
        let approval_ttl = (outcome == Outcome::RequireApproval).then(|| {
            deciding
                .iter()
                .map(|r| r.approval_ttl.unwrap_or(DEFAULT_APPROVAL_TTL))
                .min()
                .unwrap_or(DEFAULT_APPROVAL_TTL)
        });
        let explanation = explain(action, outcome, &deciding, &failures, timeout);
        Decision {
            outcome,
            rules: rule_ids.into_iter().map(|(_, id)| id.to_owned()).collect(),
            requirements,
            timeout_seconds: timeout.map(|t| t.as_secs()),
            approval_ttl_seconds: approval_ttl.map(|t| t.as_secs()),
            condition_failures: failures,
            explanation,
        }
    }
}

/// Every `match.labels` (or `match.claims`) entry names a key present with a matching value. The
/// two never look at each other's map: a claim cannot satisfy a label's matcher.
fn fits_pairs(
    matchers: &[(String, Vec<crate::glob::Glob>)],
    pairs: &std::collections::BTreeMap<String, String>,
) -> bool {
    matchers.iter().all(|(name, globs)| {
        pairs
            .get(name)
            .is_some_and(|value| globs.iter().any(|g| g.matches(value)))
    })
}
