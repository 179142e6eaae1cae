//! A local server that speaks the part of Slack's Web API Countersign uses, as Slack documents it:
//! bearer-token checks (`not_authed`, `invalid_auth`), JSON bodies for `chat.*` and `views.open`
//! and form bodies for `users.lookupByEmail`, the documented answer shapes, `ok: false` errors
//! (`channel_not_found`, `message_not_found`, `users_not_found`, `invalid_blocks`), and 429 with
//! `Retry-After` on demand. It records every call so tests can read what reviewers would see.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

pub const BOT_TOKEN: &str = "xoxb-test-0000-countersign";
pub const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

/// Channels the workspace has: name → id.
const CHANNELS: [(&str, &str); 3] = [
    ("#approvals", "C0APPROVALS"),
    ("#dba-approvals", "C0DBAAPPROVE"),
    ("#sre", "C0SRE00001"),
];

/// Slack users by email.
const USERS: [(&str, &str); 3] = [
    ("sam@example.com", "U0SAM00001"),
    ("alice@example.com", "U0ALICE001"),
    ("dana@example.com", "U0DANA0001"),
];

/// A scripted answer for the next call of a method.
#[derive(Debug, Clone)]
pub enum Failure {
    RateLimited { retry_after: u64 },
    ServerError,
    Error(&'static str),
}

#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub body: Value,
}

#[derive(Debug, Default)]
struct Inner {
    calls: Vec<Call>,
    /// (channel id, ts) → the message as last posted or updated.
    messages: HashMap<(String, String), Value>,
    failures: HashMap<String, VecDeque<Failure>>,
    next_ts: u64,
}

#[derive(Debug, Clone, Default)]
pub struct FakeSlack {
    inner: Arc<Mutex<Inner>>,
    pub url: String,
}

impl FakeSlack {
    pub async fn start() -> FakeSlack {
        let mut fake = FakeSlack::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        fake.url = format!("http://{}/api", listener.local_addr().unwrap());
        let app = Router::new()
            .route("/api/{method}", post(call))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        fake
    }

    /// The next calls of `method` fail like this, in order.
    pub fn fail_next(&self, method: &str, failures: &[Failure]) {
        let mut inner = self.inner.lock().unwrap();
        inner
            .failures
            .entry(method.to_owned())
            .or_default()
            .extend(failures.iter().cloned());
    }

    pub fn calls(&self, method: &str) -> Vec<Call> {
        let inner = self.inner.lock().unwrap();
        inner
            .calls
            .iter()
            .filter(|c| c.method == method)
            .cloned()
            .collect()
    }

    /// The message as reviewers see it now in `channel` (an id), posted at `ts`.
    pub fn message(&self, channel: &str, ts: &str) -> Option<Value> {
        let inner = self.inner.lock().unwrap();
        inner
            .messages
            .get(&(channel.to_owned(), ts.to_owned()))
            .cloned()
    }

    /// Every message posted to `channel` (an id): (ts, message as it stands).
    pub fn messages_in(&self, channel: &str) -> Vec<(String, Value)> {
        let inner = self.inner.lock().unwrap();
        let mut found: Vec<(String, Value)> = inner
            .messages
            .iter()
            .filter(|((c, _), _)| c == channel)
            .map(|((_, ts), m)| (ts.clone(), m.clone()))
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found
    }

    /// Polls `check` until it gives a value, or fails the test after ten seconds.
    pub async fn eventually<T>(
        &self,
        what: &str,
        mut check: impl FnMut(&FakeSlack) -> Option<T>,
    ) -> T {
        crate::poll::until_async(Duration::from_secs(10), what, || {
            std::future::ready(check(self))
        })
        .await
    }
}

fn ok(body: Value) -> Response {
    let mut body = body;
    body["ok"] = Value::Bool(true);
    axum::Json(body).into_response()
}

fn error(error: &str) -> Response {
    axum::Json(json!({ "ok": false, "error": error })).into_response()
}

/// Slack's documented limits on a message's blocks.
fn check_blocks(blocks: &Value) -> Result<(), String> {
    let Some(blocks) = blocks.as_array() else {
        return Ok(());
    };
    if blocks.len() > 50 {
        return Err("more than 50 blocks".into());
    }
    for block in blocks {
        let text_len = block["text"]["text"]
            .as_str()
            .map_or(0, |t| t.chars().count());
        match block["type"].as_str() {
            Some("header") if text_len > 150 => return Err("header text over 150".into()),
            Some("section") if text_len > 3000 => return Err("section text over 3000".into()),
            Some("section") => {
                let fields = block["fields"].as_array().map_or(0, Vec::len);
                if fields > 10 {
                    return Err("more than 10 fields".into());
                }
                for field in block["fields"].as_array().into_iter().flatten() {
                    if field["text"].as_str().map_or(0, |t| t.chars().count()) > 2000 {
                        return Err("field over 2000".into());
                    }
                }
            }
            Some("header" | "rich_text" | "actions" | "context" | "divider") => {}
            other => return Err(format!("unknown block type {other:?}")),
        }
    }
    Ok(())
}

async fn call(
    State(fake): State<FakeSlack>,
    Path(method): Path<String>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body: Value = if content_type.starts_with("application/json") {
        match serde_json::from_slice(&raw) {
            Ok(body) => body,
            Err(_) => return error("invalid_json"),
        }
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        let fields: serde_json::Map<String, Value> = form_urlencoded::parse(&raw)
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect();
        Value::Object(fields)
    } else {
        return error("invalid_form_data");
    };
    let mut inner = fake.inner.lock().unwrap();
    inner.calls.push(Call {
        method: method.clone(),
        body: body.clone(),
    });
    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
        None => return error("not_authed"),
        Some(auth) if auth != format!("Bearer {BOT_TOKEN}") => return error("invalid_auth"),
        Some(_) => {}
    }
    if let Some(failure) = inner
        .failures
        .get_mut(&method)
        .and_then(VecDeque::pop_front)
    {
        return match failure {
            Failure::RateLimited { retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", retry_after.to_string())],
                axum::Json(json!({ "ok": false, "error": "ratelimited" })),
            )
                .into_response(),
            Failure::ServerError => {
                (StatusCode::INTERNAL_SERVER_ERROR, "upstream error").into_response()
            }
            Failure::Error(e) => error(e),
        };
    }
    let json_only = [
        "chat.postMessage",
        "chat.update",
        "chat.postEphemeral",
        "views.open",
    ];
    if json_only.contains(&method.as_str()) && !content_type.starts_with("application/json") {
        return error("invalid_arguments");
    }
    match method.as_str() {
        "chat.postMessage" => {
            let target = body["channel"].as_str().unwrap_or_default();
            let Some(channel) = CHANNELS
                .iter()
                .find(|(name, id)| *name == target || *id == target)
                .map(|(_, id)| id.to_string())
            else {
                return error("channel_not_found");
            };
            if body["text"].as_str().is_none() && body["blocks"].is_null() {
                return error("no_text");
            }
            if let Err(problem) = check_blocks(&body["blocks"]) {
                return axum::Json(
                    json!({ "ok": false, "error": "invalid_blocks", "errors": [problem] }),
                )
                .into_response();
            }
            inner.next_ts += 1;
            let ts = format!("1763700000.{:06}", inner.next_ts);
            let message = json!({ "type": "message", "bot_id": "B0COUNTERSIGN", "text": body["text"], "blocks": body["blocks"], "ts": ts });
            inner
                .messages
                .insert((channel.clone(), ts.clone()), message.clone());
            ok(json!({ "channel": channel, "ts": ts, "message": message }))
        }
        "chat.update" => {
            let channel = body["channel"].as_str().unwrap_or_default().to_owned();
            let ts = body["ts"].as_str().unwrap_or_default().to_owned();
            if !CHANNELS.iter().any(|(_, id)| *id == channel) {
                return error("channel_not_found");
            }
            if let Err(problem) = check_blocks(&body["blocks"]) {
                return axum::Json(
                    json!({ "ok": false, "error": "invalid_blocks", "errors": [problem] }),
                )
                .into_response();
            }
            let Some(message) = inner.messages.get_mut(&(channel.clone(), ts.clone())) else {
                return error("message_not_found");
            };
            message["text"] = body["text"].clone();
            message["blocks"] = body["blocks"].clone();
            message["edited"] = json!({ "user": "U0BOT", "ts": ts });
            ok(json!({ "channel": channel, "ts": ts, "text": body["text"] }))
        }
        "chat.postEphemeral" => {
            if body["user"].as_str().is_none() {
                return error("user_not_in_channel");
            }
            inner.next_ts += 1;
            ok(json!({ "message_ts": format!("1763700000.{:06}", inner.next_ts) }))
        }
        "views.open" => {
            if body["trigger_id"].as_str().is_none_or(str::is_empty) {
                return error("invalid_trigger_id");
            }
            ok(
                json!({ "view": { "id": "V0MODAL001", "type": "modal", "callback_id": body["view"]["callback_id"], "private_metadata": body["view"]["private_metadata"], "blocks": body["view"]["blocks"] } }),
            )
        }
        "users.lookupByEmail" => {
            let email = body["email"].as_str().unwrap_or_default();
            match USERS.iter().find(|(e, _)| *e == email) {
                Some((email, id)) => ok(
                    json!({ "user": { "id": id, "team_id": "T0TEAM0001", "deleted": false, "is_bot": false, "profile": { "email": email } } }),
                ),
                None => error("users_not_found"),
            }
        }
        _ => error("unknown_method"),
    }
}
