//! An approval lets its action run once, soon, and only while the policy in force agrees: it
//! expires (no grant is minted after that), and consuming its grant decides the action again.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

use countersign_test_support::broker as harness;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use harness::{TestBroker, error_message, start_with};
use serde_json::{Value, json};

/// One approval from sre lets a shell command run; `extra` adds to the rule.
fn policy(extra: &str) -> String {
    format!(
        r#"
        default = "deny"
        [[rules]]
        id = "shell-needs-sre"
        decision = "require_approval"
        reason = "Commands on hosts need an SRE's eye"
        match.kind = "shell.exec"
        {extra}
        "#
    )
}

fn command() -> Value {
    json!({"kind": "shell.exec", "resource": "host:web-1", "details": {"argv": ["systemctl", "restart", "web"]}})
}

/// Opens the request, has sam approve it, and returns the requester's view with its grant.
async fn approved(b: &TestBroker) -> Value {
    let (status, body) = b.post("deploy-bot", "/v1/actions", command()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["request"]["id"].as_str().unwrap().to_owned();
    let (_, body) = b
        .post(
            "sam",
            &format!("/v1/requests/{id}/reviews"),
            json!({"verdict": "approve"}),
        )
        .await;
    assert_eq!(body["state"], "approved", "{body}");
    let (_, waited) = b
        .get("deploy-bot", &format!("/v1/requests/{id}/wait?timeout=1s"))
        .await;
    assert!(waited["grant"]["token"].is_string(), "{waited}");
    waited
}

async fn consume(b: &TestBroker, view: &Value) -> (StatusCode, Value) {
    b.post(
        "deploy-bot",
        "/v1/grants/consume",
        json!({"token": view["grant"]["token"], "digest": view["digest"]}),
    )
    .await
}

async fn reload(b: &TestBroker, text: &str) {
    std::fs::write(&b.policy_file, text).unwrap();
    let (status, body) = b.post("sam", "/v1/admin/policy/reload", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn audit_types(b: &TestBroker) -> Vec<String> {
    let (_, log) = b.get("sam", "/v1/audit").await;
    log["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn consuming_a_grant_decides_the_action_again_with_the_policy_in_force() {
    let first = policy("approvers = { groups = [\"sre\"] }");
    let b = start_with(&first, |s| s).await;
    let view = approved(&b).await;

    // A reload that now asks for two approvals: the one given does not meet it.
    reload(&b, &policy("approvers = { groups = [\"sre\"], count = 2 }")).await;
    let (status, body) = consume(&b, &view).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("approval_outdated")),
        "{body}"
    );
    assert!(
        error_message(&body).contains("the policy in force now requires 2 approvals"),
        "{body}"
    );

    // A reload that denies the action: the deny wins over the approval.
    reload(&b, "default = \"deny\"\n").await;
    let (status, body) = consume(&b, &view).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("denied")),
        "{body}"
    );
    let message = error_message(&body);
    assert!(
        message.starts_with("the policy in force now denies this action (the policy's default)"),
        "{body}"
    );
    assert!(message.ends_with("it did not run"), "{body}");
    let types = audit_types(&b).await;
    assert_eq!(
        types.iter().filter(|t| *t == "grant.refused").count(),
        2,
        "{types:?}"
    );
    assert!(!types.iter().any(|t| t == "grant.consumed"), "{types:?}");
    let (_, log) = b.get("sam", "/v1/audit").await;
    let refused = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .rfind(|e| e["type"] == "grant.refused")
        .unwrap();
    assert_eq!(refused["principal"], "deploy-bot");
    assert_eq!(refused["data"]["decision"], "deny");

    // The policy the approval was given under, back in force: the approval stands again.
    reload(&b, &first).await;
    let (status, body) = consume(&b, &view).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn an_approval_expires_and_then_no_grant_is_minted() {
    let b = start_with(
        &policy("approvers = { groups = [\"sre\"] }\napproval_ttl = \"1s\""),
        |s| s,
    )
    .await;
    let view = approved(&b).await;
    let id = view["id"].as_str().unwrap().to_owned();
    let until = view["approval_expires_at"].as_str().unwrap().to_owned();
    assert!(
        view["grant"]["expires_at"].as_str().unwrap() <= until.as_str(),
        "a grant outlives its approval: {view}"
    );
    assert!(
        view["summary"]
            .as_str()
            .unwrap()
            .contains(&format!("The approval can be used until {until}")),
        "{view}"
    );

    // Once the approval has expired, asking again hands out nothing, and says why.
    let deadline = Instant::now() + Duration::from_secs(20);
    let later = loop {
        let (_, later) = b
            .get("deploy-bot", &format!("/v1/requests/{id}/wait?timeout=1s"))
            .await;
        if later["grant"].is_null() || Instant::now() > deadline {
            break later;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(later["grant"].is_null(), "a grant was handed out: {later}");
    assert_eq!(later["state"], "approved");
    assert!(
        later["summary"].as_str().unwrap().contains(&format!(
            "the approval of request {id} expired unused at {until}; ask for the action again"
        )),
        "{later}"
    );
    let (status, body) = consume(&b, &view).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("grant_invalid")),
        "{body}"
    );
    let types = audit_types(&b).await;
    assert_eq!(
        types.iter().filter(|t| *t == "grant.issued").count(),
        1,
        "{types:?}"
    );
}

#[tokio::test]
async fn a_policy_refuses_an_approval_lifetime_that_is_a_standing_permission() {
    let b = start_with(&policy("approvers = { groups = [\"sre\"] }"), |s| s).await;
    for ttl in ["0s", "2d"] {
        std::fs::write(
            &b.policy_file,
            policy(&format!(
                "approvers = {{ groups = [\"sre\"] }}\napproval_ttl = \"{ttl}\""
            )),
        )
        .unwrap();
        let (status, body) = b.post("sam", "/v1/admin/policy/reload", json!({})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{ttl}: {body}");
        assert!(error_message(&body).contains("approval_ttl"), "{body}");
    }
}
