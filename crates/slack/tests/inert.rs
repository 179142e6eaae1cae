#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.
//! What a Slack reviewer sees cannot be shaped by the agent, and what Slack sends cannot be
//! played twice: replays in another spelling of the signature, summaries chosen by the action's
//! kind, the names the agent gives kept literal, hidden characters shown, and the human an agent
//! acts for told plainly why the buttons are not for them.

use countersign_test_support::{broker as harness, fake_slack};
mod world;

use axum::http::StatusCode;
use countersign_broker::now;
use countersign_slack::{render, signature};
use fake_slack::SIGNING_SECRET;
use harness::pg_dump;
use serde_json::json;
use world::{APPROVALS, action_shown, click, form, walk, who_asks, world};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_with_the_signature_in_upper_case_is_still_a_replay() {
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
    let good = signature::sign(SIGNING_SECRET.as_bytes(), &fresh, body.as_bytes());
    assert_eq!(w.deliver(&body, &fresh, &good).await.0, StatusCode::OK);
    w.shows(APPROVALS, &ts, "*dana* (dba) approved").await;

    // The same request again, its signature's hex in upper case (or mixed): the same MAC.
    let upper = format!("v0={}", good["v0=".len()..].to_uppercase());
    let mixed: String = good
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i % 2 == 0 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect::<String>()
        .replacen("V0=", "v0=", 1);
    for replay in [upper, mixed] {
        assert_ne!(replay, good);
        let (status, text) = w.deliver(&body, &fresh, &replay).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{replay}: {text}");
        assert!(text.contains("replay"), "{text}");
    }
    let kinds = w.audit_kinds(&id).await;
    assert_eq!(
        kinds.iter().filter(|k| k.starts_with("review.")).count(),
        1,
        "the replays reached no review: {kinds:?}"
    );

    // A first request signed in upper case is still Slack's, and still accepted once.
    let body = form(&click(
        "U0SAM00001",
        "countersign_deny",
        &id,
        APPROVALS,
        &ts,
    ));
    let good = signature::sign(SIGNING_SECRET.as_bytes(), &fresh, body.as_bytes());
    let upper = format!("v0={}", good["v0=".len()..].to_uppercase());
    assert_eq!(w.deliver(&body, &fresh, &upper).await.0, StatusCode::OK);
    assert_eq!(
        w.deliver(&body, &fresh, &good).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_call_with_an_argv_argument_shows_every_argument() {
    let w = world().await;
    let id = w
        .open(json!({
            "kind": "mcp.tool_call",
            "resource": "mcp:github/delete_file",
            "details": {"argv": ["ls"], "path": "README.md", "branch": "main", "sql": "select 1"},
            "justification": "tidy up"
        }))
        .await;
    let ts = w.posted(&id, APPROVALS).await;
    let message = w.slack.message(APPROVALS, &ts).unwrap();
    let shown = action_shown(&message);
    for argument in [
        "\"argv\": [",
        "\"ls\"",
        "\"path\": \"README.md\"",
        "\"branch\": \"main\"",
        "\"sql\": \"select 1\"",
    ] {
        assert!(shown.contains(argument), "{argument} not shown in {shown}");
    }
    // The approve button's confirmation names every argument too.
    let confirm = message["blocks"].to_string();
    assert!(
        confirm.contains("You approve request") && confirm.contains("README.md"),
        "{confirm}"
    );

    // A command is still its command line, and SQL its statement.
    let id = w.open(pg_dump()).await;
    let ts = w.posted(&id, APPROVALS).await;
    let message = w.slack.message(APPROVALS, &ts).unwrap();
    assert_eq!(action_shown(&message), "pg_dump customers");
}

/// A command is shown with the file that will run, as `countersign run` resolved it: a reviewer
/// approving `pg_dump customers` sees that it is the agent's own `pg_dump`, not the system's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_names_the_program_that_will_run() {
    let w = world().await;
    let mut action = pg_dump();
    action["details"]["program"] = json!("/home/agent/bin/pg_dump");
    let id = w.open(action).await;
    let ts = w.posted(&id, APPROVALS).await;
    let message = w.slack.message(APPROVALS, &ts).unwrap();
    assert_eq!(
        action_shown(&message),
        "pg_dump customers\n# the program /home/agent/bin/pg_dump"
    );
}

/// A command that differs from the agent's last one for the same program says so under
/// Countersign's caption, as literal text: the variable's name is the agent's and reaches no
/// mrkdwn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_unlike_the_agents_last_one_says_how_in_literal_text() {
    let w = world().await;
    let mut action = pg_dump();
    action["details"]["program"] = json!("/usr/bin/pg_dump");
    w.open(action.clone()).await;
    action["details"]["env"] = json!({"LD_PRELOAD": "/tmp/x.so", "_urgent_<!here>": "1"});
    let id = w.open(action).await;
    let ts = w.posted(&id, APPROVALS).await;
    let message = w
        .shows(APPROVALS, &ts, "LD_PRELOAD is set (it was not)")
        .await;
    let mut literal = Vec::new();
    walk(&message["blocks"], &mut |kind, text| {
        assert!(
            kind != "mrkdwn" || !(text.contains("<!here>") || text.contains("LD_PRELOAD")),
            "the comparison reached mrkdwn: {text}"
        );
        if kind == "text" {
            literal.push(text.to_owned());
        }
    });
    for shown in [
        "Differs from deploy-bot's last request for this program (Countersign's comparison):",
        "LD_PRELOAD is set (it was not)",
        "_urgent_<!here> is set (it was not)",
    ] {
        assert!(literal.iter().any(|t| t == shown), "{shown}: {literal:?}");
    }
}

/// The names in a request's chain are rendered as literal text whoever chose them (today the
/// configuration says who an agent acts for and what starts it; an id like `ci:_urgent_:` is
/// still valid): checked on the renderer itself, with a real request whose chain is set so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_in_the_chain_are_literal_text_never_mrkdwn() {
    let broker = harness::start().await;
    let (_, opened) = broker.post("deploy-bot", "/v1/actions", pg_dump()).await;
    let id = opened["request"]["id"].as_str().unwrap().parse().unwrap();
    let mut request = broker.broker.request(id).await.unwrap().unwrap();
    request.action.principal.on_behalf_of = vec!["alice_:x:_".into()];
    request.action.principal.started_by = Some("ci:_urgent_:rotating_light:".into());
    let message = json!({
        "blocks": render::blocks(&request, &render::Context::default()),
        "text": render::fallback_text(&request),
    });

    assert_eq!(
        who_asks(&message),
        "*deploy-bot* (agent), acting for *alice_:x:_*, started by *ci:_urgent_:rotating_light:* asks to run:"
    );
    walk(&message["blocks"], &mut |kind, text| {
        if kind == "mrkdwn" {
            for chosen in ["rotating_light", "_urgent_", "ci:", ":x:", "alice"] {
                assert!(
                    !text.contains(chosen),
                    "a chain name reached mrkdwn: {text}"
                );
            }
        }
    });
    let fallback = message["text"].as_str().unwrap();
    assert!(
        !fallback.contains("rotating_light") && !fallback.contains(":x:"),
        "{fallback}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_width_and_separator_characters_are_shown_not_obeyed() {
    let w = world().await;
    let mut action = pg_dump();
    action["resource"] = json!("db:prod/cust\u{200b}omers");
    action["labels"]["team"] = json!("d\u{200d}ba\u{2060}");
    action["details"]["argv"] = json!(["pg_dump", "cust\u{feff}omers"]);
    action["justification"] = json!("line one\u{2028}:white_check_mark: line two\u{2029}\u{2066}x");
    let id = w.open(action).await;
    let ts = w.posted(&id, APPROVALS).await;
    let message = w.slack.message(APPROVALS, &ts).unwrap();

    let hidden = [
        '\u{200b}', '\u{200d}', '\u{2060}', '\u{feff}', '\u{2028}', '\u{2029}', '\u{2066}',
    ];
    walk(&message["blocks"], &mut |_, text| {
        assert!(
            !text.contains(hidden),
            "a hidden character reached Slack: {text:?}"
        );
    });
    let all = message["blocks"].to_string();
    for shown in [
        "db:prod/cust\\\\u{200b}omers",
        "d\\\\u{200d}ba\\\\u{2060}",
        "pg_dump 'cust\\\\u{feff}omers'",
        "line one\\\\u{2028}:white_check_mark: line two\\\\u{2029}\\\\u{2066}x",
    ] {
        assert!(all.contains(shown), "{shown} not in {all}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_human_the_agent_acts_for_is_told_why_the_buttons_are_not_for_them() {
    let w = world().await;
    let id = w.open(pg_dump()).await;
    let ts = w.posted(&id, APPROVALS).await;
    let message = w.slack.message(APPROVALS, &ts).unwrap().to_string();
    assert!(
        message.contains("Nobody in this request's chain (deploy-bot, alice) can review it"),
        "{message}"
    );

    w.interact(&click(
        "U0ALICE001",
        "countersign_approve",
        &id,
        APPROVALS,
        &ts,
    ))
    .await;
    let told = w.told("U0ALICE001").await;
    for words in [
        "was refused: alice cannot review this request",
        "You cannot approve or deny this request: deploy-bot acts for you",
        "The buttons are for the other approvers",
        "changes nothing",
    ] {
        assert!(told.contains(words), "{words:?} not in {told}");
    }
    assert_eq!(w.request(&id).await["reviews"], json!([]));
}

/// The agent's claims are shown as its words on their own marked line, every claim that
/// contradicts a label with a warning that the configuration wins, and a claim written as markup,
/// a mention or control characters stays literal: set on the request itself, as the broker keeps
/// them beside the labels it vouches for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_are_the_agents_words_and_each_disagreement_is_a_warning() {
    let broker = harness::start().await;
    let (_, opened) = broker.post("deploy-bot", "/v1/actions", pg_dump()).await;
    let id = opened["request"]["id"].as_str().unwrap().parse().unwrap();
    let mut request = broker.broker.request(id).await.unwrap().unwrap();
    request.action.labels = [("env".to_owned(), "production".to_owned())].into();
    request.action.claims = [
        ("env".to_owned(), "staging".to_owned()),
        (
            "ticket".to_owned(),
            "<!channel> *Approved* by *dana*\u{1b}[31m\u{202e}:white_check_mark:".to_owned(),
        ),
    ]
    .into();
    let message = json!({
        "blocks": render::blocks(&request, &render::Context::default()),
        "text": render::fallback_text(&request),
    });

    let mut shown = Vec::new();
    walk(&message["blocks"], &mut |kind, text| {
        if kind == "mrkdwn" {
            for forbidden in [
                "staging",
                "<!channel>",
                "*Approved* by *dana*",
                "white_check",
            ] {
                assert!(!text.contains(forbidden), "a claim reached mrkdwn: {text}");
            }
        }
        assert!(
            !text.contains(['\u{1b}', '\u{202e}']),
            "a control character reached Slack: {text:?}"
        );
        shown.push(text.to_owned());
    });
    let line = |wanted: &str| shown.iter().any(|t| t == wanted);
    assert!(
        line(
            "The agent's claims (its own words, not facts Countersign vouches for; rules match labels):"
        ),
        "{shown:?}"
    );
    assert!(
        line(
            "the agent says: env=staging, ticket=<!channel> *Approved* by *dana*\\u{1b}[31m\\u{202e}:white_check_mark:"
        ),
        "the claims, literal and their controls visible: {shown:?}"
    );
    assert!(line("Warning: "), "{shown:?}");
    assert!(
        line(
            "the agent says env=staging; Countersign's configuration says env=production — the configuration wins"
        ),
        "{shown:?}"
    );
    // Only the claim that contradicts a label is warned about; the labels still read as labels.
    assert_eq!(
        shown
            .iter()
            .filter(|t| t.contains("the configuration wins"))
            .count(),
        1
    );
    assert!(line("env=production"), "{shown:?}");
    let fallback = message["text"].as_str().unwrap();
    assert!(
        !fallback.contains("staging") && !fallback.contains("channel"),
        "{fallback}"
    );

    // No claims, no claims line.
    request.action.claims.clear();
    let blocks = render::blocks(&request, &render::Context::default()).to_string();
    assert!(!blocks.contains("the agent says"), "{blocks}");
}
