#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.
//! The local gate over any action: allowed and denied actions are spooled before they go on,
//! gated ones go to the hold, and a policy the broker has not confirmed in time decides nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use countersign_client::Client;
use countersign_enforce::{Bindings, Check, Gate, GateConfig, Refusal, Spool};
use countersign_model::{Chain, PrincipalKind};
use countersign_policy::Policy;
use serde_json::json;

const POLICY: &str = r#"
version = 1
default = "deny"

[[rules]]
id = "reads"
decision = "allow"
reason = "Reading changes nothing"
match.kind = "http.request"
match.resource = "http:api/read/*"

[[rules]]
id = "writes"
decision = "require_approval"
reason = "Writes need a second pair of eyes"
match.kind = "http.request"
match.resource = "http:api/write/*"
approvers.groups = ["sre"]
"#;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("countersign-gate-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn gate(dir: &Path, policy_max_age: Duration) -> Gate {
    Gate::offline(
        GateConfig {
            claims: Default::default(),
            policy_refresh: Duration::from_secs(5),
            policy_max_age,
            enforced_by: "countersign http-proxy",
        },
        Chain {
            via: None,
            id: "deploy-bot".into(),
            kind: PrincipalKind::Agent,
            on_behalf_of: vec!["alice".into()],
            started_by: None,
        },
        Policy::parse(POLICY).unwrap(),
        Client::new("http://127.0.0.1:9", "unused").unwrap(),
        Arc::new(Spool::open(dir).unwrap()),
    )
    // The broker's configuration gives deploy-bot env=production.
    .bound(Bindings::new([("env".to_owned(), "production".to_owned())].into(), &[]).unwrap())
}

/// The events spooled so far, one JSON value each.
fn spooled(dir: &Path) -> Vec<serde_json::Value> {
    let mut events = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            let text = std::fs::read_to_string(path).unwrap();
            events.extend(text.lines().map(|l| serde_json::from_str(l).unwrap()));
        }
    }
    events
}

#[test]
fn allowed_and_denied_actions_are_spooled_with_who_enforced_them() {
    let dir = temp_dir("spooled");
    let gate = gate(&dir, Duration::from_secs(3600));
    let read = gate.action(
        "http.request",
        "http:api/read/users".into(),
        json!({"method": "GET"}),
    );
    assert!(matches!(gate.check(read), Check::Allow));
    let other = gate.action("http.request", "http:other".into(), json!({}));
    let Check::Deny(decision) = gate.check(other) else {
        panic!("the policy's default denies it")
    };
    assert!(decision.rules.is_empty());
    let events = spooled(&dir);
    let kinds: Vec<_> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["action.allowed", "action.denied"]);
    assert_eq!(events[0]["data"]["enforced_by"], "countersign http-proxy");
    assert_eq!(events[0]["data"]["rules"], json!(["reads"]));
    assert_eq!(
        events[0]["data"]["action"]["labels"],
        json!({"env": "production"})
    );
}

#[test]
fn a_gated_action_goes_to_the_hold_unspooled() {
    let dir = temp_dir("gated");
    let gate = gate(&dir, Duration::from_secs(3600));
    let write = gate.action(
        "http.request",
        "http:api/write/users".into(),
        json!({"method": "POST"}),
    );
    let Check::Approval(request) = gate.check(write) else {
        panic!("writes need approval")
    };
    assert_eq!(request.resource, "http:api/write/users");
    // The broker adds deploy-bot's configured labels itself: an agent never sends labels.
    assert!(request.labels.is_empty());
    assert!(spooled(&dir).is_empty());
}

#[test]
fn a_policy_unconfirmed_for_too_long_decides_nothing() {
    let dir = temp_dir("stale");
    let gate = gate(&dir, Duration::ZERO);
    let read = gate.action("http.request", "http:api/read/users".into(), json!({}));
    let Check::Refuse(Refusal::Stale { max_age, .. }) = gate.check(read) else {
        panic!("a stale policy must refuse")
    };
    assert_eq!(max_age, Duration::ZERO);
    assert!(spooled(&dir).is_empty());
}
