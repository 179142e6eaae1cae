//! Reported decisions are checked, through the real router: the broker decides each action an
//! enforcement point reports allowed or denied again, under the policy the report names, and
//! records an `action.report_mismatch` alert (counted in `/metrics`) when it decides otherwise,
//! does not know that policy, or cannot read the action; the reporter's answer says nothing of it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use countersign_client::Client;
use countersign_enforce::{Bindings, Check, Gate, GateConfig, Spool};
use countersign_model::{Action, Chain, Digest, PrincipalKind};
use countersign_policy::{Outcome, Policy};
use countersign_test_support::broker::{TestBroker, start_with};
use countersign_test_support::scratch::Scratch;
use serde_json::{Value, json};

const POLICY: &str = r#"version = 1
default = "deny"

[[rules]]
id = "read-only-git"
decision = "allow"
reason = "reading a repository changes nothing"
match.kind = "shell.exec"
match.command = ["git status*", "git log*"]

[[rules]]
id = "no-force-push"
decision = "deny"
reason = "history is not rewritten"
match.kind = "shell.exec"
match.command = ["git push --force*"]
"#;

/// The same policy with `git diff` added to the read-only rule.
fn reloaded_policy() -> String {
    POLICY.replace(r#""git log*"]"#, r#""git log*", "git diff*"]"#)
}

/// deploy-bot's `argv`, with its chain and labels as the broker's configuration says (it acts
/// for alice, on production).
fn action(argv: &[&str]) -> Action {
    Action {
        kind: "shell.exec".into(),
        resource: "host:build-1".into(),
        labels: production(),
        claims: Default::default(),
        details: json!({ "argv": argv }),
        principal: Chain {
            id: "deploy-bot".into(),
            kind: PrincipalKind::Agent,
            on_behalf_of: vec!["alice".into()],
            started_by: None,
            via: None,
        },
        justification: None,
    }
}

/// The labels the configuration gives deploy-bot.
fn production() -> BTreeMap<String, String> {
    [("env".to_owned(), "production".to_owned())].into()
}

/// An event as the local gate spools it: what it decided, by which rules, under which policy.
fn report(id: &str, outcome: Outcome, rules: &[&str], policy: Digest, action: &Action) -> Value {
    let kind = match outcome {
        Outcome::Allow => "action.allowed",
        _ => "action.denied",
    };
    json!({
        "type": kind,
        "explanation": "decided by the local gate",
        "data": {
            "event_id": id,
            "digest": action.digest().unwrap(),
            "rules": rules,
            "policy": policy,
            "action": action,
            "decided_at": "2026-12-06T12:00:00Z",
            "enforced_by": "countersign run",
        },
    })
}

/// What the gate would report: the policy's own decision.
fn truthful(id: &str, policy: &Policy, action: &Action) -> Value {
    let decision = policy.decide(action);
    let rules: Vec<&str> = decision.rules.iter().map(String::as_str).collect();
    report(id, decision.outcome, &rules, policy.hash(), action)
}

async fn send(b: &TestBroker, events: Vec<Value>) -> Value {
    let (status, body) = b
        .post(
            "deploy-bot",
            "/v1/audit/events",
            json!({ "events": events }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The alerts in the audit log, in order.
async fn alerts(b: &TestBroker) -> Vec<Value> {
    let (status, body) = b.get("sam", "/v1/audit?limit=5000").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "action.report_mismatch")
        .cloned()
        .collect()
}

async fn mismatches_counted(b: &TestBroker) -> u64 {
    let (_, m) = b.call(None, Method::GET, "/metrics", None).await;
    let m = m.as_str().unwrap();
    m.lines()
        .find_map(|l| {
            l.strip_prefix("countersign_report_mismatches_total ")?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("the mismatch count is missing from /metrics:\n{m}"))
}

#[tokio::test]
async fn truthful_reports_record_no_alert() {
    let b = start_with(POLICY, |s| s).await;
    let policy = Policy::parse(POLICY).unwrap();
    let body = send(
        &b,
        vec![
            truthful("e-1", &policy, &action(&["git", "status"])),
            truthful("e-2", &policy, &action(&["git", "push", "--force"])),
            truthful("e-3", &policy, &action(&["rm", "-rf", "/"])),
        ],
    )
    .await;
    assert_eq!(body, json!({"appended": 3, "already_recorded": 0}));
    assert_eq!(alerts(&b).await, Vec::<Value>::new());
    assert_eq!(mismatches_counted(&b).await, 0);
}

#[tokio::test]
async fn an_allow_the_named_policy_denies_is_an_alert_the_reporter_is_not_told_of() {
    let b = start_with(POLICY, |s| s).await;
    let policy = Policy::parse(POLICY).unwrap();
    let diff = action(&["git", "diff", "--output=x"]);
    let lie = report(
        "e-1",
        Outcome::Allow,
        &["read-only-git"],
        policy.hash(),
        &diff,
    );
    // The answer is the one a truthful report gets.
    let body = send(&b, vec![lie.clone()]).await;
    assert_eq!(body, json!({"appended": 1, "already_recorded": 0}));

    let found = alerts(&b).await;
    assert_eq!(found.len(), 1, "{found:?}");
    let alert = &found[0];
    assert_eq!(
        alert["explanation"],
        "deploy-bot reported rule read-only-git allowed `git diff --output=x`; under that policy \
         it is denied by default"
    );
    assert_eq!(alert["principal"], "deploy-bot");
    assert_eq!(alert["data"]["reported_event_id"], "e-1");
    assert_eq!(alert["data"]["reported"]["outcome"], "allow");
    assert_eq!(alert["data"]["reported"]["rules"], json!(["read-only-git"]));
    assert_eq!(alert["data"]["decided"]["outcome"], "deny");
    assert_eq!(alert["data"]["decided"]["rules"], json!([]));
    assert_eq!(alert["data"]["why"], json!(["outcome", "rules"]));
    assert_eq!(mismatches_counted(&b).await, 1);

    // The log keeps what the agent said, right before the alert about it.
    let (_, log) = b.get("sam", "/v1/audit").await;
    let events = log["events"].as_array().unwrap();
    let at = events
        .iter()
        .position(|e| e["type"] == "action.report_mismatch")
        .unwrap();
    assert_eq!(events[at - 1]["type"], "action.allowed");
    assert_eq!(events[at - 1]["data"]["event_id"], "e-1");

    // Sent again (a spool that missed the answer), neither is recorded twice.
    let body = send(&b, vec![lie]).await;
    assert_eq!(body, json!({"appended": 0, "already_recorded": 1}));
    assert_eq!(alerts(&b).await.len(), 1);
    assert_eq!(mismatches_counted(&b).await, 1);
}

#[tokio::test]
async fn other_rules_or_a_digest_of_another_action_are_alerts_too() {
    let b = start_with(POLICY, |s| s).await;
    let policy = Policy::parse(POLICY).unwrap();
    let push = action(&["git", "push", "--force"]);
    // The right outcome by the wrong rule.
    let wrong_rule = report(
        "e-1",
        Outcome::Deny,
        &["read-only-git"],
        policy.hash(),
        &push,
    );
    // The right decision, but a digest of another action (another chain, say).
    let mut other_digest = truthful("e-2", &policy, &push);
    other_digest["data"]["digest"] = json!(action(&["git", "status"]).digest().unwrap());
    send(&b, vec![wrong_rule, other_digest]).await;
    let found = alerts(&b).await;
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0]["data"]["why"], json!(["rules"]));
    assert_eq!(
        found[0]["explanation"],
        "deploy-bot reported rule read-only-git denied `git push --force`; under that policy it \
         is denied by rule no-force-push"
    );
    assert_eq!(found[1]["data"]["why"], json!(["digest"]));
    assert_eq!(mismatches_counted(&b).await, 2);
}

#[tokio::test]
async fn a_report_naming_an_unknown_policy_is_an_alert() {
    let b = start_with(POLICY, |s| s).await;
    let never_served = Digest::of(b"a policy this broker never served");
    let body = send(
        &b,
        vec![report(
            "e-1",
            Outcome::Allow,
            &["read-only-git"],
            never_served,
            &action(&["git", "status"]),
        )],
    )
    .await;
    assert_eq!(body, json!({"appended": 1, "already_recorded": 0}));
    let found = alerts(&b).await;
    assert_eq!(found.len(), 1, "{found:?}");
    let explanation = found[0]["explanation"].as_str().unwrap();
    assert!(
        explanation.contains(&format!(
            "under policy {never_served}, which this broker never served or no longer remembers"
        )),
        "{explanation}"
    );
    assert_eq!(found[0]["data"]["why"], json!(["unknown_policy"]));
    assert_eq!(found[0]["data"]["decided"], Value::Null);
    assert_eq!(mismatches_counted(&b).await, 1);
}

#[tokio::test]
async fn a_report_under_a_policy_replaced_by_a_reload_is_checked_under_it() {
    let b = start_with(POLICY, |s| s).await;
    let old = Policy::parse(POLICY).unwrap();
    std::fs::write(&b.policy_file, reloaded_policy()).unwrap();
    let (status, body) = b.post("sam", "/v1/admin/policy/reload", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let new = Policy::parse(&reloaded_policy()).unwrap();
    assert_ne!(old.hash(), new.hash());

    let diff = action(&["git", "diff"]);
    // A gate that has not seen the reload yet denies `git diff`, truthfully under the old policy;
    // one that has allows it under the new one.
    send(
        &b,
        vec![truthful("e-1", &old, &diff), truthful("e-2", &new, &diff)],
    )
    .await;
    assert_eq!(alerts(&b).await, Vec::<Value>::new());

    // Claiming the new policy's allow under the old one is not.
    send(
        &b,
        vec![report(
            "e-3",
            Outcome::Allow,
            &["read-only-git"],
            old.hash(),
            &diff,
        )],
    )
    .await;
    assert_eq!(alerts(&b).await.len(), 1);
}

#[tokio::test]
async fn a_decision_whose_action_cannot_be_read_is_an_alert() {
    let b = start_with(POLICY, |s| s).await;
    let body = send(
        &b,
        vec![
            json!({"type": "action.allowed", "explanation": "allowed", "data": {"event_id": "e-1"}}),
        ],
    )
    .await;
    assert_eq!(body, json!({"appended": 1, "already_recorded": 0}));
    let found = alerts(&b).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0]["explanation"],
        "deploy-bot reported an action.allowed that cannot be checked against the policy: \
         data.action is missing"
    );
    assert_eq!(found[0]["data"]["why"], json!(["malformed"]));
}

/// A local gate, as `countersign mcp` runs one, deciding with `policy` and spooling into `dir`.
fn gate(policy: &str, dir: &std::path::Path) -> Gate {
    Gate::offline(
        GateConfig {
            claims: Default::default(),
            policy_refresh: Duration::from_secs(3600),
            policy_max_age: Duration::from_secs(3600),
            enforced_by: "countersign mcp",
        },
        action(&["true"]).principal,
        Policy::parse(policy).unwrap(),
        Client::new("http://127.0.0.1:9", "unused").unwrap(),
        Arc::new(Spool::open(dir).unwrap()),
    )
    .bound(Bindings::new(production(), &[]).unwrap())
}

/// What the gate spooled, as the spool ships it.
fn spooled(dir: &std::path::Path) -> Vec<Value> {
    let mut events = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            let text = std::fs::read_to_string(path).unwrap();
            events.extend(
                text.lines()
                    .map(|l| serde_json::from_str::<Value>(l).unwrap()),
            );
        }
    }
    events
}

#[tokio::test]
async fn a_real_gates_reports_pass_and_a_gate_deciding_with_its_own_policy_is_an_alert() {
    let b = start_with(POLICY, |s| s).await;
    let honest_dir = Scratch::named("honest-gate");
    let honest = gate(POLICY, &honest_dir);
    for argv in [
        &["git", "status"][..],
        &["git", "push", "--force"],
        &["rm", "x"],
    ] {
        let action = honest.action("shell.exec", "host:build-1".into(), json!({ "argv": argv }));
        assert!(matches!(
            honest.check(action),
            Check::Allow | Check::Deny(_)
        ));
    }
    let events = spooled(&honest_dir);
    assert_eq!(events.len(), 3);
    send(&b, events).await;
    assert_eq!(alerts(&b).await, Vec::<Value>::new());

    // A gate whose policy was edited on the agent's machine to allow everything.
    let edited_dir = Scratch::named("edited-gate");
    let edited = gate(
        &POLICY.replace(r#"default = "deny""#, r#"default = "allow""#),
        &edited_dir,
    );
    let rm = edited.action(
        "shell.exec",
        "host:build-1".into(),
        json!({ "argv": ["rm", "x"] }),
    );
    assert!(matches!(edited.check(rm), Check::Allow));
    send(&b, spooled(&edited_dir)).await;
    let found = alerts(&b).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["data"]["why"], json!(["unknown_policy"]));
    assert_eq!(found[0]["data"]["enforced_by"], "countersign mcp");
}
