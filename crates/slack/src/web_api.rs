//! Slack's Web API, as Countersign uses it: `chat.postMessage`, `chat.update`,
//! `chat.postEphemeral`, `views.open` and `users.lookupByEmail`, with the bot token as a bearer
//! token. Calls that meet an outage are tried again with doubling pauses, and a 429 waits as long
//! as Slack's `Retry-After` says; an answer `"ok": false` with a real error is not retried.

use std::time::Duration;

use serde_json::Value;

use crate::settings::Settings;

/// The longest pause between two tries, whatever `Retry-After` says.
const MAX_PAUSE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlackError {
    /// Slack answered, and said no (`channel_not_found`, `not_in_channel`, `invalid_auth`…).
    #[error("Slack refused {method}: {error}{}", hint(.error))]
    Refused { method: String, error: String },
    /// Slack could not be reached or kept failing, every try.
    #[error("Slack's {method} failed after {attempts} tries: {detail}")]
    Unavailable {
        method: String,
        attempts: u32,
        detail: String,
    },
}

/// What to do about the errors an operator can fix.
fn hint(error: &str) -> &'static str {
    match error {
        "not_in_channel" => " (invite the Countersign app to the channel: /invite @Countersign)",
        "channel_not_found" => {
            " (check the channel's name, or invite the app to the private channel)"
        }
        "invalid_auth" | "not_authed" | "token_revoked" | "account_inactive" => {
            " (check the bot token in the environment variable named by slack.bot_token_env)"
        }
        "missing_scope" => {
            " (add the scopes of deploy/slack-app-manifest.yaml and reinstall the app)"
        }
        "users_not_found" => " (no Slack user has this email)",
        _ => "",
    }
}

/// Errors Slack documents as passing: worth another try.
fn transient(error: &str) -> bool {
    matches!(
        error,
        "ratelimited"
            | "internal_error"
            | "fatal_error"
            | "service_unavailable"
            | "request_timeout"
    )
}

#[derive(Debug, Clone)]
pub struct SlackApi {
    http: reqwest::Client,
    base: String,
    token: String,
    attempts: u32,
    first_pause: Duration,
}

enum Body<'a> {
    Json(&'a Value),
    Form(&'a [(&'a str, &'a str)]),
}

impl SlackApi {
    pub fn new(settings: &Settings, bot_token: &str) -> Result<SlackApi, String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot set up HTTPS for Slack: {e}"))?;
        Ok(SlackApi {
            http,
            base: settings.api_url.clone(),
            token: bot_token.to_owned(),
            attempts: settings.retry_attempts,
            first_pause: settings.retry_base,
        })
    }

    /// Calls a method that takes JSON (`chat.*`, `views.open`).
    pub async fn call(&self, method: &str, body: &Value) -> Result<Value, SlackError> {
        self.send(method, Body::Json(body)).await
    }

    /// Calls a method that takes form fields (`users.lookupByEmail`).
    pub async fn call_form(
        &self,
        method: &str,
        fields: &[(&str, &str)],
    ) -> Result<Value, SlackError> {
        self.send(method, Body::Form(fields)).await
    }

    async fn send(&self, method: &str, body: Body<'_>) -> Result<Value, SlackError> {
        let url = format!("{}/{method}", self.base);
        let mut pause = self.first_pause;
        let mut last = String::new();
        for attempt in 1..=self.attempts {
            let request = self.http.post(&url).bearer_auth(&self.token);
            let request = match &body {
                Body::Json(value) => request
                    .header("content-type", "application/json; charset=utf-8")
                    .body(value.to_string()),
                Body::Form(fields) => request
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(
                        form_urlencoded::Serializer::new(String::new())
                            .extend_pairs(fields.iter())
                            .finish(),
                    ),
            };
            let wait = match request.send().await {
                Ok(response) if response.status() == reqwest::StatusCode::TOO_MANY_REQUESTS => {
                    let after = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map_or(pause, Duration::from_secs);
                    last = format!("rate limited (Retry-After {}s)", after.as_secs());
                    after
                }
                Ok(response) if response.status().is_server_error() => {
                    last = format!("HTTP {}", response.status());
                    pause
                }
                Ok(response) => {
                    let status = response.status();
                    match response.json::<Value>().await {
                        Ok(answer) if answer["ok"] == Value::Bool(true) => return Ok(answer),
                        Ok(answer) => {
                            let error = answer["error"].as_str().unwrap_or("unknown_error");
                            if !transient(error) {
                                return Err(SlackError::Refused {
                                    method: method.to_owned(),
                                    error: error.to_owned(),
                                });
                            }
                            last = error.to_owned();
                            pause
                        }
                        Err(e) => {
                            last = format!("HTTP {status} with an unreadable answer: {e}");
                            pause
                        }
                    }
                }
                Err(e) => {
                    last = format!("cannot reach {}: {e}", self.base);
                    pause
                }
            };
            if attempt == self.attempts {
                break;
            }
            tracing::warn!(%method, attempt, problem = %last, "Slack call failed; trying again");
            tokio::time::sleep(wait.min(MAX_PAUSE)).await;
            pause = (pause * 2).min(MAX_PAUSE);
        }
        Err(SlackError::Unavailable {
            method: method.to_owned(),
            attempts: self.attempts,
            detail: last,
        })
    }
}
