//! `countersign policy check | test | explain`, run as a user would: output and exit codes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

use std::path::PathBuf;
use std::process::{Command, Output};

use countersign_test_support::scratch::Scratch;

fn countersign(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn scratch(name: &str, contents: &str) -> PathBuf {
    let path = Scratch::named("cli-test").keep().join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn check_accepts_the_example_and_names_its_size() {
    let out = countersign(&["policy", "check", "examples/policy.toml"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with(
            "examples/policy.toml: ok: 28 rules, 83 tests, default deny, policy sha256:"
        ),
        "{stdout}"
    );
}

#[test]
fn check_points_at_the_line_the_rule_and_the_fix() {
    let bad = scratch(
        "bad.toml",
        "default = \"deny\"\n\n[[rules]]\nid = \"prod-db-export\"\ndecision = \"aprove\"\nreason = \"r\"\nmatch.kind = \"shell.exec\"\n",
    );
    let out = countersign(&["policy", "check", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(":5: rule 'prod-db-export': unknown decision 'aprove' (expected allow, deny or require_approval)"),
        "{stderr}"
    );
}

#[test]
fn test_prints_a_line_per_case_and_fails_on_any_failure() {
    let out = countersign(&["policy", "test", "examples/policy.toml"]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    let stdout = text(&out.stdout);
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("ok    ")).count(),
        83
    );
    assert!(stdout.contains(
        "ok    a database dump needs a DBA and an SRE (require_approval by prod-db-export)"
    ));

    let failing = scratch(
        "failing.toml",
        r#"default = "allow"
[[rules]]
id = "no-rm"
decision = "deny"
reason = "no"
match.kind = "shell.exec"
match.command = "rm *"

[[tests]]
name = "rm is allowed (wrongly expected)"
expect = "allow"
action = { kind = "shell.exec", resource = "host:x", details = { argv = ["rm", "-rf", "/tmp/x"] }, principal = { id = "bot", kind = "agent" } }
"#,
    );
    let out = countersign(&["policy", "test", failing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout
            .contains("FAIL  rm is allowed (wrongly expected) (line 9): expected allow, got deny"),
        "{stdout}"
    );
    assert!(stdout.contains("0 of 1 cases pass, 1 fail"), "{stdout}");

    // `check` refuses the same file, as `serve` would: a policy must pass its own tests.
    let out = countersign(&["policy", "check", failing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(":9: test 'rm is allowed (wrongly expected)': the policy fails its own test: expected allow, got deny (decided by rule 'no-rm')"),
        "{stderr}"
    );
}

#[test]
fn check_names_the_key_of_a_wrong_type_and_says_cel_errors_in_words() {
    let wrong_type = scratch(
        "wrong-type.toml",
        "default = \"deny\"\n[[rules]]\nid = \"two\"\ndecision = \"require_approval\"\nreason = \"r\"\nmatch.kind = \"a.b\"\napprovers = { groups = [\"sre\"], count = \"2\" }\n",
    );
    let out = countersign(&["policy", "check", wrong_type.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(":7: rule 'two': approvers.count must be a whole number, 0 or more, not the string \"2\""),
        "{stderr}"
    );

    let bad_cel = scratch(
        "bad-cel.toml",
        "default = \"deny\"\n[[rules]]\nid = \"c\"\ndecision = \"allow\"\nreason = \"r\"\nmatch.kind = \"a.b\"\nif = \"principal.id = 'x'\"\n",
    );
    let out = countersign(&["policy", "check", bad_cel.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(":7: rule 'c': the condition does not parse: at column 14: a single '=' is not an operator; compare with =="),
        "{stderr}"
    );
    assert!(!stderr.contains("Syntax error"), "{stderr}");
}

#[test]
fn explain_shows_the_decision_for_people_and_for_scripts() {
    let action = r#"{"kind":"shell.exec","resource":"db:prod/customers","labels":{"env":"production"},
        "details":{"argv":["pg_dump","customers"]},"principal":{"id":"deploy-bot","kind":"agent","on_behalf_of":["sre-1"]}}"#;
    let out = countersign(&[
        "policy",
        "explain",
        "examples/policy.toml",
        "--action",
        action,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("decision:  require_approval\nrules:     prod-db-export\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("deploy-bot (agent), acting for sre-1, asked to run `pg_dump customers`")
    );

    let out = countersign(&[
        "policy",
        "explain",
        "examples/policy.toml",
        "--action",
        action,
        "--json",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["decision"]["outcome"], "require_approval");
    assert_eq!(json["decision"]["requirements"][0]["count"], 2);
    assert!(json["digest"].as_str().unwrap().starts_with("sha256:"));

    let path = scratch("action.json", action);
    let from_file = countersign(&[
        "policy",
        "explain",
        "examples/policy.toml",
        "--action",
        &format!("@{}", path.display()),
        "--json",
    ]);
    assert_eq!(from_file.stdout, out.stdout);
}

#[test]
fn explain_refuses_a_malformed_action_with_the_reason() {
    let out = countersign(&[
        "policy",
        "explain",
        "examples/policy.toml",
        "--action",
        r#"{"kind":"x"}"#,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--action is not a valid action: missing field `resource`"));
    let out = countersign(&["policy", "check", "does/not/exist.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read the policy file does/not/exist.toml"));
}

#[test]
fn check_refuses_a_notify_target_no_channel_can_announce_to() {
    let bad = scratch(
        "bad-notify.toml",
        "version = 1\ndefault = \"deny\"\n\n[[rules]]\nid = \"export\"\nnotify = [\"slack:#DBA Approvals\", \"email:dba@example.com\"]\ndecision = \"require_approval\"\nreason = \"r\"\nmatch.kind = \"a.b\"\napprovers = { groups = [\"dba\"] }\n",
    );
    let out = countersign(&["policy", "check", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(": rule 'export': notify target 'slack:#DBA Approvals' is not a Slack channel: write it as slack:#channel-name or slack:C0123ABCD"),
        "{stderr}"
    );
    assert!(
        stderr.contains(": rule 'export': notify target 'email:dba@example.com' names the service 'email', which no channel of Countersign provides; write slack:ADDRESS, or remove the target from the rule"),
        "{stderr}"
    );
    assert!(
        stderr.contains("2 problem(s); the policy was not loaded"),
        "{stderr}"
    );
}
