//! The client against a scripted broker: what each call sends, how each answer is read, and how
//! each kind of failure is reported.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

use countersign_test_support::fake_broker;

use std::time::Duration;

use countersign_audit::{Checkpoint, EventDraft, render_export, seal};
use countersign_client::{
    ActionRequest, AuditVerification, Client, ClientError, EvaluateResponse, OutcomeStatus,
    ReportedEvent, ReportedEventType, RequestState, Verdict,
};
use countersign_model::{Action, Chain, PrincipalKind, RequestId, SecretKey, Timestamp};
use fake_broker::{FakeBroker, REQUEST_ID, Reply, request_view};
use serde_json::json;

fn id() -> RequestId {
    REQUEST_ID.parse().unwrap()
}

fn pg_dump() -> ActionRequest {
    let mut action = ActionRequest::new("shell.exec", "db:prod/customers");
    action.labels.insert("env".into(), "production".into());
    action.details = json!({"argv": ["pg_dump", "customers"], "cwd": "/srv"});
    action.justification = Some("nightly export".into());
    action
}

async fn client_for(broker: &FakeBroker) -> Client {
    Client::new(&broker.url, "agent-token").unwrap()
}

#[tokio::test]
async fn evaluate_sends_the_action_and_reads_an_allow() {
    let digest = pg_dump().digest().unwrap();
    let broker = FakeBroker::start(move |_| {
        Reply::json(
            200,
            json!({"decision": "allow", "rules": ["r1"], "explanation": "fine", "digest": digest}),
        )
    })
    .await;
    let answer = client_for(&broker)
        .await
        .evaluate(&pg_dump(), None)
        .await
        .unwrap();
    let EvaluateResponse::Allow(allowed) = &answer else {
        panic!("{answer:?}")
    };
    assert_eq!(allowed.rules, ["r1"]);
    assert_eq!(answer.digest(), digest);

    let call = broker.only_call();
    assert_eq!(call.method, "POST");
    assert_eq!(call.target, "/v1/actions");
    assert_eq!(call.header("authorization"), Some("Bearer agent-token"));
    assert_eq!(call.header("content-type"), Some("application/json"));
    assert_eq!(
        call.json(),
        json!({
            "kind": "shell.exec", "resource": "db:prod/customers",
            "labels": {"env": "production"},
            "details": {"argv": ["pg_dump", "customers"], "cwd": "/srv"},
            "justification": "nightly export"
        })
    );
}

#[tokio::test]
async fn a_policy_denial_is_an_answer_not_an_error() {
    let broker = FakeBroker::start(|_| {
        Reply::json(
            403,
            json!({
                "decision": "deny", "rules": ["no-drop"], "explanation": "Rule no-drop denies it.",
                "digest": format!("sha256:{}", "ab".repeat(32)),
                "error": {"code": "denied", "message": "Rule no-drop denies it."}
            }),
        )
    })
    .await;
    let answer = client_for(&broker)
        .await
        .evaluate(&pg_dump(), None)
        .await
        .unwrap();
    let EvaluateResponse::Deny(denied) = answer else {
        panic!("{answer:?}")
    };
    assert_eq!(denied.rules, ["no-drop"]);
    assert_eq!(denied.error.unwrap().code, "denied");
}

#[tokio::test]
async fn a_gated_action_returns_its_request_and_the_wait_is_capped() {
    let broker = FakeBroker::start(|_| {
        Reply::json(
            202,
            json!({
                "decision": "require_approval", "rules": ["prod-db-export"], "explanation": "…",
                "digest": format!("sha256:{}", "cd".repeat(32)),
                "request": request_view("pending")
            }),
        )
    })
    .await;
    let client = client_for(&broker).await;
    let answer = client
        .evaluate(&pg_dump(), Some(Duration::from_secs(600)))
        .await
        .unwrap();
    let EvaluateResponse::RequireApproval(gated) = answer else {
        panic!("{answer:?}")
    };
    let request = gated.request;
    assert_eq!(request.id, id());
    assert_eq!(request.state, RequestState::Pending);
    assert_eq!(request.action.principal.on_behalf_of, ["alice"]);
    assert_eq!(request.requirements[0].groups, ["dba", "sre"]);
    assert_eq!(request.progress[0].approved_by, ["dana"]);
    assert_eq!(request.reviews[0].verdict, Verdict::Approve);
    assert_eq!(request.reviews[0].channel, "cli");
    assert!(request.grant.is_none());
    assert_eq!(broker.only_call().target, "/v1/actions?wait=60s");
}

#[tokio::test]
async fn request_calls_use_the_documented_paths_and_bodies() {
    let broker = FakeBroker::start(|seen| match seen.target.as_str() {
        t if t.starts_with("/v1/requests?") => {
            Reply::json(200, json!({"requests": [request_view("pending")]}))
        }
        t if t.ends_with("/outcome") => Reply::json(200, json!({"recorded": true})),
        "/v1/grants/consume" => Reply::json(200, json!({"consumed": true, "request": REQUEST_ID})),
        _ => Reply::json(200, request_view("approved")),
    })
    .await;
    let client = client_for(&broker).await;
    let digest = pg_dump().digest().unwrap();

    let listed = client
        .list_requests(Some(RequestState::Pending), Some(20))
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    client.get_request(id()).await.unwrap();
    client
        .wait(id(), Duration::from_millis(2500))
        .await
        .unwrap();
    client
        .review(id(), Verdict::Deny, Some("not during the freeze"))
        .await
        .unwrap();
    client.review(id(), Verdict::Approve, None).await.unwrap();
    client.cancel(id()).await.unwrap();
    let consumed = client.consume_grant("csg1.abc", digest).await.unwrap();
    assert!(consumed.consumed);
    assert_eq!(consumed.request, id());
    client
        .record_outcome(id(), OutcomeStatus::Ran, Some(0), Some("exited 0"))
        .await
        .unwrap();

    let calls: Vec<(String, String, String)> = broker
        .seen()
        .into_iter()
        .map(|s| (s.method, s.target, s.body))
        .collect();
    let r = REQUEST_ID;
    let expected = [
        ("GET", "/v1/requests?state=pending&limit=20".to_owned(), ""),
        ("GET", format!("/v1/requests/{r}"), ""),
        ("GET", format!("/v1/requests/{r}/wait?timeout=3s"), ""),
        (
            "POST",
            format!("/v1/requests/{r}/reviews"),
            r#"{"verdict":"deny","comment":"not during the freeze"}"#,
        ),
        (
            "POST",
            format!("/v1/requests/{r}/reviews"),
            r#"{"verdict":"approve"}"#,
        ),
        ("POST", format!("/v1/requests/{r}/cancel"), "{}"),
        ("POST", "/v1/grants/consume".to_owned(), ""),
        (
            "POST",
            format!("/v1/requests/{r}/outcome"),
            r#"{"status":"ran","exit_code":0,"summary":"exited 0"}"#,
        ),
    ];
    assert_eq!(calls.len(), expected.len());
    for (call, (method, target, body)) in calls.iter().zip(expected) {
        assert_eq!(call.0, method);
        assert_eq!(call.1, target);
        if target == "/v1/grants/consume" {
            let sent: serde_json::Value = serde_json::from_str(&call.2).unwrap();
            assert_eq!(sent, json!({"token": "csg1.abc", "digest": digest}));
        } else {
            assert_eq!(call.2, body);
        }
    }
}

#[tokio::test]
async fn system_and_audit_calls_read_their_answers() {
    let key = SecretKey::from_seed([7; 32]);
    let public = key.public_key();
    let event = seal(
        EventDraft::new(Timestamp::from_unix_millis(0), "request.created", "opened"),
        None,
    )
    .unwrap();
    let checkpoint = Checkpoint::sign(1, event.hash, Timestamp::from_unix_millis(1), &key).unwrap();
    let export = render_export(
        std::slice::from_ref(&event),
        std::slice::from_ref(&checkpoint),
    )
    .unwrap();
    let (event_json, checkpoint_json) = (
        serde_json::to_value(&event).unwrap(),
        serde_json::to_value(&checkpoint).unwrap(),
    );
    let head_hash = event.hash;
    let exported = export.clone();
    let broker = FakeBroker::start(move |seen| match seen.target.as_str() {
        "/healthz" => Reply::json(200, json!({"ok": true})),
        "/v1/whoami" => Reply::json(
            200,
            json!({"id": "dana", "kind": "human", "groups": ["dba"], "acts_for": [], "admin": true}),
        ),
        "/v1/policy" => Reply::json(
            200,
            json!({"hash": format!("sha256:{}", "12".repeat(32)), "text": "default = \"deny\"\n"}),
        ),
        "/v1/admin/policy/reload" => {
            Reply::json(200, json!({"hash": format!("sha256:{}", "34".repeat(32))}))
        }
        "/v1/audit/events" => Reply::json(200, json!({"appended": 1})),
        "/v1/audit?after=0&limit=10" => Reply::json(
            200,
            json!({"events": [event_json], "checkpoints": [checkpoint_json]}),
        ),
        "/v1/audit/verify" => Reply::json(
            200,
            json!({"ok": true, "events": 1, "head": {"seq": 1, "hash": head_hash}, "checkpoints": 1}),
        ),
        "/v1/audit/export" => Reply::text(200, "application/x-ndjson", &exported),
        "/v1/audit/key" => Reply::json(200, json!({"public_key": public})),
        other => Reply::json(404, json!({"error": {"code": "not_found", "message": other}})),
    })
    .await;
    let client = client_for(&broker).await;

    assert!(client.healthz().await.unwrap().ok);
    let me = client.whoami().await.unwrap();
    assert_eq!(
        (me.id.as_str(), me.kind, me.admin),
        ("dana", PrincipalKind::Human, true)
    );
    assert_eq!(client.policy().await.unwrap().text, "default = \"deny\"\n");
    client.reload_policy().await.unwrap();
    let reported = ReportedEvent {
        kind: ReportedEventType::ActionOutcome,
        request_id: None,
        data: json!({"exit_code": 0}),
        explanation: "it ran".into(),
    };
    assert_eq!(client.append_audit(&[reported]).await.unwrap(), 1);
    let page = client.audit(0, Some(10)).await.unwrap();
    assert_eq!(
        (page.events, page.checkpoints),
        (vec![event], vec![checkpoint])
    );
    let verification = client.audit_verify().await.unwrap();
    assert!(verification.is_intact());
    assert_eq!(client.audit_export().await.unwrap(), export);
    assert_eq!(client.audit_key().await.unwrap(), public);

    let calls = broker.seen();
    assert_eq!(calls[0].header("authorization"), None, "healthz is public");
    assert!(
        calls[1..]
            .iter()
            .all(|c| c.header("authorization").is_some())
    );
    let appended = calls
        .iter()
        .find(|c| c.target == "/v1/audit/events")
        .unwrap();
    assert_eq!(
        appended.json(),
        json!({"events": [{"type": "action.outcome", "data": {"exit_code": 0}, "explanation": "it ran"}]})
    );
}

#[tokio::test]
async fn a_broken_log_is_an_answer_with_its_sentence() {
    let broker = FakeBroker::start(|_| {
        Reply::json(
            200,
            json!({"ok": false, "error": "event 17 was changed after it was written", "seq": 17}),
        )
    })
    .await;
    let verification = client_for(&broker).await.audit_verify().await.unwrap();
    assert_eq!(
        verification,
        AuditVerification::Broken {
            error: "event 17 was changed after it was written".into(),
            seq: Some(17)
        }
    );
}

#[tokio::test]
async fn a_refusal_carries_the_brokers_code_and_sentence_verbatim() {
    let message = "alice cannot review this request: alice is the person the requester acts for, and nobody approves their own request";
    let broker = FakeBroker::start(move |_| {
        Reply::json(
            403,
            json!({"error": {"code": "self_approval", "message": message}}),
        )
    })
    .await;
    let error = client_for(&broker)
        .await
        .review(id(), Verdict::Approve, None)
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(403));
    assert_eq!(error.code(), Some("self_approval"));
    assert!(!error.is_unavailable());
    let ClientError::Api { message: got, .. } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(got, message);
    assert_eq!(
        error.to_string(),
        format!("{message} (HTTP 403, self_approval)")
    );
}

#[tokio::test]
async fn a_refused_token_says_to_check_the_token() {
    let broker = FakeBroker::start(|_| {
        Reply::json(
            401,
            json!({"error": {"code": "unauthenticated", "message": "unknown token"}}),
        )
    })
    .await;
    let error = client_for(&broker).await.whoami().await.unwrap_err();
    assert!(
        matches!(error, ClientError::Unauthenticated { .. }),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(text.contains("unknown token"), "{text}");
    assert!(text.contains("COUNTERSIGN_TOKEN"), "{text}");
    assert!(text.contains(&broker.url), "{text}");
}

#[tokio::test]
async fn a_store_outage_is_unavailable() {
    let broker = FakeBroker::start(|_| {
        Reply::json(
            503,
            json!({"error": {"code": "unavailable", "message": "Countersign cannot record this right now"}}),
        )
    })
    .await;
    let error = client_for(&broker)
        .await
        .evaluate(&pg_dump(), None)
        .await
        .unwrap_err();
    assert!(error.is_unavailable(), "{error:?}");
    assert_eq!(error.code(), Some("unavailable"));
}

#[tokio::test]
async fn an_answer_that_is_not_the_apis_is_malformed() {
    let broker = FakeBroker::start(|seen| match seen.target.as_str() {
        "/v1/whoami" => Reply::text(200, "text/html", "<html>hello</html>"),
        "/v1/policy" => Reply::json(200, json!({"hash": "md5:1234", "text": ""})),
        _ => Reply::text(502, "text/html", "<h1>Bad Gateway</h1>"),
    })
    .await;
    let client = client_for(&broker).await;
    let error = client.whoami().await.unwrap_err();
    assert!(
        matches!(error, ClientError::MalformedResponse { status: 200, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("/v1/whoami"), "{error}");
    let error = client.policy().await.unwrap_err();
    assert!(error.to_string().contains("md5:1234"), "{error}");
    let error = client.get_request(id()).await.unwrap_err();
    assert!(error.to_string().contains("Bad Gateway"), "{error}");
    assert!(
        error.is_unavailable(),
        "a gateway error means the broker is down: {error:?}"
    );
}

#[tokio::test]
async fn an_unreachable_broker_names_the_url_and_the_setting() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = Client::new(&url, "t").unwrap();
    let error = client.evaluate(&pg_dump(), None).await.unwrap_err();
    assert!(error.is_unavailable(), "{error:?}");
    let text = error.to_string();
    assert!(text.contains(&format!("{url}/v1/actions")), "{text}");
    assert!(text.contains("connection refused"), "{text}");
    assert!(text.contains("COUNTERSIGN_SERVER"), "{text}");
}

#[tokio::test]
async fn a_server_address_with_a_path_prefixes_every_call() {
    let broker = FakeBroker::start(|_| Reply::json(200, request_view("pending"))).await;
    let client = Client::new(&format!("{}/countersign", broker.url), "t").unwrap();
    client.get_request(id()).await.unwrap();
    assert_eq!(
        broker.only_call().target,
        format!("/countersign/v1/requests/{REQUEST_ID}")
    );
    assert_eq!(
        client.request_link(id()),
        format!("{}/countersign/requests/{REQUEST_ID}", broker.url)
    );
}

#[test]
fn unusable_addresses_and_tokens_are_refused_with_the_reason() {
    let refused = |server: &str, token: &str| Client::new(server, token).unwrap_err().to_string();
    assert!(refused("ftp://example.com", "t").contains("the scheme is 'ftp'"));
    assert!(refused("127.0.0.1:8750", "t").contains("not a Countersign server address"));
    assert!(refused("", "t").contains("it is empty"));
    assert!(refused("https://bot:secret@example.com", "t").contains("COUNTERSIGN_TOKEN instead"));
    assert!(refused("http://example.com/?x=1", "t").contains("query"));
    assert!(
        refused("http://example.com", " ").contains("the API token cannot be used: it is empty")
    );
    assert!(refused("http://example.com", "a\nb").contains("HTTP header"));

    let client = Client::new("https://countersign.example.com/", "very-secret").unwrap();
    assert_eq!(client.server(), "https://countersign.example.com");
    assert!(!format!("{client:?}").contains("very-secret"));
}

#[test]
fn the_local_digest_is_the_cores_digest_of_what_runs() {
    let request = pg_dump();
    let action = Action {
        kind: request.kind.clone(),
        resource: request.resource.clone(),
        claims: Default::default(),
        labels: request.labels.clone(),
        details: request.details.clone(),
        principal: Chain {
            via: None,
            id: "deploy-bot".into(),
            kind: PrincipalKind::Agent,
            on_behalf_of: vec!["alice".into()],
            started_by: None,
        },
        justification: None,
    };
    assert_eq!(request.digest().unwrap(), action.digest().unwrap());

    let mut other = pg_dump();
    other.details["argv"][1] = json!("payments");
    assert_ne!(other.digest().unwrap(), request.digest().unwrap());

    let mut invalid = pg_dump();
    invalid.labels.insert("bad label".into(), "x".into());
    assert!(
        invalid
            .validate()
            .unwrap_err()
            .to_string()
            .contains("'bad label'")
    );
}

#[test]
fn what_the_client_sends_is_strict_and_what_it_reads_is_lenient() {
    let sent = json!({"kind": "shell.exec", "resource": "host:a", "detials": {}});
    let error = serde_json::from_value::<ActionRequest>(sent).unwrap_err();
    assert!(error.to_string().contains("detials"), "{error}");

    let view: countersign_client::RequestView =
        serde_json::from_value(request_view("denied")).unwrap();
    assert_eq!(view.state, RequestState::Denied);
}

#[tokio::test]
async fn a_service_submits_on_behalf_of_an_agent_with_its_token_in_a_header() {
    let digest = pg_dump().digest().unwrap();
    let broker = FakeBroker::start(move |_| {
        Reply::json(
            200,
            json!({"decision": "allow", "rules": ["r1"], "explanation": "fine", "digest": digest}),
        )
    })
    .await;
    let service = Client::new(&broker.url, "service-token").unwrap();
    let mut action = pg_dump();
    action.claims.insert("ticket".into(), "OPS-7".into());
    service
        .on_behalf_of("agent-token")
        .unwrap()
        .evaluate(&action, None)
        .await
        .unwrap();
    let call = broker.only_call();
    assert_eq!(call.header("authorization"), Some("Bearer service-token"));
    assert_eq!(call.header("countersign-agent-token"), Some("agent-token"));
    assert_eq!(call.json()["claims"], json!({"ticket": "OPS-7"}));
    assert!(service.on_behalf_of("bad\ntoken").is_err());
}
