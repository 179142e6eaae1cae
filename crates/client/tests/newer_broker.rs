//! A client built from this tree against a newer broker: fields the broker adds, at the top of an
//! answer or deep inside it (the action, its chain, reviews, progress, the grant, audit events),
//! are ignored rather than refused, and an error code it does not know still reaches the caller.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

// Shared with client.rs, which uses the helpers this file does not.
#[allow(dead_code)]
use countersign_test_support::fake_broker;

use countersign_audit::{Checkpoint, EventDraft, seal};
use countersign_client::{
    ActionRequest, Client, ClientError, EvaluateResponse, ReadCode, RequestState,
};
use countersign_model::{RequestId, SecretKey, Timestamp};
use fake_broker::{FakeBroker, REQUEST_ID, Reply, request_view};
use serde_json::{Value, json};

/// `request_view` as a newer broker might send it: one unknown field in every object.
fn newer_view() -> Value {
    let mut view = request_view("approved");
    view["a_new_top_level_field"] = json!("ignored");
    view["action"]["risk_score"] = json!(7);
    view["action"]["principal"]["tenant"] = json!("acme");
    view["requirements"][0]["quorum_kind"] = json!("simple");
    view["progress"][0]["abstained_by"] = json!([]);
    view["reviews"][0]["device"] = json!({"os": "linux"});
    view["grant"] = json!({
        "token": "csg1.abc",
        "expires_at": "2026-11-21T16:20:00.000Z",
        "scope": "once"
    });
    view
}

#[tokio::test]
async fn a_view_with_fields_this_client_does_not_know_is_read() {
    let broker = FakeBroker::start(|seen| match seen.target.as_str() {
        "/v1/actions" => Reply::json(
            202,
            json!({
                "decision": "require_approval",
                "rules": ["prod-db-export"],
                "explanation": "needs two approvals",
                "digest": format!("sha256:{}", "ab".repeat(32)),
                "request": newer_view(),
                "queue_position": 3
            }),
        ),
        _ => Reply::json(200, newer_view()),
    })
    .await;
    let client = Client::new(&broker.url, "agent-token").unwrap();
    let id: RequestId = REQUEST_ID.parse().unwrap();

    let view = client.get_request(id).await.unwrap();
    assert_eq!(view.state, RequestState::Approved);
    assert_eq!(view.action.resource, "db:prod/customers");
    assert_eq!(view.action.principal.on_behalf_of, ["alice"]);
    assert_eq!(view.requirements[0].count, 2);
    assert_eq!(view.progress[0].approved_by, ["dana"]);
    assert_eq!(view.reviews[0].reviewer, "dana");
    assert_eq!(view.grant.unwrap().token, "csg1.abc");

    let action = ActionRequest::new("shell.exec", "db:prod/customers");
    let EvaluateResponse::RequireApproval(gated) = client.evaluate(&action, None).await.unwrap()
    else {
        panic!("expected a gated action");
    };
    assert_eq!(gated.request.id, id);
}

#[tokio::test]
async fn audit_events_and_checkpoints_with_new_fields_are_read() {
    let key = SecretKey::from_seed([7; 32]);
    let event = seal(
        EventDraft::new(Timestamp::from_unix_millis(0), "request.created", "opened"),
        None,
    )
    .unwrap();
    let checkpoint = Checkpoint::sign(1, event.hash, Timestamp::from_unix_millis(1), &key).unwrap();
    let mut event_json = serde_json::to_value(&event).unwrap();
    event_json["region"] = json!("eu");
    let mut checkpoint_json = serde_json::to_value(&checkpoint).unwrap();
    checkpoint_json["algorithm"] = json!("ed25519");
    let broker = FakeBroker::start(move |_| {
        Reply::json(
            200,
            json!({"events": [event_json], "checkpoints": [checkpoint_json], "next": 2}),
        )
    })
    .await;
    let client = Client::new(&broker.url, "human-token").unwrap();
    let page = client.audit(0, Some(10)).await.unwrap();
    // What the audit crate verifies is what the broker sealed, the unknown field left out.
    assert_eq!(page.events, [event]);
    assert_eq!(page.checkpoints, [checkpoint]);
}

#[tokio::test]
async fn an_error_code_this_client_does_not_know_still_reaches_the_caller() {
    let broker = FakeBroker::start(|_| {
        Reply::json(
            429,
            json!({"error": {"code": "rate_limited", "message": "slow down", "retry_in": 3}}),
        )
    })
    .await;
    let client = Client::new(&broker.url, "agent-token").unwrap();
    let error = client
        .get_request(REQUEST_ID.parse().unwrap())
        .await
        .unwrap_err();
    let ClientError::Api { code, message, .. } = &error else {
        panic!("expected the broker's refusal, got {error:?}");
    };
    assert_eq!(code, &ReadCode::Other("rate_limited".into()));
    assert_eq!(message, "slow down");
    assert_eq!(error.code(), Some("rate_limited"));
}
