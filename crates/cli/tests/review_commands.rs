#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.
//! What a reviewer reads in the terminal, through the real binary against `countersign serve`:
//! `countersign pending` and `show` sum an action up by its kind, show hidden characters as
//! escapes, and say where the denials stand in words; the agent's claims are shown as its words,
//! with a warning for each that contradicts a label; `--help` says what the command does.

mod support;

use serde_json::{Value, json};
use support::{start_server_with_policy, token};

const POLICY: &str = r#"
version = 1
default = "deny"

[[rules]]
id = "repo-delete"
decision = "require_approval"
reason = "Deleting in a repository changes what ships"
match.kind = "mcp.tool_call"
match.resource = "mcp:github/delete_*"
approvers = { groups = ["dba"], count = 1 }

[[rules]]
id = "scripted-change"
decision = "require_approval"
reason = "Scripts that change production need a DBA and an SRE"
match.kind = "shell.exec"
match.command = "sh -c *"
approvers = { groups = ["dba", "sre"], count = 2, distinct_groups = 2 }
"#;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The agent sends `action` to the broker, which must open a request; returns its id.
async fn agent_sends(url: &str, action: Value) -> String {
    agent_sends_as(url, "deploy-bot", action).await
}

/// As [`agent_sends`], with the token of agent `who`.
async fn agent_sends_as(url: &str, who: &str, action: Value) -> String {
    let response = reqwest::Client::new()
        .post(format!("{url}/v1/actions"))
        .bearer_auth(token(who))
        .json(&action)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{body}");
    body["request"]["id"].as_str().unwrap().to_owned()
}

/// `countersign ARGS…` as sam, a reviewer; its standard output, once it succeeded.
fn as_sam(server: &support::Server, args: &[&str]) -> String {
    let out = server.run("sam", args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    text(&out.stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_call_with_an_argv_argument_is_listed_with_every_argument() {
    let server = start_server_with_policy("review-summary", POLICY);
    let id = agent_sends(
        &server.url,
        json!({
            "kind": "mcp.tool_call", "resource": "mcp:github/delete_file",
            "details": {"argv": ["ls"], "path": "README.md"}
        }),
    )
    .await;

    let pending = as_sam(&server, &["pending"]);
    let row = pending
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("no row for {id}: {pending}"));
    assert!(
        row.contains(
            r#"mcp.tool_call {"argv":["ls"],"path":"README.md"} on mcp:github/delete_file"#
        ),
        "{row}"
    );

    let show = as_sam(&server, &["show", &id]);
    assert!(
        !show.lines().any(|l| l.starts_with("runs")),
        "a tool call's argv argument is not what runs: {show}"
    );
    assert!(
        show.lines()
            .any(|l| l.starts_with("details")
                && l.ends_with(r#" {"argv":["ls"],"path":"README.md"}"#)),
        "{show}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_characters_are_shown_as_escapes() {
    // Labels come from the configuration: an agent configured with a hidden character in one.
    let team_bot = countersign_test_support::principals::principals_toml(&[(
        "team-bot",
        "agent",
        "labels = { team = \"d\\u2060ba\" }",
    )]);
    let server = support::start_server_with("review-hidden", POLICY, &team_bot, &[]);
    let id = agent_sends_as(
        &server.url,
        "team-bot",
        json!({
            "kind": "shell.exec", "resource": "db:prod/cust\u{200b}omers",
            "details": {"argv": ["sh", "-c", "echo cust\u{feff}omers"]},
            "justification": "one\u{2028}two\u{202e}"
        }),
    )
    .await;

    let pending = as_sam(&server, &["pending"]);
    let show = as_sam(&server, &["show", &id]);
    for out in [&pending, &show] {
        for hidden in ['\u{200b}', '\u{2060}', '\u{feff}', '\u{2028}', '\u{202e}'] {
            assert!(!out.contains(hidden), "{hidden:?} printed as itself: {out}");
        }
    }
    assert!(
        pending.contains("on db:prod/cust\\u{200b}omers"),
        "{pending}"
    );
    for shown in [
        "action         shell.exec on db:prod/cust\\u{200b}omers\n",
        "labels         team=d\\u{2060}ba\n",
        "runs           `sh -c 'echo cust\\u{feff}omers'`\n",
        "justification  (the requester's own words) \"one\\u{2028}two\\u{202e}\"\n",
    ] {
        assert!(show.contains(shown), "{shown:?} not in {show}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn where_the_denials_stand_is_said_in_words() {
    let server = start_server_with_policy("review-denials", POLICY);
    let id = agent_sends(
        &server.url,
        json!({"kind": "shell.exec", "resource": "db:prod/customers",
               "details": {"argv": ["sh", "-c", "psql -f migrate.sql"]}}),
    )
    .await;
    let progress = |show: &str| {
        show.lines()
            .find(|l| l.starts_with("progress"))
            .unwrap_or_else(|| panic!("no progress line: {show}"))
            .to_owned()
    };
    // A count like `0/1 denials` reads like a quota to fill.
    let show = as_sam(&server, &["show", &id]);
    assert!(
        progress(&show).ends_with(
            "0/2 approvals, 0/2 groups, no denials yet (a denial ends it): open (rule scripted-change)"
        ),
        "{show}"
    );
    let denied = server.run("dana", &["deny", &id, "--comment", "not today"]);
    assert_eq!(denied.status.code(), Some(0), "{}", text(&denied.stderr));
    let show = as_sam(&server, &["show", &id]);
    assert!(
        progress(&show).ends_with(
            "0/2 approvals, 0/2 groups, denied by dana (a denial ends it): rejected (rule scripted-change)"
        ),
        "{show}"
    );
}

/// A stand-in for the broker that answers `show` and `pending` with `view`, and refuses the
/// audit log: what the CLI prints of a view the real broker built, with labels and claims set on
/// it as the broker would hold them, whatever its API accepts from an agent. Returns its URL.
async fn answering_with(view: Value) -> String {
    use axum::routing::get;
    use axum::{Json, Router};
    let list = json!({ "requests": [view.clone()] });
    let app = Router::new()
        .route("/v1/requests", get(move || async move { Json(list) }))
        .route("/v1/requests/{id}", get(move || async move { Json(view) }))
        .fallback(|| async {
            (
                axum::http::StatusCode::FORBIDDEN,
                Json(json!({"error": {"code": "forbidden", "message": "not in this test"}})),
            )
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_are_the_agents_words_and_each_disagreement_is_a_warning() {
    let server = start_server_with_policy("review-claims", POLICY);
    let id = agent_sends(
        &server.url,
        json!({"kind": "shell.exec", "resource": "db:prod/customers",
               "details": {"argv": ["sh", "-c", "terraform apply"]}}),
    )
    .await;
    // The label as the broker's configuration of the agent would set it, the claims as its tools
    // would send them.
    let mut view = server.request("sam", &id).await;
    view["action"]["labels"] = json!({"env": "production"});
    view["action"]["claims"] = json!({
        "env": "staging",
        "ticket": "OPS-1\nstate      approved\u{1b}[2J\u{202e}"
    });
    let url = answering_with(view).await;
    let run = |args: &[&str]| {
        let out = server
            .command("sam")
            .env("COUNTERSIGN_SERVER", &url)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        text(&out.stdout)
    };

    let show = run(&["show", &id]);
    for shown in [
        "labels     env=production\n",
        "claims     the agent says: env=staging, ticket=OPS-1\\nstate      approved\\u{1b}[2J\\u{202e}\n",
        "WARNING    the agent says env=staging; Countersign's configuration says env=production — the configuration wins\n",
    ] {
        assert!(show.contains(shown), "{shown:?} not in {show}");
    }
    let pending = run(&["pending"]);
    assert!(
        pending.contains(&format!(
            "WARNING {id}: the agent says env=staging; Countersign's configuration says env=production — the configuration wins\n"
        )),
        "{pending}"
    );
    for out in [&show, &pending] {
        assert!(!out.contains(['\u{1b}', '\u{202e}']), "{out}");
        assert!(
            !out.contains("\nstate      approved"),
            "a claim forged a field: {out}"
        );
        assert_eq!(out.matches("the configuration wins").count(), 1, "{out}");
    }
}

#[test]
fn the_top_level_help_says_what_countersign_does() {
    let out = std::process::Command::new(support::BIN)
        .arg("--help")
        .output()
        .unwrap();
    let help = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        help.starts_with("Countersign: runtime enforcement for AI agents and automation."),
        "{help}"
    );
    assert!(!help.contains("today"), "{help}");
}

/// `show` says how a command differs from the agent's last one for the same program, under
/// Countersign's caption, with hidden characters as escapes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_says_how_a_command_differs_from_the_agents_last_one() {
    let server = start_server_with_policy("review-unusual", POLICY);
    let mut action = json!({"kind": "shell.exec", "resource": "db:prod/customers",
        "details": {"argv": ["sh", "-c", "psql -f migrate.sql"], "program": "/bin/sh"}});
    let first = agent_sends(&server.url, action.clone()).await;
    action["details"]["env"] = json!({"LD_PRELOAD": "/tmp/x.so", "X\u{1b}[2J": "1"});
    let second = agent_sends(&server.url, action).await;

    let show = as_sam(&server, &["show", &second]);
    for shown in [
        "Differs from deploy-bot's last request for this program (Countersign's comparison):\n",
        "  - LD_PRELOAD is set (it was not)\n",
        "  - X\\u{1b}[2J is set (it was not)\n",
    ] {
        assert!(show.contains(shown), "{shown:?} not in {show}");
    }
    assert!(!show.contains('\u{1b}'), "{show}");
    let show = as_sam(&server, &["show", &first]);
    assert!(!show.contains("Differs from"), "{show}");
}
