//! What examples/policy.toml promises beyond its own `[[tests]]`: the facts its rules match come
//! from labels, never from the agent's claims, and every read-only rule is tested against a way
//! around it (an option or a variable that writes or runs), expected gated or denied.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

use countersign_model::Action;
use countersign_policy::{Outcome, Policy, PolicySource};
use serde_json::json;

fn text() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/policy.toml"
    ))
    .unwrap()
}

/// `terraform apply` from deploy-bot, with these labels and claims.
fn apply(labels: serde_json::Value, claims: serde_json::Value) -> Action {
    serde_json::from_value(json!({
        "kind": "shell.exec", "resource": "terraform:network",
        "labels": labels, "claims": claims,
        "details": {"argv": ["terraform", "apply"], "program": "/usr/bin/terraform"},
        "principal": {"id": "deploy-bot", "kind": "agent"}
    }))
    .unwrap()
}

#[test]
fn a_claim_never_stands_for_a_label() {
    let policy = Policy::parse(&text()).unwrap();
    // Production by configuration, staging by the agent's word: production.
    let gated = policy.decide(&apply(
        json!({"env": "production"}),
        json!({"env": "staging"}),
    ));
    assert_eq!(gated.outcome, Outcome::RequireApproval);
    assert_eq!(gated.rules, ["terraform-prod"]);
    // Staging by the agent's word alone is no environment at all: the default.
    let refused = policy.decide(&apply(json!({}), json!({"env": "staging"})));
    assert_eq!(refused.outcome, Outcome::Deny);
    assert!(refused.rules.is_empty(), "{:?}", refused.rules);
    // The label alone still allows staging.
    let allowed = policy.decide(&apply(json!({"env": "staging"}), json!({})));
    assert_eq!(allowed.rules, ["terraform-nonprod"]);
}

/// For each `read-only-*` rule, the example has a test case whose action the rule's matchers
/// alone would allow (without its condition, and without every other rule) and which the whole
/// policy is expected to gate or deny: the way around it that the rule must close.
#[test]
fn every_read_only_rule_has_a_way_around_it_tested_and_closed() {
    let source = PolicySource::parse(&text()).unwrap();
    let read_only: Vec<_> = source
        .rules
        .iter()
        .filter(|r| r.get_ref().id.starts_with("read-only-"))
        .collect();
    assert!(read_only.len() >= 7, "{}", read_only.len());
    for rule in read_only {
        let mut alone = source.clone();
        let mut matchers_only = rule.clone();
        matchers_only.get_mut().condition = None;
        alone.rules = vec![matchers_only];
        alone.tests.clear();
        let alone = Policy::parse(&alone.print().unwrap()).unwrap();
        let closed: Vec<&str> = source
            .tests
            .iter()
            .map(|t| t.get_ref())
            .filter(|t| t.expect.get_ref() != "allow")
            .filter(|t| alone.decide(&t.action).outcome == Outcome::Allow)
            .map(|t| t.name.as_str())
            .collect();
        assert!(
            !closed.is_empty(),
            "no test of the example tries a way around rule '{}'",
            rule.get_ref().id
        );
    }
}
