//! The world the Slack tests share: a broker with the example policy, the Slack integration
//! talking to the fake Slack, and interactivity requests signed as Slack signs them.

// Each test crate uses part of the world.
#![allow(dead_code)]

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use countersign_broker::now;
use countersign_slack::{Secrets, Settings, Slack, signature};
use countersign_test_support::poll;
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::fake_slack::{BOT_TOKEN, FakeSlack, SIGNING_SECRET};
use crate::harness::{self, TestBroker};

pub struct World {
    pub broker: TestBroker,
    pub slack: FakeSlack,
    pub router: axum::Router,
}

pub async fn world() -> World {
    let broker = harness::start().await;
    let slack = FakeSlack::start().await;
    let table: toml::Table = format!(
        "channel = \"#approvals\"\nteam_id = \"T0TEAM0001\"\napi_url = \"{}\"\nretry_attempts = 4",
        slack.url
    )
    .parse()
    .unwrap();
    let mut settings = Settings::parse(&table).unwrap();
    settings.retry_base = Duration::from_millis(20);
    let secrets = Secrets {
        bot_token: BOT_TOKEN.into(),
        signing_secret: SIGNING_SECRET.into(),
    };
    let integration = Slack::start(broker.broker.clone(), settings, secrets).unwrap();
    let router = broker.router.clone().merge(integration.router());
    World {
        broker,
        slack,
        router,
    }
}

/// A `block_actions` payload as Slack documents it: a click on one of our buttons.
pub fn click(user: &str, action_id: &str, request: &str, channel: &str, ts: &str) -> Value {
    json!({
        "type": "block_actions",
        "user": { "id": user, "username": "someone", "name": "someone", "team_id": "T0TEAM0001" },
        "api_app_id": "A0COUNTERSIGN",
        "token": "deprecated-verification-token",
        "container": { "type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": false },
        "trigger_id": "1763700001.123456.0123456789abcdef",
        "team": { "id": "T0TEAM0001", "domain": "acme" },
        "enterprise": null,
        "is_enterprise_install": false,
        "channel": { "id": channel, "name": "approvals" },
        "message": { "type": "message", "ts": ts, "bot_id": "B0COUNTERSIGN", "text": "Approval requested" },
        "state": { "values": {} },
        "response_url": "https://hooks.slack.com/actions/T0TEAM0001/1/abc",
        "actions": [{
            "action_id": action_id,
            "block_id": "countersign_review",
            "text": { "type": "plain_text", "text": "Approve", "emoji": true },
            "value": request,
            "style": "primary",
            "type": "button",
            "action_ts": "1763700001.000200"
        }]
    })
}

/// A `view_submission` payload for the deny dialog, with the reason typed in.
pub fn deny_submission(user: &str, request: &str, channel: &str, reason: &str) -> Value {
    json!({
        "type": "view_submission",
        "team": { "id": "T0TEAM0001", "domain": "acme" },
        "user": { "id": user, "username": "someone", "name": "someone", "team_id": "T0TEAM0001" },
        "api_app_id": "A0COUNTERSIGN",
        "token": "deprecated-verification-token",
        "trigger_id": "1763700002.123456.0123456789abcdef",
        "view": {
            "id": "V0MODAL001",
            "team_id": "T0TEAM0001",
            "type": "modal",
            "callback_id": "countersign_deny_reason",
            "private_metadata": json!({ "request": request, "channel": channel }).to_string(),
            "state": { "values": { "reason": { "reason_input": { "type": "plain_text_input", "value": reason } } } },
            "hash": "1763700002.abc",
            "app_id": "A0COUNTERSIGN",
            "bot_id": "B0COUNTERSIGN"
        },
        "response_urls": [],
        "is_enterprise_install": false
    })
}

pub fn form(payload: &Value) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &payload.to_string())
        .finish()
}

impl World {
    /// Posts a body to /slack/interactions with the given headers.
    pub async fn deliver(
        &self,
        body: &str,
        timestamp: &str,
        signature: &str,
    ) -> (StatusCode, String) {
        let request = Request::post("/slack/interactions")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", timestamp)
            .header("x-slack-signature", signature)
            .body(Body::from(body.to_owned()))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Sends a payload signed as Slack signs it, now.
    pub async fn interact(&self, payload: &Value) -> (StatusCode, String) {
        let body = form(payload);
        let timestamp = (now().unix_millis() / 1000).to_string();
        let sig = signature::sign(SIGNING_SECRET.as_bytes(), &timestamp, body.as_bytes());
        self.deliver(&body, &timestamp, &sig).await
    }

    /// Opens a gated request as the agent; returns its id. An action with labels goes through
    /// the enforcement point that vouches for them, on the agent's behalf.
    pub async fn open(&self, action: Value) -> String {
        let vouched = action["labels"].as_object().is_some_and(|l| !l.is_empty());
        let (status, body) = if vouched {
            let broker = &self.broker;
            broker
                .post_via("enforcer", "deploy-bot", "/v1/actions", action)
                .await
        } else {
            self.broker.post("deploy-bot", "/v1/actions", action).await
        };
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        body["request"]["id"].as_str().unwrap().to_owned()
    }

    pub async fn request(&self, id: &str) -> Value {
        self.broker
            .get("sam", &format!("/v1/requests/{id}"))
            .await
            .1
    }

    /// The message of request `id` in `channel`, once posted: its ts.
    pub async fn posted(&self, id: &str, channel: &str) -> String {
        self.slack
            .eventually(&format!("request {id} posted in {channel}"), |s| {
                s.messages_in(channel)
                    .into_iter()
                    .find(|(_, m)| m.to_string().contains(id))
                    .map(|(ts, _)| ts)
            })
            .await
    }

    /// Waits until the message shows `needle`; returns the message.
    pub async fn shows(&self, channel: &str, ts: &str, needle: &str) -> Value {
        self.slack
            .eventually(&format!("the message shows {needle:?}"), |s| {
                s.message(channel, ts)
                    .filter(|m| m.to_string().contains(needle))
            })
            .await
    }

    pub async fn events(&self, id: &str) -> Vec<countersign_audit::AuditEvent> {
        let id = id.parse().unwrap();
        self.broker.broker.audit_of(id).await.unwrap()
    }

    pub async fn audit_kinds(&self, id: &str) -> Vec<String> {
        self.events(id).await.into_iter().map(|e| e.kind).collect()
    }

    /// Waits until the request's audit trail holds an event of `kind`; returns its explanation.
    pub async fn audited(&self, id: &str, kind: &str) -> String {
        poll::until_async(
            Duration::from_secs(10),
            &format!("a {kind} event for {id}"),
            || async {
                let events = self.events(id).await;
                events
                    .into_iter()
                    .find(|e| e.kind == kind)
                    .map(|e| e.explanation)
            },
        )
        .await
    }

    /// Waits for an ephemeral message to `user`; returns its text.
    pub async fn told(&self, user: &str) -> String {
        self.slack
            .eventually(&format!("an ephemeral message to {user}"), |s| {
                s.calls("chat.postEphemeral")
                    .into_iter()
                    .find(|c| c.body["user"] == user)
                    .map(|c| c.body["text"].as_str().unwrap().to_owned())
            })
            .await
    }
}

pub const APPROVALS: &str = "C0APPROVALS";
pub const DBA: &str = "C0DBAAPPROVE";

/// Calls `check(kind, text)` for every text in a message's blocks: `mrkdwn` and `plain_text`
/// objects, and `rich_text` text elements (kind `text`).
pub fn walk(value: &Value, check: &mut impl FnMut(&str, &str)) {
    match value {
        Value::Object(map) => {
            if let (Some(Value::String(kind)), Some(Value::String(text))) =
                (map.get("type"), map.get("text"))
            {
                check(kind, text);
            }
            map.values().for_each(|v| walk(v, check));
        }
        Value::Array(items) => items.iter().for_each(|v| walk(v, check)),
        _ => {}
    }
}

/// The message's "who asks" line as a reviewer reads it, with bold text between `*`.
pub fn who_asks(message: &Value) -> String {
    let section = message["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "rich_text")
        .flat_map(|b| b["elements"].as_array().unwrap().iter())
        .find(|e| e["type"] == "rich_text_section")
        .expect("a rich_text section saying who asks");
    section["elements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let text = e["text"].as_str().unwrap();
            if e["style"]["bold"] == true {
                format!("*{text}*")
            } else {
                text.to_owned()
            }
        })
        .collect()
}

/// The text of the message's code block: the action as the reviewer reads it.
pub fn action_shown(message: &Value) -> String {
    let mut shown = None;
    for block in message["blocks"].as_array().unwrap() {
        for element in block["elements"].as_array().into_iter().flatten() {
            if element["type"] == "rich_text_preformatted" {
                shown = element["elements"][0]["text"].as_str().map(str::to_owned);
            }
        }
    }
    shown.expect("a code block with the action")
}
