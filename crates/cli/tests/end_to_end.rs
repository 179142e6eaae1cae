//! The first end-to-end path with real processes: `countersign serve`, an agent's gated
//! `countersign run`, reviews from the CLI, and the audit log verified online and offline.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

mod support;

use std::path::Path;
use std::process::Stdio;

use support::start_server;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn marker_lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

#[test]
fn a_gated_command_runs_once_after_two_eligible_humans_approve_and_the_log_tells_it_all() {
    let server = start_server("gated");
    let marker = server.dir.join("ran.txt");
    let script = format!("echo ran >> {}", marker.display());

    let allowed = server.run("deploy-bot", &["run", "--", "echo", "hello"]);
    assert_eq!(allowed.status.code(), Some(0), "{}", text(&allowed.stderr));
    assert_eq!(text(&allowed.stdout), "hello\n");

    let agent = server
        .command("deploy-bot")
        .args([
            "run",
            "--resource",
            "db:prod/customers",
            "--justification",
            "rotate the sessions table",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let id = server.wait_for_pending();
    assert_eq!(
        marker_lines(&marker),
        0,
        "the command ran before anyone approved"
    );

    let alice = server.run("alice", &["approve", &id]);
    assert_eq!(alice.status.code(), Some(1));
    assert!(
        text(&alice.stderr).contains(
            "alice cannot review this request: alice is the person the requester acts for"
        ),
        "{}",
        text(&alice.stderr)
    );
    let agent_review = server.run("deploy-bot", &["approve", &id]);
    assert_eq!(agent_review.status.code(), Some(1));

    let dana = server.run(
        "dana",
        &["approve", &id, "--comment", "checked the change ticket"],
    );
    assert_eq!(dana.status.code(), Some(0), "{}", text(&dana.stderr));
    assert_eq!(marker_lines(&marker), 0, "one approval is not a quorum");
    let sam = server.run("sam", &["approve", &id]);
    assert_eq!(sam.status.code(), Some(0), "{}", text(&sam.stderr));

    let output = agent.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(
        marker_lines(&marker),
        1,
        "the approved command must run exactly once"
    );
    assert!(text(&output.stderr).contains(&id));

    // Every step is in the log, and the log verifies on the broker and offline.
    let verify = server.run("sam", &["audit", "verify"]);
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}{}",
        text(&verify.stdout),
        text(&verify.stderr)
    );
    let export = server.run("sam", &["audit", "export"]);
    assert!(export.status.success());
    let exported = text(&export.stdout);
    let kinds: Vec<String> = exported
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["event"]["type"].as_str().map(String::from))
        .collect();
    assert_eq!(
        kinds,
        [
            "action.allowed",
            "request.created",
            "review.refused",
            "review.refused",
            "review.approved",
            "review.approved",
            "request.approved",
            "grant.issued",
            "grant.consumed",
            "action.outcome"
        ]
    );
    let file = server.dir.join("audit.jsonl");
    std::fs::write(&file, &exported).unwrap();
    let key = server.public_key();
    let offline = server.run(
        "sam",
        &[
            "audit",
            "verify",
            "--file",
            file.to_str().unwrap(),
            "--key",
            &key,
        ],
    );
    assert_eq!(
        offline.status.code(),
        Some(0),
        "{}{}",
        text(&offline.stdout),
        text(&offline.stderr)
    );

    // An edited export fails verification at the edited event.
    let edited = exported.replacen("checked the change ticket", "looked fine to me", 1);
    assert_ne!(edited, exported);
    std::fs::write(&file, edited).unwrap();
    let tampered = server.run(
        "sam",
        &[
            "audit",
            "verify",
            "--file",
            file.to_str().unwrap(),
            "--key",
            &key,
        ],
    );
    assert_eq!(tampered.status.code(), Some(1));
    let said = format!("{}{}", text(&tampered.stdout), text(&tampered.stderr));
    assert!(
        said.contains("event 5 was changed after it was written"),
        "{said}"
    );
}

#[test]
fn sighup_reloads_the_policy_and_a_broken_one_leaves_the_old_in_force() {
    let server = start_server("sighup");
    let echo = || {
        server
            .run("deploy-bot", &["run", "--", "echo", "hi"])
            .status
            .code()
    };
    assert_eq!(echo(), Some(0));

    // A broken policy is refused; the old one stays in force.
    std::fs::write(server.dir.join("policy.toml"), "default = \"perhaps\"\n").unwrap();
    server.signal("HUP");
    let refused = poll_audit_for(&server, "policy.reload_refused");
    assert!(refused.contains("unknown decision 'perhaps'"), "{refused}");
    assert_eq!(echo(), Some(0));

    // A valid one takes over: now everything is denied.
    std::fs::write(server.dir.join("policy.toml"), "default = \"deny\"\n").unwrap();
    server.signal("HUP");
    poll_audit_for(&server, "policy.reloaded");
    assert_eq!(echo(), Some(200), "the reloaded policy should deny");
}

/// Polls the audit log (with a deadline) until an event of `kind` appears; returns its explanation.
fn poll_audit_for(server: &support::Server, kind: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let out = server.run("sam", &["audit", "export"]);
        for line in text(&out.stdout).lines() {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            if record["event"]["type"] == kind {
                return record["event"]["explanation"].as_str().unwrap().to_owned();
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {kind} event appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
