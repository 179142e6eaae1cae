//! What the wire types accept: bodies refuse what the API does not name and keys repeated in
//! free-form JSON; views ignore what they do not know; codes and event types read as they are
//! written.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

use countersign_api::{
    ActionBody, AppendBody, ErrorCode, OutcomeBody, ReadCode, ReportedEventType, RequestView,
    ReviewBody,
};
use serde_json::json;

#[test]
fn bodies_refuse_unknown_fields() {
    let refused = [
        serde_json::from_value::<ActionBody>(json!({"kind": "a.b", "resource": "x", "colour": 1}))
            .unwrap_err()
            .to_string(),
        serde_json::from_value::<ReviewBody>(json!({"verdict": "approve", "because": "ok"}))
            .unwrap_err()
            .to_string(),
        serde_json::from_value::<OutcomeBody>(json!({"status": "ran", "code": 0}))
            .unwrap_err()
            .to_string(),
    ];
    for error in refused {
        assert!(error.contains("unknown field"), "{error}");
    }
}

#[test]
fn a_key_repeated_in_details_or_data_is_refused_naming_it() {
    let error = serde_json::from_str::<ActionBody>(
        r#"{"kind": "shell.exec", "resource": "host:a", "details": {"argv": ["ls"], "argv": ["rm"]}}"#,
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains(r#"the key "argv" appears twice"#),
        "{error}"
    );
    let error = serde_json::from_str::<AppendBody>(
        r#"{"events": [{"type": "action.allowed", "explanation": "x", "data": {"a": {"b": 1, "b": 2}}}]}"#,
    )
    .unwrap_err();
    assert!(
        error.to_string().contains(r#"the key "b" appears twice"#),
        "{error}"
    );
    // Without repeats, details read as sent; null data is no data.
    let body: ActionBody = serde_json::from_str(
        r#"{"kind": "shell.exec", "resource": "host:a", "details": {"argv": ["ls"]}}"#,
    )
    .unwrap();
    assert_eq!(body.details, json!({"argv": ["ls"]}));
    let batch: AppendBody = serde_json::from_str(
        r#"{"events": [{"type": "action.outcome", "explanation": "x", "data": null}]}"#,
    )
    .unwrap();
    assert_eq!(batch.events[0].data, json!({}));
    assert_eq!(batch.events[0].kind, ReportedEventType::ActionOutcome);
}

#[test]
fn only_local_decisions_and_outcomes_can_be_reported() {
    let error = serde_json::from_value::<AppendBody>(
        json!({"events": [{"type": "policy.reloaded", "explanation": "x"}]}),
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("type 'policy.reloaded' cannot be reported"),
        "{error}"
    );
}

#[test]
fn a_view_reads_past_fields_it_does_not_know_and_writes_what_it_read() {
    let sent = json!({
        "id": "r_0123456789abcdef0123456789abcdef",
        "state": "pending",
        "digest": format!("sha256:{}", "ab".repeat(32)),
        "action": {
            "kind": "shell.exec", "resource": "db:prod/customers", "labels": {},
            "details": {"argv": ["pg_dump"]},
            "principal": {"id": "deploy-bot", "kind": "agent", "team": "data"},
            "risk": "high"
        },
        "rules": ["prod-db-export"],
        "explanation": "…",
        "requirements": [{"rule": "prod-db-export", "groups": ["dba"], "principals": [], "count": 1, "distinct_groups": 0, "denials": 1, "weight": 2}],
        "progress": [],
        "reviews": [],
        "created_at": "2026-11-21T16:08:00.000Z",
        "expires_at": "2026-11-21T16:38:00.000Z",
        "decided_at": null, "decided_by": null, "approval_expires_at": null,
        "summary": "waiting",
        "grant": null,
        "escalation": {"after": "10m"}
    });
    let view: RequestView = serde_json::from_value(sent).unwrap();
    assert_eq!(view.action.principal.id, "deploy-bot");
    assert_eq!(view.requirements[0].count, 1);
    let written = serde_json::to_value(&view).unwrap();
    assert!(written.get("escalation").is_none());
    assert!(written["action"].get("risk").is_none());
    assert_eq!(written["action"]["details"], json!({"argv": ["pg_dump"]}));
}

#[test]
fn error_codes_read_known_and_unknown() {
    for code in ErrorCode::ALL {
        let text = serde_json::to_value(code).unwrap();
        assert_eq!(serde_json::from_value::<ErrorCode>(text).unwrap(), *code);
    }
    assert_eq!(
        ReadCode::from("grant_used".to_owned()),
        ReadCode::Known(ErrorCode::GrantUsed)
    );
    assert_eq!(
        ReadCode::from("quota_exceeded".to_owned()).as_str(),
        "quota_exceeded"
    );
}

#[test]
fn an_action_body_carries_claims_apart_from_labels_and_claims_are_not_in_the_digest() {
    let body: ActionBody = serde_json::from_value(json!({
        "kind": "shell.exec", "resource": "host:build-7", "claims": {"env": "staging"}
    }))
    .unwrap();
    assert_eq!(body.claims["env"], "staging");
    assert!(body.labels.is_empty());
    let mut without = body.clone();
    without.claims.clear();
    // A claim changes nothing that runs: the approval binds to the same digest.
    assert_eq!(body.digest().unwrap(), without.digest().unwrap());
    let mut bad = body.clone();
    bad.claims.insert("bad name".into(), "x".into());
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .contains("claim 'bad name' is not a valid claim name")
    );
}
