//! Who is in a request's delegation chain, and who may report what about it: the configuration
//! decides both, never the agent (the humans it acts for, who started it, whose events it sends).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

use countersign_test_support::broker as harness;

use axum::http::StatusCode;
use countersign_broker::Config;
use harness::{TestBroker, error_message, pg_dump, start};
use serde_json::{Value, json};

fn with(mut action: Value, field: &str, value: Value) -> Value {
    action[field] = value;
    action
}

async fn open(b: &TestBroker, who: &str, action: Value) -> String {
    let (status, body) = b.post(who, "/v1/actions", action).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    body["request"]["id"].as_str().unwrap().to_owned()
}

async fn review(b: &TestBroker, who: &str, id: &str, verdict: &str) -> (StatusCode, Value) {
    b.post(
        who,
        &format!("/v1/requests/{id}/reviews"),
        json!({ "verdict": verdict }),
    )
    .await
}

async fn requests_opened(b: &TestBroker) -> usize {
    let (_, body) = b.get("sam", "/v1/requests").await;
    body["requests"].as_array().unwrap().len()
}

#[tokio::test]
async fn an_agent_cannot_leave_the_human_it_acts_for_out_of_its_chain() {
    let b = start().await;
    let (status, body) = b
        .post(
            "deploy-bot",
            "/v1/actions",
            with(pg_dump(), "on_behalf_of", json!([])),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden")),
        "{body}"
    );
    assert!(
        error_message(&body).starts_with("on_behalf_of leaves out alice"),
        "{body}"
    );
    assert_eq!(requests_opened(&b).await, 0, "nothing may be opened");

    // Naming the configured humans is accepted, and they stay in the chain: alice cannot approve.
    let id = open(
        &b,
        "deploy-bot",
        with(pg_dump(), "on_behalf_of", json!(["alice"])),
    )
    .await;
    let (_, shown) = b.get("sam", &format!("/v1/requests/{id}")).await;
    assert_eq!(
        shown["action"]["principal"]["on_behalf_of"],
        json!(["alice"])
    );
    let (status, body) = review(&b, "alice", &id, "approve").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("self_approval")),
        "{body}"
    );
}

#[tokio::test]
async fn an_agent_cannot_name_who_started_it() {
    let b = start().await;
    // deploy-bot names dana, whose denial would then be refused as her own request's.
    let (status, body) = b
        .post(
            "deploy-bot",
            "/v1/actions",
            with(pg_dump(), "started_by", json!("dana")),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let message = error_message(&body);
    assert!(
        message.starts_with("started_by 'dana' cannot be accepted"),
        "{body}"
    );
    assert!(message.contains("omit started_by"), "{body}");
    // nightly-bot is started by sam, by configuration: naming anyone else is refused…
    let (status, body) = b
        .post(
            "nightly-bot",
            "/v1/actions",
            with(pg_dump(), "started_by", json!("dana")),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        error_message(&body).contains("the configuration says sam does"),
        "{body}"
    );
    assert_eq!(requests_opened(&b).await, 0, "nothing may be opened");

    // …and saying nothing puts sam in the chain all the same: he cannot review, dana can.
    let id = open(&b, "nightly-bot", pg_dump()).await;
    let (_, shown) = b.get("sam", &format!("/v1/requests/{id}")).await;
    assert_eq!(shown["action"]["principal"]["started_by"], "sam");
    let (status, body) = review(&b, "sam", &id, "approve").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("self_approval")),
        "{body}"
    );
    assert!(
        error_message(&body).contains("sam is who started the requester"),
        "{body}"
    );
    let (status, body) = review(&b, "dana", &id, "deny").await;
    assert_eq!(
        (status, body["state"].as_str()),
        (StatusCode::OK, Some("denied"))
    );
    // Naming the configured starter is accepted.
    open(
        &b,
        "nightly-bot",
        with(pg_dump(), "started_by", json!("sam")),
    )
    .await;
    let (_, me) = b.get("nightly-bot", "/v1/whoami").await;
    assert_eq!(me["started_by"], "sam");
}

#[test]
fn the_configuration_names_who_starts_an_agent_only_among_its_principals() {
    let base = harness::config_text();
    let add = |extra: &str| {
        format!(
            "{base}\n[[principals]]\n{extra}\ntoken_sha256 = \"{}\"\n",
            "ab".repeat(32)
        )
    };
    let errors = |text: String| Config::parse(&text).unwrap_err().to_string();
    assert!(
        errors(add(
            "id = \"x-bot\"\nkind = \"agent\"\nstarted_by = \"nobody\""
        ))
        .contains("principal 'x-bot': started_by names 'nobody', who is not in principals")
    );
    assert!(
        errors(add(
            "id = \"x-bot\"\nkind = \"agent\"\nstarted_by = \"x-bot\""
        ))
        .contains("principal 'x-bot': started_by names itself")
    );
    assert!(
        errors(add("id = \"bob\"\nkind = \"human\"\nstarted_by = \"sam\""))
            .contains("started_by is only for agents")
    );
    let config = Config::parse(&add(
        "id = \"x-bot\"\nkind = \"agent\"\nstarted_by = \"deploy-bot\"",
    ))
    .unwrap();
    let bot = config.principals.iter().find(|p| p.id == "x-bot").unwrap();
    assert_eq!(bot.started_by.as_deref(), Some("deploy-bot"));
}

fn outcome(request: &str) -> Value {
    json!({"events": [{"type": "action.outcome", "request_id": request, "explanation": "it ran", "data": {"status": "ran"}}]})
}

async fn outcomes_recorded(b: &TestBroker) -> Vec<Value> {
    let (_, log) = b.get("sam", "/v1/audit").await;
    log["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "action.outcome")
        .cloned()
        .collect()
}

#[tokio::test]
async fn an_outcome_is_reported_only_by_the_requester_once_its_action_may_have_run() {
    let b = start().await;
    let id = open(&b, "deploy-bot", pg_dump()).await;

    // Another agent, for deploy-bot's request.
    let (status, body) = b
        .post("nightly-bot", "/v1/audit/events", outcome(&id))
        .await;
    // As everywhere in the API, another agent's request does not exist for it: the answer names
    // neither the requester nor whether the request is there.
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(
        error_message(&body).contains(&format!("request {id} does not exist"))
            && !error_message(&body).contains("deploy-bot"),
        "{body}"
    );
    // A human may see it, and still does not report what ran.
    let (status, body) = b.post("dana", "/v1/audit/events", outcome(&id)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        error_message(&body).contains(&format!(
            "only the requester (deploy-bot) records the outcome of request {id}"
        )),
        "{body}"
    );
    // A request that does not exist.
    let nowhere = "r_00000000000000000000000000000000";
    let (status, body) = b
        .post("deploy-bot", "/v1/audit/events", outcome(nowhere))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(
        error_message(&body).contains(&format!("request {nowhere} does not exist")),
        "{body}"
    );
    // An outcome without a request, and a local decision claiming one.
    let (status, body) = b
        .post(
            "deploy-bot",
            "/v1/audit/events",
            json!({"events": [{"type": "action.outcome", "explanation": "ran"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = b
        .post("deploy-bot", "/v1/audit/events", json!({"events": [{"type": "action.allowed", "request_id": id, "explanation": "allowed"}]}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Another principal's action, reported as a local decision.
    let (status, body) = b
        .post("deploy-bot", "/v1/audit/events", json!({"events": [{"type": "action.allowed", "explanation": "allowed", "data": {"action": {"principal": {"id": "nightly-bot"}}}}]}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        error_message(&body).contains("data.action.principal.id is \"nightly-bot\""),
        "{body}"
    );

    // The requester's own request, whose grant was never used: nothing ran.
    let (status, body) = b.post("deploy-bot", "/v1/audit/events", outcome(&id)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("not_run")),
        "{body}"
    );
    assert!(error_message(&body).contains("was never used"), "{body}");
    review(&b, "dana", &id, "approve").await;
    review(&b, "sam", &id, "approve").await;
    let (status, body) = b
        .post(
            "deploy-bot",
            &format!("/v1/requests/{id}/outcome"),
            json!({"status": "ran"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("not_run")),
        "approved is not run: {body}"
    );
    assert!(outcomes_recorded(&b).await.is_empty());

    let (_, waited) = b
        .get("deploy-bot", &format!("/v1/requests/{id}/wait?timeout=1s"))
        .await;
    let (status, _) = b
        .post(
            "deploy-bot",
            "/v1/grants/consume",
            json!({"token": waited["grant"]["token"], "digest": waited["digest"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = b.post("deploy-bot", "/v1/audit/events", outcome(&id)).await;
    assert_eq!(
        (status, body["appended"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{body}"
    );
    let (status, body) = b
        .post("nightly-bot", "/v1/audit/events", outcome(&id))
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "still not nightly-bot's: {body}"
    );
    let recorded = outcomes_recorded(&b).await;
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0]["principal"], "deploy-bot");
}

#[tokio::test]
async fn one_reporters_event_id_never_hides_another_reporters_event() {
    let b = start().await;
    let event = |explanation: &str| json!({"events": [{"type": "action.allowed", "explanation": explanation, "data": {"event_id": "proxy-1-0"}}]});
    let (_, body) = b
        .post("deploy-bot", "/v1/audit/events", event("deploy-bot's call"))
        .await;
    assert_eq!(body, json!({"appended": 1, "already_recorded": 0}));
    let (_, body) = b
        .post(
            "nightly-bot",
            "/v1/audit/events",
            event("nightly-bot's call"),
        )
        .await;
    assert_eq!(body, json!({"appended": 1, "already_recorded": 0}));
    // Each reporter's own batch sent again is still recorded once.
    let (_, body) = b
        .post(
            "nightly-bot",
            "/v1/audit/events",
            event("nightly-bot's call"),
        )
        .await;
    assert_eq!(body, json!({"appended": 0, "already_recorded": 1}));
    let (_, log) = b.get("sam", "/v1/audit").await;
    // Each event carries no action, so the broker cannot check it against the policy: each is
    // followed by its alert, recorded once with it.
    let reporters: Vec<(&str, &str)> = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["principal"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        reporters,
        [
            ("action.allowed", "deploy-bot"),
            ("action.report_mismatch", "deploy-bot"),
            ("action.allowed", "nightly-bot"),
            ("action.report_mismatch", "nightly-bot"),
        ]
    );
}
