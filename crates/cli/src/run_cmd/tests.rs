//! `countersign run` without a broker: arguments to action, request states to outcomes, outcomes
//! to exit codes, and the status line.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

use std::io;
use std::os::unix::process::ExitStatusExt as _;
use std::process::ExitStatus;
use std::time::Duration;

use clap::Parser;
use countersign_client::{OutcomeStatus, RequestView};
use serde_json::json;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use super::child::{self, Ran};
use super::resolve;
use super::status::{render, review_line};
use super::{Outcome, RunArgs, Step, build_action, denial_message, next_step};

#[derive(Debug, Parser)]
struct Harness {
    #[command(flatten)]
    run: RunArgs,
}

fn parse(args: &[&str]) -> Result<RunArgs, clap::Error> {
    Harness::try_parse_from(std::iter::once("run").chain(args.iter().copied())).map(|h| h.run)
}

fn action_json(args: &[&str]) -> serde_json::Value {
    let action = build_action(&parse(args).unwrap(), "/srv/app", "/usr/bin/x", "build-7").unwrap();
    serde_json::to_value(action).unwrap()
}

#[test]
fn a_command_becomes_a_shell_exec_action_on_this_host() {
    assert_eq!(
        action_json(&["--", "pg_dump", "--table", "customers"]),
        json!({
            "kind": "shell.exec",
            "resource": "host:build-7",
            "details": {"argv": ["pg_dump", "--table", "customers"], "cwd": "/srv/app", "program": "/usr/bin/x"}
        })
    );
}

#[test]
fn flags_set_resource_claims_justification_and_kind() {
    let action = action_json(&[
        "--resource",
        "db:prod/customers",
        "--label",
        "env=production",
        "--label",
        "team=data=eng",
        "--justification",
        "nightly export",
        "--kind",
        "db.dump",
        "pg_dump",
        "-Fc",
    ]);
    assert_eq!(
        action,
        json!({
            "kind": "db.dump",
            "resource": "db:prod/customers",
            "claims": {"env": "production", "team": "data=eng"},
            "details": {"argv": ["pg_dump", "-Fc"], "cwd": "/srv/app", "program": "/usr/bin/x"},
            "justification": "nightly export"
        })
    );
}

#[test]
fn claim_is_the_preferred_spelling_of_label_and_neither_sets_a_label() {
    let action = action_json(&["--claim", "env=staging", "--label", "ticket=OPS-7", "true"]);
    assert_eq!(
        action["claims"],
        json!({"env": "staging", "ticket": "OPS-7"})
    );
    assert!(action.get("labels").is_none(), "{action}");
}

#[test]
fn everything_after_the_command_belongs_to_it() {
    let args = parse(&["terraform", "apply", "--label", "x=y", "-auto-approve"]).unwrap();
    assert_eq!(
        args.command,
        ["terraform", "apply", "--label", "x=y", "-auto-approve"]
    );
    assert!(args.claims.is_empty());
}

#[test]
fn wait_takes_a_duration() {
    let args = parse(&["--wait", "1h30m", "true"]).unwrap();
    assert_eq!(args.wait, Some(Duration::from_secs(5400)));
    let error = parse(&["--wait", "soon", "true"]).unwrap_err().to_string();
    assert!(error.contains("'soon' is not a duration"), "{error}");
}

#[test]
fn malformed_claims_are_usage_errors_that_say_the_form() {
    for bad in ["env", "=production"] {
        let error = parse(&["--label", bad, "true"]).unwrap_err();
        assert_eq!(error.exit_code(), 2);
        assert!(
            error
                .to_string()
                .contains(&format!("'{bad}' is not a claim (expected NAME=VALUE")),
            "{error}"
        );
    }
    let twice = parse(&["--label", "env=a", "--label", "env=b", "true"]).unwrap();
    let error = build_action(&twice, "/", "/bin/true", "h")
        .unwrap_err()
        .to_string();
    assert_eq!(error, "claim 'env' is given twice; give each claim once");

    let invalid = parse(&["--label", "bad name=x", "true"]).unwrap();
    let error = format!(
        "{:#}",
        build_action(&invalid, "/", "/bin/true", "h").unwrap_err()
    );
    assert!(
        error.contains("claim 'bad name' is not a valid claim name"),
        "{error}"
    );
}

#[test]
fn a_command_is_required() {
    assert!(parse(&["--resource", "host:x"]).is_err());
}

fn view(state: &str) -> RequestView {
    serde_json::from_value(json!({
        "id": "r_0123456789abcdef0123456789abcdef",
        "state": state,
        "digest": format!("sha256:{}", "ab".repeat(32)),
        "action": {
            "kind": "shell.exec", "resource": "db:prod/customers", "labels": {},
            "details": {"argv": ["pg_dump", "customers"]},
            "principal": {"id": "deploy-bot", "kind": "agent", "on_behalf_of": ["alice"]}
        },
        "rules": ["prod-db-export"],
        "explanation": "…",
        "requirements": [{"rule": "prod-db-export", "groups": ["dba", "sre"], "principals": [], "count": 2, "distinct_groups": 2, "denials": 1}],
        "progress": [{"rule": "prod-db-export", "approved_by": ["dana"], "needed": 2, "groups_covered": 1, "groups_needed": 2, "denied_by": [], "denials_needed": 1, "satisfied": false, "rejected": false}],
        "reviews": [
            {"reviewer": "dana", "verdict": "approve", "comment": null, "channel": "cli", "authentication": "api_token", "at": "2026-11-21T16:09:00.000Z"},
            {"reviewer": "erin", "verdict": "deny", "comment": "not during the freeze", "channel": "slack", "authentication": "slack", "at": "2026-11-21T16:10:00.000Z"}
        ],
        "created_at": "2026-11-21T16:08:00.000Z",
        "expires_at": "2026-11-21T16:38:00.000Z",
        "decided_at": null,
        "decided_by": if state == "denied" { json!("erin") } else if state == "cancelled" { json!("alice") } else { json!(null) },
        "summary": "the broker's summary",
        "grant": if state == "approved" { json!({"token": "csg1.x", "expires_at": "2026-11-21T16:20:00.000Z"}) } else { json!(null) }
    }))
    .unwrap()
}

fn stop(step: Step<'_>) -> Outcome {
    match step {
        Step::Stop(outcome) => outcome,
        other => panic!("expected the command to stop, got {other:?}"),
    }
}

#[test]
fn each_request_state_leads_to_its_outcome() {
    assert!(matches!(next_step(&view("pending")), Step::Wait));
    let approved = view("approved");
    let Step::Run(grant) = next_step(&approved) else {
        panic!()
    };
    assert_eq!(grant.token, "csg1.x");

    let mut no_grant = view("approved");
    no_grant.grant = None;
    let outcome = stop(next_step(&no_grant));
    assert_eq!(outcome.exit_code(), 204);
    assert!(outcome.message().unwrap().contains("sent no grant"));

    let denied = stop(next_step(&view("denied")));
    assert_eq!(denied.exit_code(), 200);
    assert_eq!(
        denied.message().unwrap(),
        "denied by erin: not during the freeze; the command did not run"
    );

    let expired = stop(next_step(&view("expired")));
    assert_eq!(expired.exit_code(), 201);
    assert_eq!(
        expired.message().unwrap(),
        "nobody approved in time: request r_0123456789abcdef0123456789abcdef expired at \
         2026-11-21T16:38:00.000Z; the command did not run"
    );

    let cancelled = stop(next_step(&view("cancelled")));
    assert_eq!(cancelled.exit_code(), 202);
    assert!(
        cancelled
            .message()
            .unwrap()
            .contains("was cancelled by alice")
    );
}

#[test]
fn a_denial_names_the_reviewer_and_their_comment_or_its_absence() {
    let mut denied = view("denied");
    assert_eq!(
        denial_message(&denied),
        "denied by erin: not during the freeze"
    );
    denied.reviews[1].comment = None;
    assert_eq!(denial_message(&denied), "denied by erin (no comment)");
    denied.reviews[1].comment = Some("\x1b[2Jgo \u{202e}away".into());
    assert_eq!(
        denial_message(&denied),
        "denied by erin: \\u{1b}[2Jgo \\u{202e}away",
        "a comment cannot drive the terminal"
    );
    denied.decided_by = None;
    assert_eq!(denial_message(&denied), "denied: the broker's summary");
}

#[test]
fn every_outcome_has_its_exit_code() {
    let reason = || "r".to_owned();
    let exited = |raw| Ran::Finished {
        status: ExitStatus::from_raw(raw),
        elapsed: Duration::ZERO,
    };
    let not_started = |kind| Ran::NotStarted {
        error: io::Error::from(kind),
    };
    let cases = [
        (Outcome::Ran(exited(0)), 0),
        (Outcome::Ran(exited(3 << 8)), 3),
        (Outcome::Ran(exited(255 << 8)), 255),
        (Outcome::Ran(exited(15)), 143),
        (Outcome::Ran(exited(9)), 137),
        (Outcome::Ran(not_started(io::ErrorKind::NotFound)), 127),
        (
            Outcome::Ran(not_started(io::ErrorKind::PermissionDenied)),
            126,
        ),
        (
            Outcome::PolicyDenied {
                rules: vec![],
                explanation: reason(),
            },
            200,
        ),
        (Outcome::ReviewerDenied { message: reason() }, 200),
        (Outcome::Expired { message: reason() }, 201),
        (Outcome::Cancelled { message: reason() }, 202),
        (Outcome::FailClosed { reason: reason() }, 203),
        (Outcome::GrantRefused { reason: reason() }, 204),
        (Outcome::Changed { reason: reason() }, 204),
    ];
    for (outcome, code) in cases {
        assert_eq!(outcome.exit_code(), code, "{outcome:?}");
        let silent = matches!(outcome, Outcome::Ran(Ran::Finished { .. }));
        assert_eq!(outcome.message().is_none(), silent, "{outcome:?}");
    }
}

#[test]
fn a_policy_denial_says_which_rule_and_why() {
    let outcome = Outcome::PolicyDenied {
        rules: vec!["no-drop".into()],
        explanation: "Rule no-drop denies it: dropping tables is never automated.".into(),
    };
    assert_eq!(
        outcome.message().unwrap(),
        "denied by the policy (rule no-drop); the command did not run. Rule no-drop denies it: \
         dropping tables is never automated."
    );
    let by_default = Outcome::PolicyDenied {
        rules: vec![],
        explanation: "No rule matches it.".into(),
    };
    assert!(
        by_default
            .message()
            .unwrap()
            .starts_with("denied by the policy's default;")
    );
}

#[test]
fn the_recorded_outcome_says_how_the_command_went() {
    let finished = |raw, secs| Ran::Finished {
        status: ExitStatus::from_raw(raw),
        elapsed: Duration::from_millis(secs),
    };
    assert_eq!(
        finished(0, 3200).report("`pg_dump customers`"),
        (
            OutcomeStatus::Ran,
            Some(0),
            "`pg_dump customers` exited with status 0 after 3.2s".to_owned()
        )
    );
    assert_eq!(
        finished(2 << 8, 95_000).report("`x`"),
        (
            OutcomeStatus::Failed,
            Some(2),
            "`x` exited with status 2 after 1m35s".to_owned()
        )
    );
    assert_eq!(
        finished(15, 500).report("`x`"),
        (
            OutcomeStatus::Failed,
            None,
            "`x` was killed by signal 15 after 0.5s".to_owned()
        )
    );
    let missing = Ran::NotStarted {
        error: io::Error::from(io::ErrorKind::NotFound),
    };
    assert_eq!(
        missing.report("`nope`"),
        (
            OutcomeStatus::Failed,
            None,
            "`nope` could not be started: command not found".to_owned()
        )
    );
}

#[test]
fn the_status_line_says_who_must_approve_how_far_and_how_long() {
    let pending = view("pending");
    assert_eq!(
        render(&pending, Some(Duration::from_millis(1_752_400))),
        "waiting for members of dba or sre: 1/2 approvals (dana), 1/2 groups; 29m12s left; \
         request r_0123456789abcdef0123456789abcdef"
    );
    assert_eq!(
        render(&pending, None),
        "waiting for members of dba or sre: 1/2 approvals (dana), 1/2 groups; request \
         r_0123456789abcdef0123456789abcdef"
    );
    assert!(render(&pending, Some(Duration::ZERO)).contains("; 0s left;"));
}

#[test]
fn each_review_says_who_and_what_is_still_needed() {
    let pending = view("pending");
    assert_eq!(
        review_line(&pending, &pending.reviews[0]),
        "dana approved (via cli); still needed: 1 more approval from members of dba or sre, \
         covering 1 more group"
    );
    let mut denied_once = view("pending");
    denied_once.progress[0].denied_by = vec!["erin".into()];
    denied_once.progress[0].denials_needed = 2;
    assert_eq!(
        review_line(&denied_once, &denied_once.reviews[1]),
        "erin denied (via slack): not during the freeze; still needed: 1 more approval from \
         members of dba or sre, covering 1 more group (1 more denial would end the request)"
    );
    let mut enough = view("pending");
    enough.progress[0].satisfied = true;
    enough.reviews[0].comment = Some("ok\u{1b}[2J".into());
    assert_eq!(
        review_line(&enough, &enough.reviews[0]),
        "dana approved (via cli): ok\\u{1b}[2J; no more approvals are needed"
    );
}

#[tokio::test]
async fn a_command_runs_directly_and_passes_its_status_on() {
    let mut signals = super::signals::Signals::listen().unwrap();
    let argv = |args: &[&str]| args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>();
    let path = |name: &str| resolve::program(name, Path::new("/"), None).unwrap();
    let sh = path("sh");
    let env: Vec<_> = std::env::vars_os().collect();
    let ran = child::run(
        Path::new(&sh),
        &argv(&["sh", "-c", "exit 7"]),
        &env,
        &mut signals,
    )
    .await;
    assert_eq!(ran.exit_code(), 7);
    // No shell in between: the metacharacters reach the program as they are.
    let test = path("test");
    let args = argv(&["test", "a;b", "=", "a;b"]);
    let ran = child::run(Path::new(&test), &args, &env, &mut signals).await;
    assert_eq!(ran.exit_code(), 0);
    // The program runs under the name it was given, from the path it was resolved to.
    let args = argv(&["called-so", "-c", "test \"$0\" = called-so"]);
    let ran = child::run(Path::new(&sh), &args, &env, &mut signals).await;
    assert_eq!(ran.exit_code(), 0);
    let missing = Path::new("/countersign-no-such-command");
    let ran = child::run(
        missing,
        &argv(&["countersign-no-such-command"]),
        &env,
        &mut signals,
    )
    .await;
    assert_eq!(ran.exit_code(), 127);
}

#[test]
fn a_program_is_found_once_as_an_absolute_path() {
    let dir = std::env::temp_dir().join(format!("countersign-resolve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (first, second, real) = (dir.join("first"), dir.join("second"), dir.join("real"));
    for d in [&first, &second, &real] {
        std::fs::create_dir_all(d).unwrap();
    }
    let script = |path: &Path| {
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    script(&second.join("tool"));
    std::fs::write(first.join("tool"), "not executable").unwrap();
    let path = std::env::join_paths([&first, &second]).unwrap();
    let canonical = |p: &Path| p.canonicalize().unwrap().to_str().unwrap().to_owned();
    // The first executable file of that name in PATH; a file that cannot run is passed over.
    assert_eq!(
        resolve::program("tool", &dir, Some(&path)).unwrap(),
        format!("{}/tool", canonical(&second))
    );
    // Given with a slash, relative to the working directory, its directory's symlinks resolved.
    std::os::unix::fs::symlink(&second, dir.join("link")).unwrap();
    assert_eq!(
        resolve::program("./link/../link/tool", &dir, Some(&path)).unwrap(),
        format!("{}/tool", canonical(&second))
    );
    // The file's own name is kept even when it is a symlink.
    script(&real.join("busybox"));
    std::os::unix::fs::symlink(real.join("busybox"), second.join("cat")).unwrap();
    assert_eq!(
        resolve::program("cat", &dir, Some(&path)).unwrap(),
        format!("{}/cat", canonical(&second))
    );
    let missing = resolve::program("nothing-here", &dir, Some(&path)).unwrap_err();
    assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    assert_eq!(
        missing.to_string(),
        "command not found: no program named nothing-here in PATH"
    );
    let not_executable = resolve::program("./first/tool", &dir, Some(&path)).unwrap_err();
    assert_eq!(not_executable.kind(), io::ErrorKind::PermissionDenied);
    let _ = std::fs::remove_dir_all(&dir);
}
