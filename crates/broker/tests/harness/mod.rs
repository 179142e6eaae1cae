//! A broker on a fresh SQLite store with the example policy and five principals, driven through
//! its real router (no network): what the API tests share.

// Each test crate uses part of the harness.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use countersign_broker::{Broker, Config};
use countersign_model::{Digest, SecretKey};
use countersign_policy::Policy;
use countersign_store::{SqliteStore, Store};
use http_body_util::BodyExt as _;
use serde_json::Value;
use tower::ServiceExt as _;

pub const EXAMPLE_POLICY: &str = include_str!("../../../../examples/policy.toml");

/// Principal id → token. The agent acts for alice; dana is a DBA, sam an SRE and an admin.
/// In Slack, alice and dana are known by their user ids, sam by his email. nightly-bot is an agent
/// the configuration says sam starts.
pub const PRINCIPALS: [(&str, &str, &str); 6] = [
    ("deploy-bot", "agent", "groups = []\nacts_for = [\"alice\"]"),
    (
        "alice",
        "human",
        "groups = [\"eng\", \"dba\", \"sre\"]\nslack_user = \"U0ALICE001\"",
    ),
    (
        "dana",
        "human",
        "groups = [\"dba\"]\nslack_user = \"U0DANA0001\"",
    ),
    (
        "sam",
        "human",
        "groups = [\"sre\"]\nadmin = true\nemail = \"sam@example.com\"",
    ),
    ("eve", "human", "groups = [\"marketing\"]"),
    (
        "nightly-bot",
        "agent",
        "groups = []\nacts_for = [\"alice\"]\nstarted_by = \"sam\"",
    ),
];

pub fn token(id: &str) -> String {
    format!("token-of-{id}")
}

pub fn config_text() -> String {
    let mut text = String::from("data_dir = \"unused\"\npolicy = \"unused\"\n");
    for (id, kind, extra) in PRINCIPALS {
        text.push_str(&format!(
            "\n[[principals]]\nid = \"{id}\"\nkind = \"{kind}\"\n{extra}\ntoken_sha256 = \"{}\"\n",
            Digest::of(token(id).as_bytes()).hex()
        ));
    }
    text
}

pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new() -> Scratch {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "countersign-broker-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct TestBroker {
    pub broker: Broker,
    pub router: axum::Router,
    pub store: Arc<dyn Store>,
    pub key: SecretKey,
    pub policy_file: PathBuf,
    _scratch: Scratch,
}

pub async fn start() -> TestBroker {
    start_with(EXAMPLE_POLICY, |store| store).await
}

/// Starts a broker with `policy`, letting the test wrap the store (to make it fail, say).
pub async fn start_with(
    policy: &str,
    wrap: impl FnOnce(Arc<dyn Store>) -> Arc<dyn Store>,
) -> TestBroker {
    let scratch = Scratch::new();
    let key = SecretKey::from_seed([5; 32]);
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&scratch.0.join("countersign.db"), Some(key.clone()))
            .await
            .unwrap(),
    );
    start_on(policy, wrap(store), key, scratch).await
}

/// The key every test broker signs with.
pub fn broker_key() -> SecretKey {
    SecretKey::from_seed([5; 32])
}

/// Starts a broker with `policy` on `store`, keeping its policy file in `scratch`.
pub async fn start_on(
    policy: &str,
    store: Arc<dyn Store>,
    key: SecretKey,
    scratch: Scratch,
) -> TestBroker {
    let policy_file = scratch.0.join("policy.toml");
    std::fs::write(&policy_file, policy).unwrap();
    let path = policy_file.clone();
    let loader = Arc::new(move || std::fs::read_to_string(&path).map_err(|e| e.to_string()));
    let config = Config::parse(&config_text()).unwrap();
    let broker = Broker::start(
        &config,
        Policy::parse(policy).unwrap(),
        loader,
        Arc::clone(&store),
        key.clone(),
    )
    .await
    .unwrap();
    TestBroker {
        router: broker.router(),
        broker,
        store,
        key,
        policy_file,
        _scratch: scratch,
    }
}

impl TestBroker {
    /// Calls the API as `who` (None: no token); returns the status and the JSON body.
    pub async fn call(
        &self,
        who: Option<&str>,
        method: Method,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(who) = who {
            request = request.header("authorization", format!("Bearer {}", token(who)));
        }
        let request = match body {
            Some(body) => request
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
            None => request.body(Body::empty()).unwrap(),
        };
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, value)
    }

    pub async fn get(&self, who: &str, uri: &str) -> (StatusCode, Value) {
        self.call(Some(who), Method::GET, uri, None).await
    }

    pub async fn post(&self, who: &str, uri: &str, body: Value) -> (StatusCode, Value) {
        self.call(Some(who), Method::POST, uri, Some(body)).await
    }
}

/// The human-readable message of an error answer (`{"error": {"code", "message"}}`).
pub fn error_message(body: &Value) -> &str {
    body["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error answer: {body}"))
}

/// The example policy's database dump: needs a DBA and an SRE.
pub fn pg_dump() -> Value {
    serde_json::json!({
        "kind": "shell.exec",
        "resource": "db:prod/customers",
        "labels": {"env": "production"},
        "details": {"argv": ["pg_dump", "customers"]},
        "justification": "nightly backup"
    })
}
