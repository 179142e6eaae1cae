//! Properties of the policy engine: the indexed decision equals a rule-by-rule evaluation whatever
//! the order of the rules; parse ∘ print is the identity; globs agree with a reference matcher.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

use std::collections::BTreeMap;

use countersign_model::{Action, Chain, PrincipalKind};
use countersign_policy::glob::Glob;
use countersign_policy::{Outcome, Policy, PolicySource};
use proptest::prelude::*;
use serde_json::json;

#[derive(Debug, Clone)]
struct RuleSpec {
    kind: &'static str,
    resource: Option<&'static str>,
    command: Option<&'static str>,
    env: Option<&'static str>,
    condition: Option<&'static str>,
    outcome: Outcome,
}

fn rule_spec() -> impl Strategy<Value = RuleSpec> {
    (
        prop::sample::select(vec![
            "shell.exec",
            "sql.statement",
            "mcp.tool_call",
            "mcp.*",
            "*",
            "shell.*",
        ]),
        prop::option::of(prop::sample::select(vec![
            "db:prod/*",
            "db:*",
            "db:prod/customers",
            "mcp:github/*",
            "host:web-?",
            "*",
            "db:prod/c*s",
        ])),
        prop::option::of(prop::sample::select(vec![
            "pg_dump *",
            "ls*",
            "*",
            "kubectl delete *",
            "pg_dump",
            "/usr/bin/pg_dump *",
            "/tmp/*",
        ])),
        prop::option::of(prop::sample::select(vec!["production", "staging", "*"])),
        prop::option::of(prop::sample::select(vec![
            r#"principal.id == "bot-1""#,
            r#"action.labels.env == "production""#,
            r#"size(principal.on_behalf_of) > 0"#,
        ])),
        prop::sample::select(vec![
            Outcome::Allow,
            Outcome::Deny,
            Outcome::RequireApproval,
        ]),
    )
        .prop_map(
            |(kind, resource, command, env, condition, outcome)| RuleSpec {
                kind,
                resource,
                command,
                env,
                condition,
                outcome,
            },
        )
}

fn render(rules: &[(usize, RuleSpec)], default: Outcome) -> String {
    let mut text = format!("version = 1\ndefault = \"{default}\"\n");
    for (id, rule) in rules {
        text.push_str(&format!(
            "\n[[rules]]\nid = \"r{id}\"\ndecision = \"{}\"\nreason = \"generated\"\nmatch.kind = \"{}\"\n",
            rule.outcome, rule.kind
        ));
        if let Some(r) = rule.resource {
            text.push_str(&format!("match.resource = \"{r}\"\n"));
        }
        if let Some(c) = rule.command {
            text.push_str(&format!("match.command = \"{c}\"\n"));
        }
        if let Some(env) = rule.env {
            text.push_str(&format!("match.labels = {{ env = \"{env}\" }}\n"));
        }
        if let Some(condition) = rule.condition {
            text.push_str(&format!("if = '{condition}'\n"));
        }
        if rule.outcome == Outcome::RequireApproval {
            text.push_str("approvers = { groups = [\"sre\"] }\n");
        }
    }
    text
}

fn action_strategy() -> impl Strategy<Value = Action> {
    (
        prop::sample::select(vec![
            "shell.exec",
            "sql.statement",
            "mcp.tool_call",
            "shell.script",
            "http.request",
        ]),
        prop::sample::select(vec![
            "db:prod/customers",
            "db:prod/orders",
            "db:staging/x",
            "mcp:github/merge",
            "host:web-1",
            "host:web-10",
            "other",
        ]),
        prop::option::of(prop::sample::select(vec![
            vec!["pg_dump", "customers"],
            vec!["/usr/bin/pg_dump"],
            vec!["ls"],
            vec!["lsblk", "-a"],
            vec!["kubectl", "delete", "pod", "x"],
        ])),
        prop::option::of(prop::sample::select(vec!["production", "staging"])),
        prop::sample::select(vec!["bot-1", "bot-2"]),
        any::<bool>(),
        prop::option::of(prop::sample::select(vec![
            "/usr/bin/pg_dump",
            "/usr/bin/ls",
            "/tmp/x/ls",
            "relative/ls",
        ])),
    )
        .prop_map(
            |(kind, resource, argv, env, id, delegated, program)| Action {
                kind: kind.into(),
                resource: resource.into(),
                claims: Default::default(),
                labels: env
                    .map(|e| BTreeMap::from([("env".to_owned(), e.to_owned())]))
                    .unwrap_or_default(),
                details: match (argv, program) {
                    (Some(a), Some(p)) => json!({ "argv": a, "program": p }),
                    (Some(a), None) => json!({ "argv": a }),
                    (None, _) => json!({}),
                },
                principal: Chain {
                    id: id.into(),
                    kind: PrincipalKind::Agent,
                    on_behalf_of: if delegated {
                        vec!["alice".into()]
                    } else {
                        vec![]
                    },
                    started_by: None,
                    via: None,
                },
                justification: None,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Whatever the rules and their order, the decision is the strictest outcome among the rules
    /// that match on their own (or the default), naming exactly those rules.
    #[test]
    fn decision_is_precedence_over_independently_matching_rules(
        specs in prop::collection::vec(rule_spec(), 0..12),
        actions in prop::collection::vec(action_strategy(), 1..8),
        default in prop::sample::select(vec![Outcome::Allow, Outcome::Deny]),
        seed in any::<u64>(),
    ) {
        let rules: Vec<(usize, RuleSpec)> = specs.into_iter().enumerate().collect();
        let policy = Policy::parse(&render(&rules, default)).unwrap();
        let mut shuffled = rules.clone();
        // A deterministic shuffle from the seed.
        let mut s = seed | 1;
        for i in (1..shuffled.len()).rev() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            shuffled.swap(i, (s % (i as u64 + 1)) as usize);
        }
        let reordered = Policy::parse(&render(&shuffled, default)).unwrap();
        let alone: Vec<Policy> = rules.iter().map(|r| Policy::parse(&render(std::slice::from_ref(r), default)).unwrap()).collect();

        for action in &actions {
            // A rule whose condition cannot be evaluated counts as a deny (fail closed).
            let matching: Vec<(usize, Outcome)> = rules
                .iter()
                .zip(&alone)
                .filter_map(|((id, spec), p)| {
                    let d = p.decide(action);
                    match (d.rules.is_empty(), d.condition_failures.is_empty()) {
                        (true, _) => None,
                        (false, true) => Some((*id, spec.outcome)),
                        (false, false) => Some((*id, Outcome::Deny)),
                    }
                })
                .collect();
            let expected_outcome = matching.iter().map(|(_, o)| *o).max().unwrap_or(default);
            let mut expected_rules: Vec<String> = matching
                .iter()
                .filter(|(_, o)| *o == expected_outcome)
                .map(|(id, _)| format!("r{id}"))
                .collect();
            expected_rules.sort();

            for p in [&policy, &reordered] {
                let decision = p.decide(action);
                let mut got = decision.rules.clone();
                got.sort();
                prop_assert_eq!(decision.outcome, expected_outcome, "{}", decision.explanation);
                prop_assert_eq!(&got, &expected_rules, "{}", decision.explanation);
                prop_assert_eq!(decision.requirements.len(), if expected_outcome == Outcome::RequireApproval { expected_rules.len() } else { 0 });
            }
        }
    }

    /// Printing a parsed policy and parsing the result gives the same document.
    #[test]
    fn parse_print_is_identity(specs in prop::collection::vec(rule_spec(), 0..8), default in prop::sample::select(vec![Outcome::Allow, Outcome::Deny])) {
        let rules: Vec<(usize, RuleSpec)> = specs.into_iter().enumerate().collect();
        let source = PolicySource::parse(&render(&rules, default)).unwrap();
        let printed = source.print().unwrap();
        let reparsed = PolicySource::parse(&printed).unwrap();
        prop_assert_eq!(&reparsed, &source);
        prop_assert_eq!(&reparsed.print().unwrap(), &printed);
        prop_assert!(Policy::parse(&printed).is_ok());
    }

    #[test]
    fn globs_agree_with_a_reference_matcher(pattern in "[ab*?/]{1,8}", text in "[ab/é]{0,10}") {
        let glob = Glob::new(&pattern).unwrap();
        prop_assert_eq!(glob.matches(&text), reference(&pattern.chars().collect::<Vec<_>>(), &text.chars().collect::<Vec<_>>()));
        prop_assert!(text.starts_with(&glob.literal_prefix()) || !glob.matches(&text));
    }
}

/// Exponential but obviously correct.
fn reference(p: &[char], t: &[char]) -> bool {
    match (p.first(), t.first()) {
        (None, None) => true,
        (None, Some(_)) => false,
        (Some('*'), _) => reference(&p[1..], t) || (!t.is_empty() && reference(p, &t[1..])),
        (Some('?'), Some(_)) => reference(&p[1..], &t[1..]),
        (Some(c), Some(d)) => c == d && reference(&p[1..], &t[1..]),
        (Some(_), None) => false,
    }
}

#[test]
fn the_example_policy_prints_and_parses_back() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/policy.toml"
    ))
    .unwrap();
    let source = PolicySource::parse(&text).unwrap();
    let printed = source.print().unwrap();
    assert_eq!(PolicySource::parse(&printed).unwrap(), source);
    let reprinted = Policy::parse(&printed).unwrap();
    assert_eq!(
        reprinted.run_tests().iter().filter(|r| !r.passed()).count(),
        0
    );
}
