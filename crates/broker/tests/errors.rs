//! Every error of the API is the documented JSON error object, in words that name the field and
//! the problem: query strings, path parameters, JSON bodies, content types, unknown routes and
//! methods, bodies too large.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

use countersign_test_support::broker as harness;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use harness::{pg_dump, start, token};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

/// Words of Rust, not of the API, that no message may hold.
const RUST_WORDS: [&str; 8] = [
    "struct ",
    "enum ",
    "i32",
    "u32",
    "u64",
    "Body",
    "Query",
    "deserialize",
];

/// Sends a raw call as `who`; expects a JSON error with `status` and `code`, returns its message.
async fn error(
    b: &harness::TestBroker,
    who: Option<&str>,
    method: Method,
    uri: &str,
    content_type: Option<&str>,
    body: &str,
    (status, code): (StatusCode, &str),
) -> String {
    let mut request = Request::builder().method(method.clone()).uri(uri);
    if let Some(who) = who {
        request = request.header("authorization", format!("Bearer {}", token(who)));
    }
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let request = request.body(Body::from(body.to_owned())).unwrap();
    let response = b.router.clone().oneshot(request).await.unwrap();
    let got = response.status();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    assert_eq!(got, status, "{method} {uri}: {text}");
    assert_eq!(
        kind.as_deref(),
        Some("application/json"),
        "{method} {uri}: {text}"
    );
    let value: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["error"]["code"], code, "{method} {uri}: {text}");
    let message = value["error"]["message"].as_str().unwrap().to_owned();
    for word in RUST_WORDS {
        assert!(
            !message.contains(word),
            "{method} {uri}: the message speaks Rust ({word}): {message}"
        );
    }
    message
}

async fn get_error(b: &harness::TestBroker, uri: &str, status: StatusCode) -> String {
    error(
        b,
        Some("alice"),
        Method::GET,
        uri,
        None,
        "",
        (
            status,
            if status == StatusCode::BAD_REQUEST {
                "bad_request"
            } else {
                "not_found"
            },
        ),
    )
    .await
}

async fn post_error(b: &harness::TestBroker, uri: &str, body: &str) -> String {
    error(
        b,
        Some("deploy-bot"),
        Method::POST,
        uri,
        Some("application/json"),
        body,
        (StatusCode::BAD_REQUEST, "bad_request"),
    )
    .await
}

#[tokio::test]
async fn query_string_errors_name_the_parameter() {
    let b = start().await;
    let bad = StatusCode::BAD_REQUEST;
    let m = get_error(&b, "/v1/requests?limit=abc", bad).await;
    assert!(m.contains("limit") && m.contains("whole number"), "{m}");
    let m = get_error(&b, "/v1/requests?limit=0", bad).await;
    assert!(m.contains("limit must be from 1 to 500"), "{m}");
    let m = get_error(&b, "/v1/requests?limit=501", bad).await;
    assert!(m.contains("limit must be from 1 to 500"), "{m}");
    let m = get_error(&b, "/v1/requests?limit=99999999999", bad).await;
    assert!(m.contains("limit") && m.contains("too large"), "{m}");
    let m = get_error(&b, "/v1/requests?colour=red", bad).await;
    assert!(m.contains("unknown query parameter `colour`"), "{m}");
    assert!(m.contains("`state`") && m.contains("`limit`"), "{m}");
    let m = get_error(&b, "/v1/requests?limit=1&limit=2", bad).await;
    assert!(m.contains("repeated query parameter `limit`"), "{m}");
    let m = get_error(&b, "/v1/requests?state=maybe", bad).await;
    assert!(m.contains("state 'maybe'"), "{m}");
    let m = get_error(&b, "/v1/audit?after=-1", bad).await;
    assert!(m.contains("after") && m.contains("whole number"), "{m}");
    let m = get_error(&b, "/v1/audit?limit=5001", bad).await;
    assert!(m.contains("limit must be from 1 to 5000"), "{m}");
    let id = "r_00000000000000000000000000000000";
    let m = get_error(&b, &format!("/v1/requests/{id}/wait?timeout=soon"), bad).await;
    assert!(m.contains("soon"), "{m}");
    let m = get_error(&b, &format!("/v1/requests/{id}/wait?after=1"), bad).await;
    assert!(m.contains("unknown query parameter `after`"), "{m}");
    let m = post_error(&b, "/v1/actions?wait=later", &pg_dump().to_string()).await;
    assert!(m.contains("later"), "{m}");
    let m = post_error(&b, "/v1/actions?hold=1", &pg_dump().to_string()).await;
    assert!(m.contains("unknown query parameter `hold`"), "{m}");
}

#[tokio::test]
async fn path_parameter_errors_are_json() {
    let b = start().await;
    let m = get_error(&b, "/v1/requests/nope", StatusCode::BAD_REQUEST).await;
    assert!(m.contains("nope"), "{m}");
    let m = get_error(&b, "/v1/requests/%FF", StatusCode::BAD_REQUEST).await;
    assert!(m.contains("request id"), "{m}");
    get_error(
        &b,
        "/v1/requests/r_00000000000000000000000000000000",
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn body_errors_name_the_field_and_the_problem() {
    let b = start().await;
    for not_an_object in ["[]", r#"["shell.exec", "host:db1"]"#, "5", "null"] {
        let m = post_error(&b, "/v1/actions", not_an_object).await;
        assert!(m.contains("the request body must be a JSON object"), "{m}");
    }
    let m = post_error(&b, "/v1/actions", r#"{"kind": 5, "resource": "x"}"#).await;
    assert!(
        m.contains("the field kind") && m.contains("expected a string"),
        "{m}"
    );
    let m = post_error(&b, "/v1/actions", r#"{"resource": "x"}"#).await;
    assert!(m.contains("missing field `kind`"), "{m}");
    let m = post_error(
        &b,
        "/v1/actions",
        r#"{"kind": "a", "resource": "x", "colour": 1}"#,
    )
    .await;
    assert!(m.contains("unknown field `colour`"), "{m}");
    let m = post_error(
        &b,
        "/v1/actions",
        r#"{"kind": "a", "resource": "x", "labels": []}"#,
    )
    .await;
    assert!(
        m.contains("the field labels") && m.contains("expected an object"),
        "{m}"
    );
    let m = post_error(
        &b,
        "/v1/actions",
        r#"{"kind": "a", "resource": "x", "labels": {"env": 1}}"#,
    )
    .await;
    assert!(m.contains("the field labels.env"), "{m}");
    let m = post_error(&b, "/v1/actions", "{").await;
    assert!(m.contains("not valid JSON"), "{m}");
    let m = post_error(&b, "/v1/actions", r#"{"kind": "a", "resource": "x"} x"#).await;
    assert!(m.contains("not valid JSON"), "{m}");
    let id = "r_00000000000000000000000000000000";
    let m = post_error(
        &b,
        &format!("/v1/requests/{id}/outcome"),
        r#"{"status": "ran", "exit_code": "zero"}"#,
    )
    .await;
    assert!(
        m.contains("the field exit_code") && m.contains("expected a JSON number"),
        "{m}"
    );
    let m = post_error(
        &b,
        &format!("/v1/requests/{id}/outcome"),
        r#"{"status": "ran", "exit_code": 1.5}"#,
    )
    .await;
    assert!(
        m.contains("the field exit_code: 1.5 is not a whole number from -2147483648 to 2147483647"),
        "{m}"
    );
    // Numbers the canonical JSON of a digest or an audit event cannot hold exactly.
    for big in ["9007199254740992", "1e300", "-1e16"] {
        let body = format!(r#"{{"kind": "a.b", "resource": "x", "details": {{"n": [1, {big}]}}}}"#);
        let m = post_error(&b, "/v1/actions", &body).await;
        assert!(
            m.contains(
                "the field details.n[1]: numbers in details must be within ±9007199254740991"
            ),
            "{m}"
        );
        let body = format!(
            r#"{{"events": [{{"type": "action.allowed", "explanation": "x", "data": {{"n": {big}}}}}]}}"#
        );
        let m = post_error(&b, "/v1/audit/events", &body).await;
        assert!(m.contains("the field events[0].data.n"), "{m}");
    }
    let m = post_error(
        &b,
        &format!("/v1/requests/{id}/outcome"),
        r#"{"status": "won"}"#,
    )
    .await;
    assert!(m.contains("unknown variant `won`"), "{m}");
    let m = post_error(
        &b,
        &format!("/v1/requests/{id}/outcome"),
        r#"{"status": 1}"#,
    )
    .await;
    assert!(m.contains("the field status"), "{m}");
    let m = post_error(
        &b,
        "/v1/grants/consume",
        r#"{"token": "t", "digest": "md5:1"}"#,
    )
    .await;
    assert!(m.contains("the field digest"), "{m}");
    let m = post_error(&b, "/v1/audit/events", r#"{"events": [5]}"#).await;
    assert!(
        m.contains("the field events[0]") && m.contains("expected an object"),
        "{m}"
    );
}

#[tokio::test]
async fn a_key_repeated_in_a_body_is_refused_naming_the_key() {
    let b = start().await;
    // serde_json alone keeps the last `argv`: the action reviewed and the one that runs could
    // differ in what another reader takes.
    let m = post_error(
        &b,
        "/v1/actions",
        r#"{"kind": "shell.exec", "resource": "host:a", "details": {"argv": ["ls"], "argv": ["rm", "-rf", "/"]}}"#,
    )
    .await;
    assert!(
        m.contains("the field details") && m.contains(r#"the key "argv" appears twice"#),
        "{m}"
    );
    let m = post_error(
        &b,
        "/v1/actions",
        r#"{"kind": "shell.exec", "resource": "host:a", "details": {"env": {"A": "1", "A": "2"}}}"#,
    )
    .await;
    assert!(m.contains(r#"the key "A" appears twice"#), "{m}");
    let m = post_error(
        &b,
        "/v1/audit/events",
        r#"{"events": [{"type": "action.allowed", "explanation": "x", "data": {"n": 1, "n": 2}}]}"#,
    )
    .await;
    assert!(
        m.contains("the field events[0].data") && m.contains(r#"the key "n" appears twice"#),
        "{m}"
    );
    let m = post_error(
        &b,
        "/v1/actions",
        r#"{"kind": "shell.exec", "kind": "sql.statement", "resource": "host:a"}"#,
    )
    .await;
    assert!(m.contains("duplicate field `kind`"), "{m}");
}

#[tokio::test]
async fn a_malformed_body_is_described_without_rust_types() {
    let b = start().await;
    let id = "r_00000000000000000000000000000000";
    let type_names = [
        "ActionBody",
        "ReviewBody",
        "ConsumeBody",
        "OutcomeBody",
        "AppendBody",
        "ReportedEvent",
        "OutcomeStatus",
        "Verdict",
        "Digest",
        "RequestId",
        "StrictValue",
        "String",
        "Vec",
        "Option",
    ];
    let calls = [
        "/v1/actions".to_owned(),
        format!("/v1/requests/{id}/reviews"),
        format!("/v1/requests/{id}/outcome"),
        "/v1/grants/consume".to_owned(),
        "/v1/audit/events".to_owned(),
    ];
    let bodies = [
        "{}",
        r#"{"kind": null}"#,
        r#"{"kind": [], "resource": {}}"#,
        r#"{"verdict": 1}"#,
        r#"{"verdict": "maybe"}"#,
        r#"{"status": []}"#,
        r#"{"token": 1, "digest": 2}"#,
        r#"{"events": {}}"#,
        r#"{"events": [{"type": 1}]}"#,
        r#"{"events": [{"type": "request.created", "explanation": "x"}]}"#,
        r#"{"events": [{"type": "action.allowed", "explanation": "x", "request_id": 5}]}"#,
        r#"{"kind": "a.b", "resource": "x", "details": 5}"#,
        r#"{"kind": "a.b", "resource": "x", "on_behalf_of": "alice"}"#,
    ];
    for call in &calls {
        for body in bodies {
            let m = post_error(&b, call, body).await;
            for name in type_names {
                assert!(!m.contains(name), "POST {call} {body}: names {name}: {m}");
            }
        }
    }
}

#[tokio::test]
async fn content_types_routes_methods_and_sizes_answer_json() {
    let b = start().await;
    let body = pg_dump().to_string();
    let unsupported = StatusCode::UNSUPPORTED_MEDIA_TYPE;
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let m = error(
            &b,
            Some("deploy-bot"),
            Method::POST,
            "/v1/actions",
            content_type,
            &body,
            (unsupported, "unsupported_media_type"),
        )
        .await;
        assert!(m.contains("Content-Type: application/json"), "{m}");
    }
    error(
        &b,
        None,
        Method::GET,
        "/v2/nothing",
        None,
        "",
        (StatusCode::NOT_FOUND, "not_found"),
    )
    .await;
    for (method, uri) in [
        (Method::GET, "/v1/actions"),
        (Method::DELETE, "/v1/requests"),
        (Method::PUT, "/healthz"),
    ] {
        let m = error(
            &b,
            Some("alice"),
            method.clone(),
            uri,
            None,
            "",
            (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        )
        .await;
        assert!(m.contains(method.as_str()), "{m}");
    }
    let big = json!({"kind": "a", "resource": "x", "details": {"blob": "x".repeat(300 * 1024)}});
    error(
        &b,
        Some("deploy-bot"),
        Method::POST,
        "/v1/actions",
        Some("application/json"),
        &big.to_string(),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
    )
    .await;
    // A JSON content type with parameters, or a +json one, is JSON.
    for content_type in [
        "application/json; charset=utf-8",
        "application/merge-patch+json",
    ] {
        let request = Request::builder()
            .method(Method::POST)
            .uri("/v1/actions")
            .header("authorization", format!("Bearer {}", token("deploy-bot")))
            .header("content-type", content_type)
            .body(Body::from(body.clone()))
            .unwrap();
        let response = b.router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED, "{content_type}");
    }
}

#[tokio::test]
async fn the_openapi_document_lists_the_error_statuses_every_call_can_answer() {
    let b = start().await;
    let (_, doc) = b.call(None, Method::GET, "/openapi.json", None).await;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let statuses = op["responses"].as_object().unwrap();
            let open = op.get("security").is_some_and(|s| s == &json!([]));
            let mut needed = Vec::new();
            if !open {
                needed.push("401");
            }
            if op.get("requestBody").is_some() {
                needed.extend(["400", "408", "413", "415"]);
            }
            if path.contains("{id}") {
                needed.extend(["400", "404"]);
            }
            if op
                .get("parameters")
                .is_some_and(|p| p.as_array().unwrap().iter().any(|p| p["in"] == "query"))
            {
                needed.push("400");
            }
            for status in needed {
                assert!(
                    statuses.contains_key(status),
                    "{method} {path} does not list {status}"
                );
            }
            for (status, answer) in statuses {
                if status.starts_with('4') || status.starts_with('5') {
                    assert!(
                        answer.get("$ref").is_some() || answer.get("content").is_some(),
                        "{method} {path}: {status} does not say its body is the error object"
                    );
                }
            }
        }
    }
}
