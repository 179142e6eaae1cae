//! What a rule can trust, through the real broker: labels come from the principal's
//! configuration or a service within its `vouches_for`, never from the agent; the agent's words
//! are claims; a principal bound to resources is refused outside them; a service submits only on
//! behalf of an agent and never reviews.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use countersign_test_support::broker::{
    EXAMPLE_POLICY, PRINCIPALS, Setup, TestBroker, error_message, token,
};
use countersign_test_support::principals::Principal;
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

/// The default principals, an agent bound to build hosts, and a PostgreSQL proxy that vouches
/// for production databases.
fn principals() -> Vec<Principal<'static>> {
    let mut all = PRINCIPALS.to_vec();
    all.push((
        "build-bot",
        "agent",
        "acts_for = [\"alice\"]\nresources = [\"host:build-*\"]",
    ));
    all.push((
        "pg-proxy",
        "service",
        "vouches_for = { resources = [\"db:prod/*\"], labels = [\"env\", \"data_class\"] }",
    ));
    all
}

async fn start() -> TestBroker {
    let principals = principals();
    Setup {
        policy: EXAMPLE_POLICY,
        principals: &principals,
        ..Setup::default()
    }
    .start()
    .await
}

/// `POST /v1/actions` as `service`, on behalf of the principal whose token is `agent_token`.
async fn submit_via(
    b: &TestBroker,
    service: &str,
    agent_token: &str,
    body: Value,
) -> (StatusCode, Value) {
    call_via_as(
        b,
        service,
        Method::POST,
        "/v1/actions",
        agent_token,
        Some(body),
    )
    .await
}

/// A call as pg-proxy on behalf of the principal whose token is `agent_token`.
async fn call_via(
    b: &TestBroker,
    method: Method,
    uri: &str,
    agent_token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    call_via_as(b, "pg-proxy", method, uri, agent_token, body).await
}

async fn call_via_as(
    b: &TestBroker,
    service: &str,
    method: Method,
    uri: &str,
    agent_token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {}", token(service)))
        .header("countersign-agent-token", agent_token)
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let response = b.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn terraform_apply(claims: Value) -> Value {
    json!({
        "kind": "shell.exec",
        "resource": "host:build-7",
        "claims": claims,
        "details": {"argv": ["terraform", "apply"], "program": "/usr/bin/terraform"}
    })
}

/// An export the example policy gates (sql-export).
fn select(resource: &str) -> Value {
    json!({
        "kind": "sql.statement",
        "resource": resource,
        "details": {"sql": "COPY customers TO '/tmp/customers.csv'"}
    })
}

#[tokio::test]
async fn an_agent_configured_for_production_claiming_staging_is_still_gated_and_the_disagreement_shows()
 {
    let b = start().await;
    let (status, body) = b
        .post(
            "deploy-bot",
            "/v1/actions",
            terraform_apply(json!({"env": "staging"})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["rules"], json!(["terraform-prod"]));
    let action = &body["request"]["action"];
    assert_eq!(action["labels"], json!({"env": "production"}));
    assert_eq!(action["claims"], json!({"env": "staging"}));

    let id = body["request"]["id"].as_str().unwrap();
    let (_, shown) = b.get("sam", &format!("/v1/requests/{id}")).await;
    assert_eq!(shown["action"]["claims"], json!({"env": "staging"}));
    let (_, audit) = b.get("sam", "/v1/audit").await;
    let overridden: Vec<&Value> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "action.claim_overridden")
        .collect();
    assert_eq!(overridden.len(), 1, "{audit}");
    assert_eq!(overridden[0]["request_id"], json!(id));
    assert_eq!(
        overridden[0]["data"]["disagreements"],
        json!([{"key": "env", "label": "production", "claim": "staging"}])
    );
}

#[tokio::test]
async fn an_agents_claim_never_satisfies_match_labels() {
    let b = start().await;
    // build-bot has no env label: claiming staging does not reach terraform-nonprod's allow.
    let (status, body) = b
        .post(
            "build-bot",
            "/v1/actions",
            terraform_apply(json!({"env": "staging"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["decision"], "deny");
    assert_eq!(body["rules"], json!([]));
    // No label contradicted, so no claim was overridden.
    let (_, audit) = b.get("sam", "/v1/audit").await;
    assert!(
        !audit["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "action.claim_overridden")
    );
}

#[tokio::test]
async fn an_agent_token_can_never_set_a_label() {
    let b = start().await;
    let mut body = terraform_apply(json!({}));
    body["labels"] = json!({"env": "staging"});
    let (status, answer) = b.post("deploy-bot", "/v1/actions", body).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(answer["error"]["code"], "labels_from_agent");
    assert_eq!(
        error_message(&answer),
        "label 'env' refused: labels are set by Countersign from its configuration; send them \
         as claims"
    );
}

#[tokio::test]
async fn a_principal_bound_to_build_hosts_is_refused_a_production_database() {
    let b = start().await;
    let (status, body) = b
        .post(
            "build-bot",
            "/v1/actions",
            json!({"kind": "shell.exec", "resource": "host:prod-db", "details": {"argv": ["ls"]}}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        error_message(&body),
        "build-bot is bound to the resources 'host:build-*' by the broker's configuration; \
         'host:prod-db' is none of them"
    );
    // Inside its binding the policy decides (here the example policy's default).
    let (_, body) = b
        .post(
            "build-bot",
            "/v1/actions",
            json!({"kind": "shell.exec", "resource": "host:build-3", "details": {"argv": ["ls"]}}),
        )
        .await;
    assert!(body.get("decision").is_some(), "{body}");

    let (_, me) = b.get("build-bot", "/v1/whoami").await;
    assert_eq!(me["resources"], json!(["host:build-*"]));
}

#[tokio::test]
async fn a_service_vouches_for_its_labels_and_resources_on_behalf_of_the_agent() {
    let b = start().await;
    let mut body = select("db:prod/customers");
    body["labels"] = json!({"data_class": "pii"});
    let (status, answer) = submit_via(&b, "pg-proxy", &token("deploy-bot"), body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let action = &answer["request"]["action"];
    // The requester is the agent, with its configured labels and the service's.
    assert_eq!(action["principal"]["id"], "deploy-bot");
    assert_eq!(action["principal"]["on_behalf_of"], json!(["alice"]));
    assert_eq!(action["principal"]["via"], "pg-proxy");
    assert_eq!(
        action["labels"],
        json!({"env": "production", "data_class": "pii"})
    );

    // The service follows the request as the agent: it sees it, and may withdraw it.
    let id = answer["request"]["id"].as_str().unwrap();
    let (status, _) = call_via(
        &b,
        Method::GET,
        &format!("/v1/requests/{id}"),
        &token("deploy-bot"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = b.get("pg-proxy", &format!("/v1/requests/{id}")).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "as itself it has no requests"
    );
    let (status, cancelled) = call_via(
        &b,
        Method::POST,
        &format!("/v1/requests/{id}/cancel"),
        &token("deploy-bot"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
}

#[tokio::test]
async fn a_service_cannot_vouch_for_a_label_or_resource_outside_its_list() {
    let b = start().await;
    let mut body = select("db:prod/customers");
    body["labels"] = json!({"team": "data"});
    let (status, answer) = submit_via(&b, "pg-proxy", &token("deploy-bot"), body).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        error_message(&answer),
        "pg-proxy may not vouch for the label 'team': its configuration lists data_class, env"
    );

    let (status, answer) =
        submit_via(&b, "pg-proxy", &token("deploy-bot"), select("db:staging/x")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        error_message(&answer),
        "pg-proxy may vouch only for the resources 'db:prod/*'; 'db:staging/x' is none of them"
    );

    // A service label contradicting the agent's configured one refuses the action.
    let mut body = select("db:prod/customers");
    body["labels"] = json!({"env": "staging"});
    let (status, answer) = submit_via(&b, "pg-proxy", &token("deploy-bot"), body).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let message = error_message(&answer);
    assert!(
        message.contains("'production' in deploy-bot's configuration")
            && message.contains("'staging' from pg-proxy"),
        "{message}"
    );
}

#[tokio::test]
async fn a_service_submits_only_on_behalf_of_a_known_agent() {
    let b = start().await;
    let (status, answer) = b
        .post("pg-proxy", "/v1/actions", select("db:prod/customers"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(error_message(&answer).contains("a service submits only on behalf of an agent"));

    let (status, answer) =
        submit_via(&b, "pg-proxy", "not-a-token", select("db:prod/customers")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");

    let (status, answer) = submit_via(
        &b,
        "pg-proxy",
        &token("pg-proxy"),
        select("db:prod/customers"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(error_message(&answer).contains("never of another service"));

    // An agent cannot pass the header: it would submit as another agent.
    let (status, answer) = submit_via(
        &b,
        "deploy-bot",
        &token("nightly-bot"),
        select("db:prod/customers"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(error_message(&answer).contains("only a service principal"));
}

#[tokio::test]
async fn a_service_cannot_review() {
    let b = start().await;
    let (status, body) = b
        .post("deploy-bot", "/v1/actions", terraform_apply(json!({})))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["request"]["id"].as_str().unwrap();
    let (status, answer) = b
        .post(
            "pg-proxy",
            &format!("/v1/requests/{id}/reviews"),
            json!({"verdict": "approve"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(answer["error"]["code"], "agent_reviewer");
    assert_eq!(
        error_message(&answer),
        "pg-proxy is a service; only humans review requests"
    );
}

#[tokio::test]
async fn a_reported_decision_carries_the_configured_labels_only() {
    let b = start().await;
    let reported = |labels: Value, resource: &str| {
        json!({"events": [{"type": "action.allowed", "explanation": "local decision", "data": {
            "action": {"kind": "mcp.tool_call", "resource": resource, "labels": labels}
        }}]})
    };
    // What a local gate reports: deploy-bot's configured labels.
    let (status, body) = b
        .post(
            "deploy-bot",
            "/v1/audit/events",
            reported(json!({"env": "production"}), "mcp:github/get_file"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Labels the configuration does not give are the agent's own: refused as a malformed event
    // (which a gate sets aside, where a 403 would have it retry for ever).
    let (status, body) = b
        .post(
            "deploy-bot",
            "/v1/audit/events",
            reported(json!({"env": "staging"}), "mcp:github/get_file"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error_message(&body).contains("are not deploy-bot's configured labels"),
        "{body}"
    );
    // Outside the principal's bindings: refused, naming them.
    let (status, body) = b
        .post(
            "build-bot",
            "/v1/audit/events",
            reported(json!({}), "host:prod-db"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error_message(&body).starts_with("events[0]: build-bot is bound to the resources"),
        "{body}"
    );
}

/// What a proxy reports of its local decisions is checked as what it submits: on behalf of an
/// agent, the labels it adds must be its own to vouch for and the agent's configured labels stay;
/// on its own, the resource must be one it enforces.
#[tokio::test]
async fn a_service_reports_only_what_it_may_vouch_for() {
    let b = start().await;
    let reported = |labels: Value, resource: &str| {
        json!({"events": [{"type": "action.allowed", "explanation": "local decision", "data": {
            "action": {"kind": "sql.statement", "resource": resource, "labels": labels}
        }}]})
    };
    let agent = token("deploy-bot");
    let (status, body) = call_via(
        &b,
        Method::POST,
        "/v1/audit/events",
        &agent,
        Some(reported(
            json!({"env": "production", "data_class": "pii"}),
            "db:prod/customers",
        )),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A label the proxy may vouch for, but the agent's configured label left out.
    let (status, body) = call_via(
        &b,
        Method::POST,
        "/v1/audit/events",
        &agent,
        Some(reported(json!({"data_class": "pii"}), "db:prod/customers")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // A label outside its list.
    let (status, body) = call_via(
        &b,
        Method::POST,
        "/v1/audit/events",
        &agent,
        Some(reported(
            json!({"env": "production", "tier": "gold"}),
            "db:prod/customers",
        )),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        error_message(&body).contains("may not vouch for the label 'tier'"),
        "{body}"
    );
    // On its own, a resource it does not enforce.
    let (status, body) = b
        .post(
            "pg-proxy",
            "/v1/audit/events",
            reported(json!({"env": "production"}), "host:prod-db"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        error_message(&body).contains("may not vouch for the resource 'host:prod-db'"),
        "{body}"
    );
}
