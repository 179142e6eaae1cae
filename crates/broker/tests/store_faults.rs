//! The broker on a real SQLite store whose disk fills: it answers 503 while the store cannot
//! commit (and says so on /healthz and /readyz), acknowledges nothing it did not commit, recovers
//! by itself when room returns, and an approval runs once, also across a restart.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

use countersign_test_support::broker as harness;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use countersign_store::{SqliteStore, Store};
use harness::{EXAMPLE_POLICY, Scratch, TestBroker, broker_key, pg_dump, start_on};
use serde_json::{Value, json};

fn echo(tag: &str) -> Value {
    // Large enough that a few of them need a new page of the database; those sent once the disk
    // is full are larger still, so none fits where the first refused one did not.
    let padding = if tag.starts_with("full") { 1800 } else { 1500 };
    json!({"kind": "shell.exec", "resource": "host:web-1",
           "details": {"argv": ["echo", tag, "x".repeat(padding)], "program": "/usr/bin/echo"}})
}

/// Opens a request for a database dump and has dana and sam approve it; returns what consumes
/// its grant.
async fn approved(b: &TestBroker, justification: &str) -> Value {
    let mut action = pg_dump();
    action["justification"] = json!(justification);
    let (_, body) = b.post("deploy-bot", "/v1/actions", action).await;
    let id = body["request"]["id"].as_str().unwrap().to_owned();
    for who in ["dana", "sam"] {
        let (status, body) = b
            .post(
                who,
                &format!("/v1/requests/{id}/reviews"),
                json!({"verdict": "approve"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (_, approved) = b
        .get("deploy-bot", &format!("/v1/requests/{id}/wait?timeout=1s"))
        .await;
    json!({"token": approved["grant"]["token"], "digest": approved["digest"]})
}

async fn health(b: &TestBroker, path: &str) -> (StatusCode, Value) {
    b.call(None, Method::GET, path, None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_store_cannot_commit_nothing_is_acknowledged_and_an_approval_runs_once() {
    let scratch = Scratch::new();
    let data = Scratch::new();
    let database = data.0.join("countersign.db");
    let store = Arc::new(
        SqliteStore::open(&database, Some(broker_key()))
            .await
            .unwrap(),
    );
    let b = start_on(
        EXAMPLE_POLICY,
        Arc::clone(&store) as Arc<dyn Store>,
        broker_key(),
        scratch,
    )
    .await;
    assert_eq!(
        health(&b, "/healthz").await,
        (StatusCode::OK, json!({"ok": true}))
    );
    let (status, ready) = health(&b, "/readyz").await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["policy"]["hash"], b.broker.policy_hash().to_string());

    // Two approved requests, one of whose approvals was used already.
    let used = approved(&b, "the first one").await;
    let (status, _) = b
        .post("deploy-bot", "/v1/grants/consume", used.clone())
        .await;
    assert_eq!(status, StatusCode::OK);
    let consume = approved(&b, "the second one").await;

    // The disk fills.
    store.limit_size(Some(1)).await.unwrap();
    let mut acknowledged = Vec::new();
    let mut refused = Vec::new();
    for n in 0..200 {
        let tag = format!("before-{n}");
        let (status, body) = b.post("deploy-bot", "/v1/actions", echo(&tag)).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(body["error"]["code"], "unavailable", "{body}");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.contains("database or disk is full"), "{body}");
            assert_eq!(
                message.matches("the store is unavailable").count(),
                1,
                "{body}"
            );
            refused.push(tag);
            break;
        }
        assert_eq!(status, StatusCode::OK, "{body}");
        acknowledged.push(tag);
    }
    assert_eq!(
        refused.len(),
        1,
        "the full disk never refused an allowed action"
    );
    let (status, body) = health(&b, "/healthz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["ok"], false);
    assert_eq!(body["error"]["code"], "store_unavailable");
    let (status, body) = health(&b, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["ready"], false);
    assert!(
        body["store"].as_str().unwrap().contains("cannot commit"),
        "{body}"
    );

    for n in 0..3 {
        let tag = format!("full-{n}");
        let (status, body) = b.post("deploy-bot", "/v1/actions", echo(&tag)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        refused.push(tag);
    }
    // A consumption the store turns down by itself rolls its transaction back: nothing after it
    // may then be acknowledged without being committed.
    let (status, body) = b.post("deploy-bot", "/v1/grants/consume", used).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (consumed_while_full, _) = b
        .post("deploy-bot", "/v1/grants/consume", consume.clone())
        .await;

    // Room returns: the broker recovers by itself.
    store.limit_size(None).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while health(&b, "/healthz").await.0 != StatusCode::OK {
        assert!(Instant::now() < deadline, "the broker did not recover");
        tokio::task::yield_now().await;
    }
    let (status, body) = b.post("deploy-bot", "/v1/actions", echo("after")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    acknowledged.push("after".into());
    if consumed_while_full != StatusCode::OK {
        let (status, body) = b
            .post("deploy-bot", "/v1/grants/consume", consume.clone())
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    drop(b);
    drop(store);

    // A restart on the same file: everything acknowledged is there, the approval is used.
    let store = Arc::new(
        SqliteStore::open(&database, Some(broker_key()))
            .await
            .unwrap(),
    );
    let b = start_on(EXAMPLE_POLICY, store, broker_key(), Scratch::new()).await;
    let (status, body) = b.post("deploy-bot", "/v1/grants/consume", consume).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "grant_used");
    let (_, log) = b.get("sam", "/v1/audit?after=0&limit=1000").await;
    let logged: Vec<String> = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["data"]["action"]["details"]["argv"][1].as_str())
        .map(str::to_owned)
        .collect();
    for tag in &acknowledged {
        assert!(
            logged.contains(tag),
            "the acknowledged action {tag} is not in the log"
        );
    }
    for tag in &refused {
        assert!(
            !logged.contains(tag),
            "the refused action {tag} is in the log"
        );
    }
}
