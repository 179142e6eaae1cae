//! A broker on a fresh SQLite store, driven through its real router (no network): by default with
//! the example policy and six principals, which is what the API and Slack tests share; the web
//! inbox's tests start it with their own policy, principals and `[web]` table.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use countersign_broker::{Broker, Config};
use countersign_model::SecretKey;
use countersign_policy::Policy;
use countersign_store::{SqliteStore, Store};
use http_body_util::BodyExt as _;
use serde_json::Value;
use tower::ServiceExt as _;

pub use crate::principals::token;
use crate::principals::{Principal, principals_toml};
pub use crate::scratch::Scratch;

pub const EXAMPLE_POLICY: &str = include_str!("../../../examples/policy.toml");

/// Principal id → token. The agent acts for alice; dana is a DBA, sam an SRE and an admin.
/// In Slack, alice and dana are known by their user ids, sam by his email. nightly-bot is an agent
/// the configuration says sam starts. Both agents work on production: the configuration says so
/// (`labels`), since an agent's own word is only a claim. enforcer is a service (an enforcement
/// point) that vouches for other labels of their actions ([`TestBroker::post_via`]).
pub const PRINCIPALS: [Principal<'static>; 7] = [
    (
        "deploy-bot",
        "agent",
        "groups = []\nacts_for = [\"alice\"]\nlabels = { env = \"production\" }",
    ),
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
        "groups = []\nacts_for = [\"alice\"]\nstarted_by = \"sam\"\nlabels = { env = \"production\" }",
    ),
    (
        "enforcer",
        "service",
        "vouches_for = { resources = [\"*\"], labels = [\"team\", \"data_class\"] }",
    ),
];

/// The configuration of the default test broker: [`PRINCIPALS`], nothing else.
pub fn config_text() -> String {
    Setup::default().config_text()
}

/// What a test broker is started with, when not [`start`]'s defaults.
#[derive(Debug, Clone, Copy)]
pub struct Setup<'a> {
    pub policy: &'a str,
    pub principals: &'a [Principal<'a>],
    /// Top-level settings, before the principals (`public_url = "…"`, say).
    pub settings: &'a str,
    /// Tables after the principals (`[web]`, say).
    pub tables: &'a str,
}

impl Default for Setup<'_> {
    fn default() -> Self {
        Setup {
            policy: EXAMPLE_POLICY,
            principals: &PRINCIPALS,
            settings: "",
            tables: "",
        }
    }
}

impl Setup<'_> {
    pub fn config_text(&self) -> String {
        format!(
            "data_dir = \"unused\"\npolicy = \"unused\"\n{}{}{}",
            self.settings,
            principals_toml(self.principals),
            self.tables
        )
    }

    /// Starts a broker on a fresh store in a scratch directory.
    pub async fn start(&self) -> TestBroker {
        let scratch = Scratch::named("broker");
        let store = open_store(&scratch).await;
        start_setup(self, store, broker_key(), scratch).await
    }
}

pub struct TestBroker {
    pub broker: Broker,
    /// The configuration it was started with.
    pub config: Config,
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
    let scratch = Scratch::named("broker");
    let store = open_store(&scratch).await;
    start_on(policy, wrap(store), broker_key(), scratch).await
}

/// The SQLite store of a test broker, in `scratch`.
async fn open_store(scratch: &Scratch) -> Arc<dyn Store> {
    Arc::new(
        SqliteStore::open(&scratch.database(), Some(broker_key()))
            .await
            .unwrap(),
    )
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
    let setup = Setup {
        policy,
        ..Setup::default()
    };
    start_setup(&setup, store, key, scratch).await
}

async fn start_setup(
    setup: &Setup<'_>,
    store: Arc<dyn Store>,
    key: SecretKey,
    scratch: Scratch,
) -> TestBroker {
    let policy_file = scratch.join("policy.toml");
    std::fs::write(&policy_file, setup.policy).unwrap();
    let path = policy_file.clone();
    let loader = Arc::new(move || std::fs::read_to_string(&path).map_err(|e| e.to_string()));
    let config = Config::parse(&setup.config_text()).unwrap();
    let broker = Broker::start(
        &config,
        Policy::parse(setup.policy).unwrap(),
        loader,
        Arc::clone(&store),
        key.clone(),
    )
    .await
    .unwrap();
    TestBroker {
        router: broker.router(),
        broker,
        config,
        store,
        key,
        policy_file,
        _scratch: scratch,
    }
}

impl std::fmt::Debug for TestBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestBroker")
            .field("policy_file", &self.policy_file)
            .finish_non_exhaustive()
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

    /// Posts as the service `service` on behalf of the principal `agent`, whose token goes in
    /// `Countersign-Agent-Token`.
    pub async fn post_via(
        &self,
        service: &str,
        agent: &str,
        uri: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header("authorization", format!("Bearer {}", token(service)))
            .header("countersign-agent-token", token(agent))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

/// The human-readable message of an error answer (`{"error": {"code", "message"}}`).
pub fn error_message(body: &Value) -> &str {
    body["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error answer: {body}"))
}

/// The example policy's database dump: needs a DBA and an SRE (the agents' configuration says
/// env=production).
pub fn pg_dump() -> Value {
    serde_json::json!({
        "kind": "shell.exec",
        "resource": "db:prod/customers",
        "details": {"argv": ["pg_dump", "customers"]},
        "justification": "nightly backup"
    })
}
