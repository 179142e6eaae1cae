#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.
//! Slack end to end, in process: a broker with the example policy, the Slack integration talking
//! to a local server that speaks Slack's Web API, and interactivity requests shaped like Slack's
//! documented `block_actions` and `view_submission` payloads, signed as Slack signs them.

use countersign_test_support::{broker as harness, fake_slack};

mod world;

use std::time::Duration;

use axum::http::StatusCode;
use countersign_broker::now;
use countersign_slack::{Secrets, Settings, Slack, signature};
use fake_slack::{BOT_TOKEN, Failure, SIGNING_SECRET};
use harness::pg_dump;
use serde_json::json;
use world::{APPROVALS, DBA, click, deny_submission, form, walk, who_asks, world};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_posted_reviewed_from_slack_and_its_message_kept_true() {
    let w = world().await;
    let id = w.open(pg_dump()).await;

    // Posted to the default channel and to the one its rule names, with the action and buttons.
    let ts = w.posted(&id, APPROVALS).await;
    let dba_ts = w.posted(&id, DBA).await;
    let message = w.slack.message(APPROVALS, &ts).unwrap();
    let text = message.to_string();
    for needle in [
        "Approval requested: shell.exec",
        "pg_dump customers",
        "db:prod/customers",
        "env=production",
        "prod-db-export",
        "a DBA and an SRE must both agree",
        "0 of 2 from members of dba or sre, covering 0 of 2 groups",
        "countersign_approve",
        "countersign_deny",
        &format!("/requests/{id}|Request {id}>"),
        "Expires <!date^",
    ] {
        assert!(
            text.contains(needle),
            "the message lacks {needle:?}: {text}"
        );
    }
    assert_eq!(
        who_asks(&message),
        "*deploy-bot* (agent), acting for *alice* asks to run:"
    );
    assert!(
        w.audited(&id, "notification.posted")
            .await
            .contains("#approvals")
    );

    // dana (by her configured Slack id) approves: acknowledged at once, recorded as from Slack.
    let (status, body) = w
        .interact(&click(
            "U0DANA0001",
            "countersign_approve",
            &id,
            APPROVALS,
            &ts,
        ))
        .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, ""));
    w.shows(APPROVALS, &ts, "*dana* (dba) approved via slack")
        .await;
    w.shows(DBA, &dba_ts, "*dana* (dba) approved via slack")
        .await;
    w.shows(
        APPROVALS,
        &ts,
        "1 of 2 from members of dba or sre, covering 1 of 2 groups",
    )
    .await;
    let review = &w.request(&id).await["reviews"][0];
    assert_eq!(
        (
            review["reviewer"].as_str(),
            review["channel"].as_str(),
            review["authentication"].as_str()
        ),
        (Some("dana"), Some("slack"), Some("slack"))
    );

    // sam, known to Slack only by his email (users.lookupByEmail), approves: the request is approved.
    w.interact(&click(
        "U0SAM00001",
        "countersign_approve",
        &id,
        APPROVALS,
        &ts,
    ))
    .await;
    let approved = w.shows(APPROVALS, &ts, "*Approved*").await;
    assert!(
        !approved.to_string().contains("countersign_approve"),
        "no buttons once decided"
    );
    assert_eq!(w.request(&id).await["state"], "approved");
    assert!(!w.slack.calls("users.lookupByEmail").is_empty());

    // The agent runs it and reports: the message shows the outcome, and is then left alone.
    let (_, waited) = w
        .broker
        .get("deploy-bot", &format!("/v1/requests/{id}/wait?timeout=1s"))
        .await;
    let grant = waited["grant"]["token"].as_str().unwrap();
    let (status, _) = w
        .broker
        .post(
            "deploy-bot",
            "/v1/grants/consume",
            json!({ "token": grant, "digest": waited["digest"] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    w.broker
        .post(
            "deploy-bot",
            &format!("/v1/requests/{id}/outcome"),
            json!({ "status": "ran", "exit_code": 0 }),
        )
        .await;
    w.shows(
        APPROVALS,
        &ts,
        "*Outcome*: the action ran with exit status 0",
    )
    .await;
    w.shows(DBA, &dba_ts, "*Outcome*: the action ran with exit status 0")
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !w
        .broker
        .broker
        .deliveries(id.parse().unwrap())
        .await
        .unwrap()
        .iter()
        .all(|m| m.settled)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the messages were never settled"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_asks_why_and_the_requester_reads_it() {
    let w = world().await;
    let id = w.open(pg_dump()).await;
    let ts = w.posted(&id, APPROVALS).await;

    w.interact(&click(
        "U0DANA0001",
        "countersign_deny",
        &id,
        APPROVALS,
        &ts,
    ))
    .await;
    let opened = w
        .slack
        .eventually("the deny dialog opens", |s| s.calls("views.open").pop())
        .await;
    assert_eq!(
        opened.body["trigger_id"],
        "1763700001.123456.0123456789abcdef"
    );
    assert_eq!(
        opened.body["view"]["callback_id"],
        "countersign_deny_reason"
    );
    assert!(
        opened.body["view"]["private_metadata"]
            .as_str()
            .unwrap()
            .contains(&id)
    );
    assert_eq!(
        w.request(&id).await["state"],
        "pending",
        "opening the dialog decides nothing"
    );

    // An empty reason keeps the dialog open with an error.
    let (status, body) = w
        .interact(&deny_submission("U0DANA0001", &id, APPROVALS, "  "))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("\"response_action\":\"errors\""), "{body}");

    let (status, body) = w
        .interact(&deny_submission(
            "U0DANA0001",
            &id,
            APPROVALS,
            "Not during the freeze",
        ))
        .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, ""));
    w.shows(APPROVALS, &ts, "*Denied* by *dana*").await;
    let request = w.request(&id).await;
    assert_eq!(request["state"], "denied");
    assert_eq!(request["reviews"][0]["comment"], "Not during the freeze");
    let message = w.slack.message(APPROVALS, &ts).unwrap().to_string();
    assert!(
        message.contains("dana: “Not during the freeze”"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_stale_and_replayed_clicks_are_refused_and_record_nothing() {
    let w = world().await;
    let id = w.open(pg_dump()).await;
    let ts = w.posted(&id, APPROVALS).await;
    let body = form(&click(
        "U0DANA0001",
        "countersign_approve",
        &id,
        APPROVALS,
        &ts,
    ));
    let fresh = (now().unix_millis() / 1000).to_string();

    // Signed with another secret.
    let forged = signature::sign(b"not the signing secret", &fresh, body.as_bytes());
    let (status, text) = w.deliver(&body, &fresh, &forged).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(text.contains("does not match"), "{text}");
    // Signed properly, but the body changed after (another request id, another user).
    let good = signature::sign(SIGNING_SECRET.as_bytes(), &fresh, body.as_bytes());
    let tampered = body.replace("U0DANA0001", "U0SAM00001");
    assert_eq!(
        w.deliver(&tampered, &fresh, &good).await.0,
        StatusCode::UNAUTHORIZED
    );
    // No signature at all.
    assert_eq!(
        w.deliver(&body, &fresh, "").await.0,
        StatusCode::UNAUTHORIZED
    );
    // Properly signed six minutes ago: stale.
    let old = (now().unix_millis() / 1000 - 360).to_string();
    let stale = signature::sign(SIGNING_SECRET.as_bytes(), &old, body.as_bytes());
    let (status, text) = w.deliver(&body, &old, &stale).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(text.contains("more than 5 minutes"), "{text}");

    // From another workspace, properly signed: refused.
    let mut foreign = click("U0DANA0001", "countersign_approve", &id, APPROVALS, &ts);
    foreign["team"]["id"] = json!("T0OTHER0001");
    foreign["user"]["team_id"] = json!("T0OTHER0001");
    assert_eq!(w.interact(&foreign).await.0, StatusCode::FORBIDDEN);

    assert_eq!(
        w.request(&id).await["reviews"],
        json!([]),
        "nothing counted as a review"
    );

    // The genuine click is accepted once; the same request played again is refused.
    assert_eq!(w.deliver(&body, &fresh, &good).await.0, StatusCode::OK);
    let (status, text) = w.deliver(&body, &fresh, &good).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(text.contains("replay"), "{text}");
    w.shows(APPROVALS, &ts, "*dana* (dba) approved").await;
    assert_eq!(w.request(&id).await["reviews"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_slack_users_and_self_approvals_are_refused_with_the_reason() {
    let w = world().await;
    let id = w.open(pg_dump()).await;
    let ts = w.posted(&id, APPROVALS).await;

    // A Slack user no principal maps to.
    assert_eq!(
        w.interact(&click(
            "U0STRANGER1",
            "countersign_approve",
            &id,
            APPROVALS,
            &ts
        ))
        .await
        .0,
        StatusCode::OK
    );
    let told = w.told("U0STRANGER1").await;
    assert!(
        told.contains("does not know your Slack account (U0STRANGER1)"),
        "{told}"
    );
    assert!(told.contains("slack_user = \"U0STRANGER1\""), "{told}");
    assert!(
        w.audited(&id, "review.refused")
            .await
            .contains("not linked to any approver")
    );

    // alice is the human the agent acts for: she may not approve its request, even from Slack.
    w.interact(&click(
        "U0ALICE001",
        "countersign_approve",
        &id,
        APPROVALS,
        &ts,
    ))
    .await;
    let told = w.told("U0ALICE001").await;
    assert!(told.contains("was refused"), "{told}");
    assert!(
        told.contains("alice is the person the requester acts for"),
        "{told}"
    );

    let request = w.request(&id).await;
    assert_eq!(request["reviews"], json!([]));
    assert_eq!(request["state"], "pending");
    let refused = w
        .audit_kinds(&id)
        .await
        .iter()
        .filter(|k| *k == "review.refused")
        .count();
    assert_eq!(refused, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_text_cannot_mention_link_format_or_forge_fields() {
    let w = world().await;
    let mut action = pg_dump();
    action["details"]["argv"] = json!(["pg_dump", "customers", "<!channel>", "`x`"]);
    action["labels"]["team"] = json!("<@U0DANA0001> &amp;");
    action["justification"] = json!(
        "<!channel> urgent, see <https://evil.example/login|the runbook>\n:white_check_mark: *Approved* by *dana* (dba)\u{1b}[31m\u{202e}gnp.exe"
    );
    let id = w.open(action).await;
    let ts = w.posted(&id, APPROVALS).await;
    let message = w.slack.message(APPROVALS, &ts).unwrap();

    let mut checked = 0;
    walk(&message["blocks"], &mut |kind, text| {
        checked += 1;
        match kind {
            // Parsed by Slack: only Countersign's own words, never the agent's.
            "mrkdwn" => {
                for forbidden in [
                    "<!channel>",
                    "<@U0DANA",
                    "evil.example",
                    "*Approved* by *dana*",
                    "\u{1b}",
                    "\u{202e}",
                ] {
                    assert!(
                        !text.contains(forbidden),
                        "agent text reached mrkdwn: {text}"
                    );
                }
            }
            // Not parsed; escaped all the same, so nothing becomes a mention or a link.
            "plain_text" => assert!(!text.contains('<') && !text.contains('\u{1b}'), "{text}"),
            // rich_text: literal text, shown as the agent's, controls made visible.
            _ => assert!(
                !text.contains('\u{1b}') && !text.contains('\u{202e}'),
                "{text}"
            ),
        }
    });
    assert!(checked > 10);
    let all = message["blocks"].to_string();
    assert!(all.contains("its own words, not verified by Countersign"));
    assert!(
        all.contains("\\\\u{1b}[31m\\\\u{202e}gnp.exe"),
        "controls shown as escapes: {all}"
    );
    assert!(
        all.contains("&lt;@U0DANA0001&gt; &amp;amp;"),
        "labels escaped: {all}"
    );
    // The notification text (which Slack does parse) holds none of the agent's words.
    let fallback = message["text"].as_str().unwrap();
    assert!(
        !fallback.contains("channel") && !fallback.contains("evil"),
        "{fallback}"
    );
    assert_eq!(
        w.request(&id).await["reviews"],
        json!([]),
        "nothing was approved by the text"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_outages_are_retried_and_never_block_a_request() {
    let w = world().await;
    // Rate limited once (Retry-After 1s), then two server errors, then through.
    w.slack.fail_next(
        "chat.postMessage",
        &[
            Failure::RateLimited { retry_after: 1 },
            Failure::ServerError,
            Failure::ServerError,
        ],
    );
    let started = std::time::Instant::now();
    let id = w.open(pg_dump()).await;
    w.posted(&id, APPROVALS).await;
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
    assert!(w.slack.calls("chat.postMessage").len() >= 4);
    w.posted(&id, DBA).await;

    // A channel Slack refuses (the app was never invited): recorded, and the request stays
    // reviewable everywhere else.
    w.slack.fail_next(
        "chat.postMessage",
        &[
            Failure::Error("not_in_channel"),
            Failure::Error("not_in_channel"),
        ],
    );
    let id = w.open(pg_dump()).await;
    let failed = w.audited(&id, "notification.failed").await;
    assert!(failed.contains("not_in_channel"), "{failed}");
    assert!(failed.contains("invite the Countersign app"), "{failed}");
    // Both channels' refusals are recorded before the posts are counted (they run apart).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while w
        .audit_kinds(&id)
        .await
        .iter()
        .filter(|k| *k == "notification.failed")
        .count()
        < 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the second channel's refusal was never recorded"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        w.slack
            .calls("chat.postMessage")
            .iter()
            .filter(|c| c.body["blocks"].to_string().contains(&id))
            .count(),
        2,
        "a refusal is not retried"
    );
    for who in ["dana", "sam"] {
        let (status, body) = w
            .broker
            .post(
                who,
                &format!("/v1/requests/{id}/reviews"),
                json!({ "verdict": "approve" }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(w.request(&id).await["state"], "approved");
}

#[test]
fn the_signature_scheme_matches_slacks_own_sdk() {
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/peers/python/.venv/bin/python");
    assert!(
        python.exists(),
        "the Python peers are not installed: run scripts/install-test-peers"
    );
    let body = form(&click(
        "U0DANA0001",
        "countersign_approve",
        "r_0123456789abcdef0123456789abcdef",
        APPROVALS,
        "1.2",
    ));
    let timestamp = (now().unix_millis() / 1000).to_string();
    let ours = signature::sign(SIGNING_SECRET.as_bytes(), &timestamp, body.as_bytes());
    let script = r#"
import sys
from slack_sdk.signature import SignatureVerifier
secret, timestamp, body, ours = sys.argv[1:5]
verifier = SignatureVerifier(signing_secret=secret)
print(verifier.is_valid(body=body, timestamp=timestamp, signature=ours))
print(verifier.is_valid(body=body + "x", timestamp=timestamp, signature=ours))
print(verifier.generate_signature(timestamp=timestamp, body=body))
"#;
    let output = std::process::Command::new(&python)
        .args(["-c", script, SIGNING_SECRET, &timestamp, &body, &ours])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[..2],
        ["True", "False"],
        "slack_sdk accepts our signature and only it"
    );
    assert_eq!(lines[2], ours, "slack_sdk signs exactly as we do");
    let now_secs = now().unix_millis() / 1000;
    assert_eq!(
        signature::verify(
            SIGNING_SECRET.as_bytes(),
            Some(&timestamp),
            Some(lines[2]),
            body.as_bytes(),
            now_secs
        ),
        Ok(())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_and_expired_requests_say_so_and_lose_their_buttons() {
    let w = world().await;
    let id = w.open(pg_dump()).await;
    let ts = w.posted(&id, APPROVALS).await;
    let (status, _) = w
        .broker
        .post(
            "deploy-bot",
            &format!("/v1/requests/{id}/cancel"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let cancelled = w.shows(APPROVALS, &ts, "*Cancelled* by *deploy-bot*").await;
    assert!(!cancelled.to_string().contains("countersign_approve"));

    // A rule whose requests expire after a second.
    let policy = r#"
version = 1
default = "deny"
[[rules]]
id = "quick"
decision = "require_approval"
reason = "Try the expiry"
match.kind = "shell.exec"
approvers = { groups = ["sre"] }
timeout = "1s"
"#;
    let broker = harness::start_with(policy, |store| store).await;
    let table: toml::Table = format!("channel = \"#approvals\"\napi_url = \"{}\"", w.slack.url)
        .parse()
        .unwrap();
    let secrets = Secrets {
        bot_token: BOT_TOKEN.into(),
        signing_secret: SIGNING_SECRET.into(),
    };
    Slack::start(
        broker.broker.clone(),
        Settings::parse(&table).unwrap(),
        secrets,
    )
    .unwrap();
    let (_, opened) = broker.post("deploy-bot", "/v1/actions", pg_dump()).await;
    let id = opened["request"]["id"].as_str().unwrap().to_owned();
    let ts = w.posted(&id, APPROVALS).await;
    let expired = w.shows(APPROVALS, &ts, "*Expired*").await.to_string();
    assert!(
        expired.contains("nobody approved in time. It was not denied"),
        "{expired}"
    );
}
