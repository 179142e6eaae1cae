//! `POST /slack/interactions`: Slack's interactivity requests (button clicks, the deny modal's
//! submission). Each is verified first — signature over the raw body, timestamp within five
//! minutes, never seen before — then acknowledged at once (Slack wants an answer within three
//! seconds); the review itself runs after, through the broker's one review path, as the principal
//! the Slack user maps to. Refused reviewers get an ephemeral message saying why.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use countersign_approval::{Authentication, Channel, Verdict};
use countersign_audit::{EventDraft, EventKind};
use countersign_broker::{ReviewInput, now};
use countersign_model::RequestId;
use serde_json::{Value, json};

use crate::Shared;
use crate::render::{self, APPROVE, DENY, DENY_MODAL, REASON_BLOCK, REASON_INPUT};
use crate::signature;

/// One review asked for from Slack.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Click {
    user: String,
    request: RequestId,
    verdict: Verdict,
    comment: Option<String>,
    /// Where to answer the reviewer privately.
    channel: Option<String>,
}

pub async fn receive(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now_secs = now().unix_millis().div_euclid(1000);
    let sig = header("x-slack-signature");
    let checked = signature::verify(
        shared.secrets.signing_secret.as_bytes(),
        header("x-slack-request-timestamp"),
        sig,
        &body,
        now_secs,
    )
    .and_then(|()| shared.replays.first_time(sig.unwrap_or_default(), now_secs));
    if let Err(error) = checked {
        tracing::warn!(%error, "refused a Slack interaction");
        return (StatusCode::UNAUTHORIZED, format!("refused: {error}"));
    }
    let payload = match parse_payload(&body) {
        Ok(payload) => payload,
        Err(problem) => return (StatusCode::BAD_REQUEST, problem),
    };
    if let Some(team) = &shared.settings.team_id {
        let from = payload["team"]["id"]
            .as_str()
            .or_else(|| payload["user"]["team_id"].as_str());
        if from != Some(team.as_str()) {
            tracing::warn!(?from, "refused a Slack interaction from another workspace");
            return (
                StatusCode::FORBIDDEN,
                "refused: this Slack workspace is not the one configured in slack.team_id".into(),
            );
        }
    }
    match payload["type"].as_str() {
        Some("block_actions") => {
            for action in payload["actions"].as_array().into_iter().flatten() {
                let id = action["value"]
                    .as_str()
                    .and_then(|v| v.parse::<RequestId>().ok());
                let Some(request) = id else { continue };
                match action["action_id"].as_str() {
                    Some(APPROVE) => {
                        let click = Click {
                            user: user(&payload),
                            request,
                            verdict: Verdict::Approve,
                            comment: None,
                            channel: channel(&payload),
                        };
                        tokio::spawn(apply(Arc::clone(&shared), click));
                    }
                    Some(DENY) => {
                        let trigger = payload["trigger_id"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned();
                        tokio::spawn(ask_reason(
                            Arc::clone(&shared),
                            request,
                            trigger,
                            channel(&payload),
                        ));
                    }
                    _ => {}
                }
            }
            (StatusCode::OK, String::new())
        }
        Some("view_submission") if payload["view"]["callback_id"] == DENY_MODAL => {
            let metadata: Value = payload["view"]["private_metadata"]
                .as_str()
                .and_then(|m| serde_json::from_str(m).ok())
                .unwrap_or(Value::Null);
            let request = metadata["request"].as_str().and_then(|v| v.parse().ok());
            let reason = payload["view"]["state"]["values"][REASON_BLOCK][REASON_INPUT]["value"]
                .as_str()
                .map(str::trim)
                .filter(|r| !r.is_empty());
            match (request, reason) {
                (Some(request), Some(reason)) => {
                    let click = Click {
                        user: user(&payload),
                        request,
                        verdict: Verdict::Deny,
                        comment: Some(reason.to_owned()),
                        channel: metadata["channel"].as_str().map(str::to_owned),
                    };
                    tokio::spawn(apply(Arc::clone(&shared), click));
                    // An empty 200 closes the modal.
                    (StatusCode::OK, String::new())
                }
                (_, None) => (
                    StatusCode::OK,
                    json!({ "response_action": "errors", "errors": { REASON_BLOCK: "Say why you deny it: the requester sees this." } }).to_string(),
                ),
                (None, _) => (StatusCode::BAD_REQUEST, "the modal names no request".into()),
            }
        }
        // Other interactions (a closed modal, a link button) need no answer but the acknowledgement.
        _ => (StatusCode::OK, String::new()),
    }
}

/// The JSON of `payload=…` in a form-encoded body.
fn parse_payload(body: &[u8]) -> Result<Value, String> {
    let payload = form_urlencoded::parse(body)
        .find(|(key, _)| key == "payload")
        .map(|(_, value)| value.into_owned())
        .ok_or("the body has no payload field: Slack sends payload=<JSON>, form-encoded")?;
    serde_json::from_str(&payload).map_err(|e| format!("the payload is not JSON: {e}"))
}

fn user(payload: &Value) -> String {
    payload["user"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn channel(payload: &Value) -> Option<String> {
    payload["channel"]["id"]
        .as_str()
        .or_else(|| payload["container"]["channel_id"].as_str())
        .map(str::to_owned)
}

/// Opens the modal that asks why; the trigger is valid for three seconds, so this runs at once.
async fn ask_reason(shared: Arc<Shared>, id: RequestId, trigger: String, channel: Option<String>) {
    let request = match shared.broker.request(id).await {
        Ok(Some(request)) => request,
        Ok(None) => return,
        Err(error) => {
            tracing::error!(%error, %id, "cannot read a request to ask why it is denied");
            return;
        }
    };
    let metadata = json!({ "request": id, "channel": channel }).to_string();
    let body = json!({ "trigger_id": trigger, "view": render::deny_modal(&request, &metadata) });
    if let Err(error) = shared.api.call("views.open", &body).await {
        tracing::error!(%error, %id, "cannot open the deny dialog in Slack");
    }
}

/// Applies one review as the principal the Slack user maps to.
async fn apply(shared: Arc<Shared>, click: Click) {
    let Some(principal) = shared.directory.principal(&shared.api, &click.user).await else {
        let reason = format!(
            "Countersign does not know your Slack account ({}), so your {} was not recorded. Ask an administrator to add identities = {{ slack = \"{}\" }} to your principal (slack_user = \"{}\" in older configurations), or to give it the email of your Slack profile.",
            click.user,
            if click.verdict == Verdict::Approve {
                "approval"
            } else {
                "denial"
            },
            click.user,
            click.user
        );
        let event = EventDraft::new(
            now(),
            EventKind::ReviewRefused,
            format!(
                "Refused: Slack user {} tried to {} request {}, but is not linked to any approver.",
                click.user, click.verdict, click.request
            ),
        )
        .with_principal(format!("slack:{}", click.user))
        .with_request_id(click.request);
        if let Err(error) = shared.broker.record(vec![event]).await {
            tracing::error!(%error, "cannot record a refused review from Slack");
        }
        tell(&shared, &click, &reason).await;
        return;
    };
    let result = shared
        .broker
        .review(ReviewInput {
            reviewer: Arc::clone(&principal),
            request: click.request,
            verdict: click.verdict,
            comment: click.comment.clone(),
            channel: Channel::Slack,
            authentication: Authentication::Slack,
        })
        .await;
    if let Err(error) = result {
        let mut text = format!(
            "Your review of request {} was refused: {}.",
            click.request,
            error.message.trim_end_matches('.')
        );
        if let Some(why) = own_request(&shared, click.request, &principal.id).await {
            text.push(' ');
            text.push_str(&why);
        }
        tell(&shared, &click, &text).await;
    }
}

/// Why a reviewer in the request's own chain sees buttons they cannot use, in words: the message
/// is the same for everyone in the channel, so the buttons stay for the other approvers.
async fn own_request(shared: &Shared, id: RequestId, reviewer: &str) -> Option<String> {
    let request = shared.broker.request(id).await.ok()??;
    let relation = countersign_model::summary::own_chain(&request.action.principal, reviewer)?;
    Some(format!(
        "You cannot approve or deny this request: {relation}, and nobody reviews their own agent's request. The buttons are for the other approvers (everyone in the channel sees the same message); your click was recorded as refused and changes nothing."
    ))
}

/// An ephemeral message: only the reviewer sees it.
async fn tell(shared: &Shared, click: &Click, text: &str) {
    let Some(channel) = &click.channel else {
        tracing::warn!(user = %click.user, %text, "no channel to tell a Slack reviewer why");
        return;
    };
    let body = json!({ "channel": channel, "user": click.user, "text": render::escape(text) });
    if let Err(error) = shared.api.call("chat.postEphemeral", &body).await {
        tracing::error!(%error, "cannot tell a Slack reviewer why their review was refused");
    }
}
