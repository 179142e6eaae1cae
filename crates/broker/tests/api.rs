//! The HTTP API end to end through the router: decisions, the review rules, grants, waiting,
//! expiry, authentication, malformed input, policy reload and the audit trail.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

use countersign_test_support::broker as harness;

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use harness::{error_message, pg_dump, start, start_with};
use serde_json::{Value, json};

#[tokio::test]
async fn allowed_and_denied_actions_answer_with_rules_and_explanations() {
    let b = start().await;
    let (status, body) = b
        .post("deploy-bot", "/v1/actions", json!({"kind": "shell.exec", "resource": "host:web-1", "details": {"argv": ["ls", "-l"], "program": "/usr/bin/ls"}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["decision"], "allow");
    assert_eq!(body["rules"], json!(["read-only-shell"]));
    assert!(
        body["explanation"]
            .as_str()
            .unwrap()
            .starts_with("deploy-bot (agent), acting for alice, asked to run `ls -l`")
    );

    let (status, body) = b
        .post("deploy-bot", "/v1/actions", json!({"kind": "sql.statement", "resource": "db:prod/customers", "details": {"sql": "DROP DATABASE customers"}}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["decision"], "deny");
    assert_eq!(body["error"]["code"], "denied");
    assert_eq!(body["rules"], json!(["prod-drop-database"]));

    let (_, audit) = b.get("sam", "/v1/audit").await;
    let kinds: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["action.allowed", "action.denied"]);
}

#[tokio::test]
async fn a_gated_action_needs_two_eligible_humans_outside_the_chain() {
    let b = start().await;
    let (status, body) = b.post("deploy-bot", "/v1/actions", pg_dump()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let request = &body["request"];
    assert_eq!(request["state"], "pending");
    let id = request["id"].as_str().unwrap().to_owned();
    let reviews = format!("/v1/requests/{id}/reviews");

    let refusals = [
        (
            "alice",
            "self_approval",
            "alice cannot review this request: alice is the person the requester acts for",
        ),
        (
            "deploy-bot",
            "agent_reviewer",
            "deploy-bot is an agent; only humans review requests",
        ),
        (
            "eve",
            "not_eligible",
            "eve is not an eligible approver for this request",
        ),
    ];
    for (who, code, message) in refusals {
        let (status, body) = b.post(who, &reviews, json!({"verdict": "approve"})).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{who}: {body}");
        assert_eq!(body["error"]["code"], code);
        assert!(error_message(&body).starts_with(message), "{body}");
    }

    let (status, body) = b
        .post(
            "dana",
            &reviews,
            json!({"verdict": "approve", "comment": "checked the ticket"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["state"], "pending");
    assert_eq!(body["progress"][0]["approved_by"], json!(["dana"]));
    let (status, body) = b
        .post("dana", &reviews, json!({"verdict": "approve"}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("already_reviewed"))
    );

    let (status, body) = b.post("sam", &reviews, json!({"verdict": "approve"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["state"], "approved");
    assert!(
        body["grant"].is_null(),
        "a reviewer must not receive the grant"
    );

    let (status, late) = b.post("eve", &reviews, json!({"verdict": "deny"})).await;
    assert_eq!(
        (status, late["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("already_decided"))
    );

    // The requester gets a grant bound to the digest, and can use it exactly once.
    let (_, waited) = b
        .get("deploy-bot", &format!("/v1/requests/{id}/wait?timeout=1s"))
        .await;
    let grant = waited["grant"]["token"].as_str().unwrap().to_owned();
    let digest = waited["digest"].as_str().unwrap().to_owned();
    let other = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    let (status, body) = b
        .post(
            "deploy-bot",
            "/v1/grants/consume",
            json!({"token": grant, "digest": other}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("grant_invalid"))
    );
    let (status, body) = b
        .post(
            "sam",
            "/v1/grants/consume",
            json!({"token": grant, "digest": digest}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("grant_invalid")),
        "only the requester may use it"
    );
    let (status, _) = b
        .post(
            "deploy-bot",
            "/v1/grants/consume",
            json!({"token": grant, "digest": digest}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = b
        .post(
            "deploy-bot",
            "/v1/grants/consume",
            json!({"token": grant, "digest": digest}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("grant_used"))
    );
    // Once the approval is used, the requester is handed no grant at all.
    let (_, again) = b
        .get("deploy-bot", &format!("/v1/requests/{id}/wait?timeout=1s"))
        .await;
    assert!(again["grant"].is_null(), "{again}");

    let (status, _) = b
        .post(
            "deploy-bot",
            &format!("/v1/requests/{id}/outcome"),
            json!({"status": "ran", "exit_code": 0}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let (_, verified) = b.get("sam", "/v1/audit/verify").await;
    assert_eq!(verified["ok"], true, "{verified}");
    let (_, audit) = b.get("sam", "/v1/audit").await;
    let kinds: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "request.created",
            "review.refused",
            "review.refused",
            "review.refused",
            "review.approved",
            "review.refused",
            "review.approved",
            "request.approved",
            "grant.issued",
            "review.refused",
            "grant.consumed",
            "action.outcome"
        ]
    );
}

#[tokio::test]
async fn a_denial_ends_the_request_and_says_who_and_why() {
    let b = start().await;
    let (_, body) = b.post("deploy-bot", "/v1/actions", pg_dump()).await;
    let id = body["request"]["id"].as_str().unwrap().to_owned();
    let (_, denied) = b
        .post(
            "sam",
            &format!("/v1/requests/{id}/reviews"),
            json!({"verdict": "deny", "comment": "not during the freeze"}),
        )
        .await;
    assert_eq!(denied["state"], "denied");
    assert_eq!(denied["decided_by"], "sam");
    assert!(
        denied["summary"]
            .as_str()
            .unwrap()
            .starts_with("denied by sam: not during the freeze;")
    );
    let (_, waited) = b
        .get("deploy-bot", &format!("/v1/requests/{id}/wait?timeout=1s"))
        .await;
    assert!(waited["grant"].is_null());
}

#[tokio::test]
async fn a_waiting_client_wakes_the_moment_the_decision_lands() {
    let b = start().await;
    let (_, body) = b.post("deploy-bot", "/v1/actions", pg_dump()).await;
    let id = body["request"]["id"].as_str().unwrap().to_owned();
    let router = b.router.clone();
    let wait_uri = format!("/v1/requests/{id}/wait?timeout=30s");
    let waiter = tokio::spawn(async move {
        let request = axum::http::Request::get(wait_uri)
            .header(
                "authorization",
                format!("Bearer {}", harness::token("deploy-bot")),
            )
            .body(axum::body::Body::empty())
            .unwrap();
        let started = Instant::now();
        let response = tower::ServiceExt::oneshot(router, request).await.unwrap();
        let bytes = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        (
            started.elapsed(),
            serde_json::from_slice::<Value>(&bytes).unwrap(),
        )
    });
    let reviews = format!("/v1/requests/{id}/reviews");
    b.post("dana", &reviews, json!({"verdict": "approve"}))
        .await;
    b.post("sam", &reviews, json!({"verdict": "approve"})).await;
    let (elapsed, body) = waiter.await.unwrap();
    assert_eq!(body["state"], "approved");
    assert!(
        body["grant"]["token"]
            .as_str()
            .unwrap()
            .starts_with("csg1.")
    );
    assert!(
        elapsed < Duration::from_secs(25),
        "the waiter slept through the decision"
    );
}

#[tokio::test]
async fn a_request_nobody_answers_expires_and_is_never_called_denied() {
    let policy = r#"
        default = "deny"
        [[rules]]
        id = "quick"
        decision = "require_approval"
        reason = "Answer fast or not at all"
        match.kind = "shell.exec"
        approvers = { groups = ["sre"] }
        timeout = "1s"
    "#;
    let b = start_with(policy, |s| s).await;
    let (status, body) = b
        .post(
            "deploy-bot",
            "/v1/actions?wait=20s",
            json!({"kind": "shell.exec", "resource": "host:x", "details": {"argv": ["true"]}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let request = &body["request"];
    assert_eq!(request["state"], "expired", "{body}");
    assert!(
        request["summary"]
            .as_str()
            .unwrap()
            .contains("nobody approved in time")
    );
    assert!(request["decided_by"].is_null());
    let (_, audit) = b.get("sam", "/v1/audit").await;
    assert!(
        audit["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "request.expired")
    );
}

#[tokio::test]
async fn bad_credentials_and_malformed_input_are_refused_with_the_reason() {
    let b = start().await;
    let (status, body) = b.call(None, Method::GET, "/v1/whoami", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthenticated"))
    );
    let (status, _) = b.get("nobody", "/v1/whoami").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = b.get("deploy-bot", "/v1/whoami").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"id": "deploy-bot", "kind": "agent", "groups": [], "acts_for": ["alice"], "admin": false, "labels": {"env": "production"}})
    );

    let (status, body) = b
        .post(
            "deploy-bot",
            "/v1/actions",
            json!({"kind": "shell.exec", "resource": "x", "colour": "red"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error_message(&body).contains("unknown field `colour`"),
        "{body}"
    );
    let (status, body) = b
        .post(
            "deploy-bot",
            "/v1/actions",
            json!({"kind": "Shell", "resource": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_message(&body).contains("action kind 'Shell' is not a dotted name"));
    let (status, body) = b.get("sam", "/v1/requests/r_nope").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["error"]["message"],
        "'r_nope' is not a request id (expected r_ followed by 32 lowercase hex digits)"
    );
    let (status, _) = b
        .get("sam", "/v1/requests/r_00000000000000000000000000000000")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let huge =
        json!({"kind": "shell.exec", "resource": "x", "details": {"blob": "x".repeat(300 * 1024)}});
    let (status, body) = b.post("deploy-bot", "/v1/actions", huge).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("too_large"))
    );
    let (status, body) = b
        .post(
            "deploy-bot",
            "/v1/actions",
            json!({"kind": "shell.exec", "resource": "x", "on_behalf_of": ["sam"]}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body["error"]["message"],
        "deploy-bot may not act for sam: the configuration lets it act for alice"
    );
}

#[tokio::test]
async fn agents_cannot_touch_the_policy_or_read_the_audit_log() {
    let b = start().await;
    let (status, _) = b
        .post("deploy-bot", "/v1/admin/policy/reload", json!({}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = b.post("dana", "/v1/admin/policy/reload", json!({})).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "dana is human but not an admin"
    );
    let (status, _) = b.get("deploy-bot", "/v1/audit").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = b
        .post(
            "deploy-bot",
            "/v1/audit/events",
            json!({"events": [{"type": "policy.reloaded", "explanation": "forged"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_message(&body).contains("type 'policy.reloaded' cannot be reported"));
    let (status, body) = b
        .post("deploy-bot", "/v1/audit/events", json!({"events": [{"type": "action.allowed", "explanation": "local decision", "data": {"tool": "read_file"}}]}))
        .await;
    assert_eq!(
        (status, body["appended"].as_u64()),
        (StatusCode::OK, Some(1))
    );
}

#[tokio::test]
async fn a_batch_of_reported_events_sent_again_is_recorded_once() {
    let b = start().await;
    // A batch sent again after a crash: events with an id recorded before are not appended twice.
    let batch = json!({"events": [
        {"type": "action.allowed", "explanation": "first", "data": {"event_id": "proxy-7-0"}},
        {"type": "action.allowed", "explanation": "second", "data": {"event_id": "proxy-7-1"}},
    ]});
    let (_, body) = b
        .post("deploy-bot", "/v1/audit/events", batch.clone())
        .await;
    assert_eq!(body, json!({"appended": 2, "already_recorded": 0}));
    let (status, body) = b.post("deploy-bot", "/v1/audit/events", batch).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"appended": 0, "already_recorded": 2})
        )
    );
    // An allowed call's event holds its arguments, which may be larger than other bodies.
    let (status, body) = b
        .post(
            "deploy-bot",
            "/v1/audit/events",
            json!({"events": [{"type": "action.allowed", "explanation": "a large write", "data": {"content": "x".repeat(1024 * 1024)}}]}),
        )
        .await;
    assert_eq!(
        (status, body["appended"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{body}"
    );
    let (_, log) = b.get("sam", "/v1/audit").await;
    let firsts = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["explanation"] == "first")
        .count();
    assert_eq!(firsts, 1);
    let (status, body) = b
        .post("deploy-bot", "/v1/audit/events", json!({"events": [{"type": "action.allowed", "explanation": "x", "data": {"event_id": 7}}]}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error_message(&body).contains("events[0]: data.event_id must be a string"),
        "{body}"
    );
}

#[tokio::test]
async fn a_broken_policy_is_refused_and_the_old_one_stays_in_force() {
    let b = start().await;
    let before = b.broker.policy_hash();
    std::fs::write(&b.policy_file, "default = \"maybe\"\n").unwrap();
    let (status, body) = b.post("sam", "/v1/admin/policy/reload", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error_message(&body).contains("unknown decision 'maybe'"),
        "{body}"
    );
    assert_eq!(b.broker.policy_hash(), before);

    std::fs::write(&b.policy_file, "default = \"allow\"\n").unwrap();
    let (status, body) = b.post("sam", "/v1/admin/policy/reload", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(body["hash"], json!(before.to_string()));
    let (status, _) = b.post("deploy-bot", "/v1/actions", pg_dump()).await;
    assert_eq!(status, StatusCode::OK, "the new policy allows everything");
    let (_, audit) = b.get("sam", "/v1/audit").await;
    let kinds: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["policy.reload_refused", "policy.reloaded", "action.allowed"]
    );
}

#[tokio::test]
async fn the_openapi_document_covers_every_route_and_metrics_count_decisions() {
    let b = start().await;
    let (_, doc) = b.call(None, Method::GET, "/openapi.json", None).await;
    for path in [
        "/v1/actions",
        "/v1/requests",
        "/v1/requests/{id}",
        "/v1/requests/{id}/wait",
        "/v1/requests/{id}/reviews",
        "/v1/requests/{id}/cancel",
        "/v1/requests/{id}/outcome",
        "/v1/grants/consume",
        "/v1/policy",
        "/v1/whoami",
        "/v1/admin/policy/reload",
        "/v1/audit",
        "/v1/audit/events",
        "/v1/audit/verify",
        "/v1/audit/export",
        "/v1/audit/key",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} is missing from /openapi.json"
        );
    }
    b.post("deploy-bot", "/v1/actions", pg_dump()).await;
    let (_, metrics) = b.call(None, Method::GET, "/metrics", None).await;
    let metrics = metrics.as_str().unwrap();
    assert!(
        metrics.contains("countersign_decisions_total{outcome=\"require_approval\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("countersign_requests_pending 1"));
}
