//! The web inbox the page tests share: a broker on a fresh SQLite store with a small policy and
//! three principals, the inbox's router in process, sign-in with API tokens, and the agent's
//! requests sent through the real API.

// Each test crate uses part of it.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use countersign_test_support::broker::{Setup, TestBroker};
use countersign_test_support::principals::Principal;
pub use countersign_test_support::principals::token;
use countersign_web::Web;
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

pub const POLICY: &str = r#"
version = 1
default = "deny"

[[rules]]
id = "scripted-change"
decision = "require_approval"
reason = "Scripts that change production need a DBA's eye"
match.kind = "shell.exec"
match.command = "sh -c *"
approvers = { groups = ["dba"], count = 1 }

[[rules]]
id = "repo-delete"
decision = "require_approval"
reason = "Deleting in a repository changes what ships"
match.kind = "mcp.tool_call"
match.resource = "mcp:github/delete_*"
approvers = { groups = ["dba"], count = 1 }
"#;

/// The agent, two reviewers, and an enforcement point that vouches for the labels of the
/// agent's actions (an agent's own labels would be refused: they are only claims).
pub const PRINCIPALS: [Principal<'static>; 4] = [
    (
        "deploy-bot",
        "agent",
        "acts_for = [\"alice\"]\nemail = \"bot@example.test\"",
    ),
    (
        "alice",
        "human",
        "groups = [\"dba\"]\nemail = \"alice@example.test\"",
    ),
    (
        "dana",
        "human",
        "groups = [\"dba\"]\noidc_subject = \"sub-dana\"",
    ),
    (
        "enforcer",
        "service",
        "vouches_for = { resources = [\"*\"], labels = [\"env\", \"team\"] }",
    ),
];

/// A form's fields, in order.
pub type Form<'a> = &'a [(&'a str, &'a str)];

pub struct Inbox {
    pub router: axum::Router,
    pub _broker: TestBroker,
}

/// A response, read whole.
pub struct Answer {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn location(&self) -> &str {
        self.headers[header::LOCATION].to_str().unwrap()
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    /// The `name=value` of a cookie this response sets.
    pub fn cookie(&self, name: &str) -> String {
        self.set_cookies()
            .iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .map(|c| c.split(';').next().unwrap().to_owned())
            .unwrap_or_else(|| panic!("no {name} cookie in {:?}", self.set_cookies()))
    }

    /// The value of the first hidden `csrf` field.
    pub fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("no csrf field")
            + 19;
        self.body[at..].split('"').next().unwrap().to_owned()
    }
}

pub async fn start(public_url: &str) -> Inbox {
    let settings = format!("public_url = \"{public_url}\"\n");
    let broker = Setup {
        policy: POLICY,
        principals: &PRINCIPALS,
        settings: &settings,
        tables: "\n[web]\ntoken_sign_in = true\n[web.oidc]\nissuer = \"http://127.0.0.1:9\"\nclient_id = \"countersign\"\n",
    }
    .start()
    .await;
    let web = Web::new(
        broker.broker.clone(),
        &broker.config.channels["web"],
        |_| None,
    )
    .unwrap();
    Inbox {
        router: broker.router.clone().merge(web.router()),
        _broker: broker,
    }
}

impl Inbox {
    pub async fn send(&self, request: Request<Body>) -> Answer {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    pub async fn get(&self, uri: &str, cookie: Option<&str>) -> Answer {
        let mut request = Request::builder().uri(uri);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    pub async fn post_form(
        &self,
        uri: &str,
        cookie: &str,
        origin: Option<&str>,
        form: &[(&str, &str)],
    ) -> Answer {
        let body = reqwest::Url::parse_with_params("x:", form)
            .unwrap()
            .query()
            .unwrap_or_default()
            .to_owned();
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::COOKIE, cookie);
        if let Some(origin) = origin {
            request = request.header(header::ORIGIN, origin);
        }
        self.send(request.body(Body::from(body)).unwrap()).await
    }

    /// Signs in with `who`'s API token; returns the session cookie (`name=value`).
    pub async fn sign_in(&self, who: &str) -> String {
        let form = self.get("/sign-in?next=/inbox", None).await;
        let answer = self
            .post_form(
                "/sign-in/token",
                &form.cookie("countersign_form"),
                Some("http://127.0.0.1:8750"),
                &[
                    ("token", &token(who)),
                    ("csrf", &form.csrf()),
                    ("next", "/inbox"),
                ],
            )
            .await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
        assert_eq!(answer.location(), "/inbox");
        answer.cookie("countersign_session")
    }

    /// The agent asks to run `argv` with its own justification and labels; returns the request id.
    pub async fn agent_asks(&self, argv: &[&str], justification: &str, labels: Value) -> String {
        let body = json!({
            "kind": "shell.exec", "resource": "db:prod/customers", "labels": labels,
            "details": {"argv": argv}, "justification": justification
        });
        self.agent_sends(body).await
    }

    /// The agent sends `action` (`POST /v1/actions`), which must open a request; returns its id.
    /// An action with labels goes through the enforcement point that vouches for them, on the
    /// agent's behalf.
    pub async fn agent_sends(&self, body: Value) -> String {
        let vouched = body["labels"].as_object().is_some_and(|l| !l.is_empty());
        let mut request = Request::builder()
            .method(Method::POST)
            .uri("/v1/actions")
            .header(header::CONTENT_TYPE, "application/json");
        request = if vouched {
            request
                .header(
                    header::AUTHORIZATION,
                    format!("Bearer {}", token("enforcer")),
                )
                .header("countersign-agent-token", token("deploy-bot"))
        } else {
            request.header(
                header::AUTHORIZATION,
                format!("Bearer {}", token("deploy-bot")),
            )
        };
        let request = request.body(Body::from(body.to_string())).unwrap();
        let answer = self.send(request).await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
        let value: Value = serde_json::from_str(&answer.body).unwrap();
        value["request"]["id"].as_str().unwrap().to_owned()
    }

    /// Opens a request for `action` as built on the model (claims and all), through the broker's
    /// service layer; returns its id.
    pub async fn submitted(&self, action: countersign_model::Action) -> String {
        let submitted = self._broker.broker.submit(action).await.unwrap();
        submitted.request.expect("a request").id.to_string()
    }

    /// The request as the broker has it stored.
    pub async fn stored(&self, id: &str) -> countersign_approval::Request {
        self._broker
            .broker
            .request(id.parse().unwrap())
            .await
            .unwrap()
            .unwrap()
    }

    pub async fn review_events(&self, id: &str) -> Vec<String> {
        self._broker
            .broker
            .audit_of(id.parse().unwrap())
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .filter(|k| k.starts_with("review."))
            .collect()
    }
}
