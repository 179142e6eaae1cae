//! What an operator relies on, through the real router: a reload refuses a policy that would
//! misbehave (keeping the old one and saying why), and `/metrics` counts every decision,
//! including those the MCP proxy made locally and reported.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

use countersign_test_support::broker as harness;

use axum::http::{Method, StatusCode};
use harness::{EXAMPLE_POLICY, error_message, pg_dump, start};
use serde_json::json;

const HEADER: &str = "version = 1\ndefault = \"allow\"\n";

/// A reload of each policy is refused with a message naming the rule (or test) and the problem,
/// and the example policy stays in force.
#[tokio::test]
async fn a_reload_refuses_conditions_failing_tests_and_invisible_characters() {
    let b = start().await;
    let before = b.broker.policy_hash();
    let cases = [
        (
            "if = \"actoin.kind == 'x'\"",
            "rule 'r': the condition uses 'actoin', which does not exist (did you mean action?)",
        ),
        (
            "if = \"action.kind\"",
            "rule 'r': the condition gives a string instead of true or false",
        ),
        (
            "if = \"action.details.argv\"",
            "rule 'r': the condition gives a list instead of true or false",
        ),
        (
            "match.resource = \"db:prod/cust\\u200Bomers\"",
            "rule 'r': match.resource pattern contains U+200B",
        ),
    ];
    for (extra, expected) in cases {
        let text = format!(
            "{HEADER}[[rules]]\nid = \"r\"\ndecision = \"deny\"\nreason = \"x\"\nmatch.kind = \"shell.exec\"\n{extra}\n"
        );
        std::fs::write(&b.policy_file, &text).unwrap();
        let (status, body) = b.post("sam", "/v1/admin/policy/reload", json!({})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text}\n{body}");
        let message = error_message(&body);
        assert!(message.contains("the old one stays in force"), "{message}");
        assert!(message.contains(expected), "{text}\n{message}");
        assert_eq!(b.broker.policy_hash(), before);
    }

    // The example policy with one of its own tests turned around.
    let failing = EXAMPLE_POLICY.replacen("expect = \"allow\"", "expect = \"deny\"", 1);
    std::fs::write(&b.policy_file, &failing).unwrap();
    let (status, body) = b.post("sam", "/v1/admin/policy/reload", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = error_message(&body);
    assert!(
        message.contains("the policy fails its own test: expected deny, got allow"),
        "{message}"
    );
    assert_eq!(b.broker.policy_hash(), before);

    // Still the example policy: the dump needs approval.
    let (status, body) = b.post("deploy-bot", "/v1/actions", pg_dump()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

fn count(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{series} is missing from /metrics:\n{metrics}"))
}

#[tokio::test]
async fn metrics_count_the_decisions_a_proxy_made_and_reported() {
    let b = start().await;
    let allowed = "countersign_decisions_total{outcome=\"allow\"}";
    let denied = "countersign_decisions_total{outcome=\"deny\"}";
    let reported_allowed = "countersign_reported_decisions_total{outcome=\"allow\"}";
    let reported_denied = "countersign_reported_decisions_total{outcome=\"deny\"}";
    let metrics = || async {
        let (_, m) = b.call(None, Method::GET, "/metrics", None).await;
        m.as_str().unwrap().to_owned()
    };
    let m = metrics().await;
    assert_eq!(count(&m, allowed), 0);
    assert_eq!(count(&m, reported_allowed), 0);

    let batch = json!({"events": [
        {"type": "action.allowed", "explanation": "get-sum allowed by the MCP proxy", "data": {"event_id": "e1"}},
        {"type": "action.allowed", "explanation": "echo allowed by the MCP proxy", "data": {"event_id": "e2"}},
        {"type": "action.denied", "explanation": "get-env denied by the MCP proxy", "data": {"event_id": "e3"}},
    ]});
    let (status, body) = b
        .post("deploy-bot", "/v1/audit/events", batch.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let m = metrics().await;
    assert_eq!(count(&m, allowed), 2, "{m}");
    assert_eq!(count(&m, denied), 1, "{m}");
    assert_eq!(count(&m, reported_allowed), 2, "{m}");
    assert_eq!(count(&m, reported_denied), 1, "{m}");

    // The spool sends a batch again when it did not hear the answer: counted once.
    let (status, body) = b.post("deploy-bot", "/v1/audit/events", batch).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["already_recorded"], 3);
    let m = metrics().await;
    assert_eq!(count(&m, allowed), 2, "{m}");
    assert_eq!(count(&m, denied), 1, "{m}");

    // The broker's own decisions count in the total, not among the reported ones.
    let (status, _) = b
        .post(
            "deploy-bot",
            "/v1/actions",
            json!({"kind": "shell.exec", "resource": "host:web-1", "details": {"argv": ["ls"], "program": "/usr/bin/ls"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let m = metrics().await;
    assert_eq!(count(&m, allowed), 3, "{m}");
    assert_eq!(count(&m, reported_allowed), 2, "{m}");
}
