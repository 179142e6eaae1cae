//! `countersign policy reload` against a real `countersign serve`, and `serve` itself refusing a
//! policy that would misbehave: run as an operator would, through the binary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

mod support;

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use countersign_model::Digest;
use countersign_test_support::principals::principals_toml;
use countersign_test_support::scratch::Scratch;
use support::{BIN, POLICY, Server, start_server_with, token};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A human administrator, added to the test broker's principals.
fn admin() -> String {
    principals_toml(&[("ops-admin", "human", "admin = true")])
}

/// An administrator's reload is refused, the old policy staying in force, for the reason given.
fn refused_naming(server: &Server, reason: &str) {
    let out = server.run("ops-admin", &["policy", "reload"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("the old one stays in force") && stderr.contains(reason),
        "{stderr}"
    );
}

#[test]
fn policy_reload_applies_a_valid_policy_and_refuses_a_broken_one_naming_the_rule() {
    let server = start_server_with("policy-reload", POLICY, &admin(), &[]);
    let echo = || {
        server
            .run("deploy-bot", &["run", "--", "echo", "hi"])
            .status
            .code()
    };
    assert_eq!(echo(), Some(0));
    let policy_file = server.dir.join("policy.toml");

    // A condition that can never be true or false: refused, the old policy stays in force.
    let broken = POLICY.replace(
        "match.command = \"echo *\"",
        "match.command = \"echo *\"\nif = \"action.resource\"",
    );
    std::fs::write(&policy_file, &broken).unwrap();
    refused_naming(
        &server,
        "rule 'read-only': the condition gives a string instead of true or false",
    );
    assert_eq!(echo(), Some(0), "the old policy should still allow echo");

    // Only a human administrator may reload.
    std::fs::write(&policy_file, "default = \"deny\"\n").unwrap();
    let out = server.run("deploy-bot", &["policy", "reload"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr)
            .contains("deploy-bot cannot reload the policy: only human administrators can"),
        "{}",
        text(&out.stderr)
    );
    let out = server.run("sam", &["policy", "reload"]);
    assert_eq!(out.status.code(), Some(1), "sam is not an administrator");
    assert_eq!(echo(), Some(0));

    // A valid policy takes over at once: now echo is denied.
    let out = server.run("ops-admin", &["policy", "reload"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let hash = Digest::of(b"default = \"deny\"\n").to_string();
    assert_eq!(
        text(&out.stdout),
        format!(
            "the broker at {} reloaded its policy: policy {hash} is in force\n",
            server.url
        )
    );
    assert_eq!(echo(), Some(200), "the reloaded policy should deny");

    // A broker that cannot be reached is not a refusal: exit 2.
    let out = Command::new(BIN)
        .args(["policy", "reload", "--server", "http://127.0.0.1:9"])
        .env("COUNTERSIGN_TOKEN", token("ops-admin"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("cannot reach the Countersign broker"));
}

/// `serve` does not start on a policy whose own tests fail: it names the test, and what it got.
#[test]
fn serve_refuses_a_policy_that_fails_its_own_tests() {
    let dir = Scratch::named("serve-refuses");
    let policy = format!(
        "{POLICY}\n[[tests]]\nname = \"printing is allowed\"\nexpect = \"deny\"\naction = {{ kind = \"shell.exec\", resource = \"host:x\", details = {{ argv = [\"echo\", \"hi\"], program = \"/usr/bin/echo\" }}, principal = {{ id = \"bot\", kind = \"agent\" }} }}\n"
    );
    std::fs::write(dir.join("policy.toml"), policy).unwrap();
    std::fs::write(
        dir.join("countersign.toml"),
        "listen = \"127.0.0.1:0\"\ndata_dir = \"data\"\npolicy = \"policy.toml\"\n",
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(dir.join("countersign.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // It must exit on its own: a broker still running after the deadline accepted the policy.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve started on a policy that fails its own tests");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "test 'printing is allowed': the policy fails its own test: expected deny, got allow (decided by rule 'read-only')"
        ),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A reloaded policy meets the channels' checks as at start-up: a target naming a service no
/// channel provides is refused, naming the rule, and the old policy stays in force.
#[test]
fn policy_reload_refuses_a_notify_target_no_channel_provides() {
    let server = start_server_with("policy-reload-notify", POLICY, &admin(), &[]);
    let unannounceable = POLICY.replace("slack:#sre", "email:sre@example.com");
    assert_ne!(unannounceable, POLICY);
    std::fs::write(server.dir.join("policy.toml"), &unannounceable).unwrap();
    refused_naming(
        &server,
        "notify target 'email:sre@example.com' names the service 'email', which no channel of Countersign provides",
    );
    assert_eq!(
        server
            .run("deploy-bot", &["run", "--", "echo", "hi"])
            .status
            .code(),
        Some(0)
    );
}
