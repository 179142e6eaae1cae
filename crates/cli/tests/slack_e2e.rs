#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.
//! Slack with real processes: `countersign serve` configured with `[slack]` (secrets from the
//! environment) against a local server speaking Slack's Web API. The message posted by one broker
//! process is updated by the next one after a crash: where it is lives in the store.

use countersign_test_support::fake_slack;
mod support;

use countersign_slack::signature;
use fake_slack::{BOT_TOKEN, FakeSlack, SIGNING_SECRET};
use serde_json::{Value, json};
use support::{POLICY, start_server_with, token};

fn now_secs() -> i64 {
    countersign_broker::now().unix_millis() / 1000
}

/// Clicks Approve on request `id` as Slack user `user`, signed as Slack signs it.
async fn approve(http: &reqwest::Client, url: &str, user: &str, id: &str) -> reqwest::StatusCode {
    let payload = json!({
        "type": "block_actions",
        "user": { "id": user, "username": user, "name": user, "team_id": "T0TEAM0001" },
        "api_app_id": "A0COUNTERSIGN",
        "container": { "type": "message", "message_ts": "1763700000.000001", "channel_id": "C0APPROVALS", "is_ephemeral": false },
        "trigger_id": "1763700001.123456.abcdef",
        "team": { "id": "T0TEAM0001", "domain": "acme" },
        "channel": { "id": "C0APPROVALS", "name": "approvals" },
        "response_url": "https://hooks.slack.com/actions/T0TEAM0001/1/abc",
        "actions": [{ "action_id": "countersign_approve", "block_id": "countersign_review", "type": "button", "value": id, "action_ts": "1763700001.000200" }]
    });
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &payload.to_string())
        .finish();
    let timestamp = now_secs().to_string();
    let sig = signature::sign(SIGNING_SECRET.as_bytes(), &timestamp, body.as_bytes());
    http.post(format!("{url}/slack/interactions"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", timestamp)
        .header("x-slack-signature", sig)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_posted_before_a_crash_is_updated_after_it() {
    let slack = FakeSlack::start().await;
    let extra = format!(
        "\n[slack]\nchannel = \"#approvals\"\napi_url = \"{}\"\nbot_token_env = \"E2E_SLACK_TOKEN\"\nsigning_secret_env = \"E2E_SLACK_SECRET\"\n",
        slack.url
    );
    let env = [
        ("E2E_SLACK_TOKEN", BOT_TOKEN),
        ("E2E_SLACK_SECRET", SIGNING_SECRET),
    ];
    let mut server = start_server_with("slack", POLICY, &extra, &env);
    let http = reqwest::Client::new();

    let (status, opened): (_, Value) = {
        let response = http
            .post(format!("{}/v1/actions", server.url))
            .bearer_auth(token("deploy-bot"))
            .json(&json!({ "kind": "shell.exec", "resource": "host:db-1", "details": { "argv": ["sh", "-c", "psql -f migrate.sql"] } }))
            .send()
            .await
            .unwrap();
        (response.status(), response.json().await.unwrap())
    };
    assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{opened}");
    let id = opened["request"]["id"].as_str().unwrap().to_owned();

    let posted = |channel: &'static str| {
        let id = id.clone();
        move |s: &FakeSlack| {
            s.messages_in(channel)
                .into_iter()
                .find(|(_, m)| m.to_string().contains(&id))
                .map(|(ts, _)| ts)
        }
    };
    let ts = slack
        .eventually("posted to #approvals", posted("C0APPROVALS"))
        .await;
    let sre_ts = slack
        .eventually("posted to #sre, named by the rule", posted("C0SRE00001"))
        .await;
    assert_eq!(
        approve(&http, &server.url, "U0DANA0001", &id).await,
        reqwest::StatusCode::OK
    );
    slack
        .eventually("dana's approval shown", |s| {
            s.message("C0APPROVALS", &ts)
                .filter(|m| m.to_string().contains("*dana* (dba) approved"))
        })
        .await;

    server.crash_and_restart();

    // The new process updates the messages the old one posted, and posts nothing new.
    assert_eq!(
        approve(&http, &server.url, "U0SAM00001", &id).await,
        reqwest::StatusCode::OK
    );
    for (channel, ts) in [("C0APPROVALS", &ts), ("C0SRE00001", &sre_ts)] {
        let message = slack
            .eventually("the approval shown after the restart", |s| {
                s.message(channel, ts)
                    .filter(|m| m.to_string().contains("*Approved*"))
            })
            .await
            .to_string();
        assert!(message.contains("*sam* (sre) approved"), "{message}");
        assert!(message.contains("*dana* (dba) approved"), "{message}");
    }
    let posts = slack
        .calls("chat.postMessage")
        .iter()
        .filter(|c| c.body.to_string().contains(&id))
        .count();
    assert_eq!(posts, 2, "one message per channel, never reposted");
    let request = server.request("sam", &id).await;
    assert_eq!(request["state"], "approved");
    assert!(
        request["reviews"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["channel"] == "slack")
    );
}
