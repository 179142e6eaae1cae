//! `countersign run` against a real `countersign serve`: the program is found once and that file
//! runs (a look-alike in the working directory or early in PATH is not the program a rule
//! allows, a PATH entry filled while the request waits changes nothing, and a program replaced
//! while it waits does not run), the environment that changes what runs is shown to reviewers,
//! and each review is shown as it arrives.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

mod support;

use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use countersign_test_support::scratch::Scratch;
use support::{start_server, start_server_with_policy};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn workdir(name: &str) -> PathBuf {
    let dir = Scratch::named(&format!("run-broker-{name}")).keep();
    dir.canonicalize().unwrap()
}

/// An executable shell script at `path`.
fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn path_with(first: &[&Path]) -> String {
    let mut dirs: Vec<PathBuf> = first.iter().map(|p| p.to_path_buf()).collect();
    dirs.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap()));
    std::env::join_paths(dirs).unwrap().into_string().unwrap()
}

const READS: &str = r#"
version = 1
default = "deny"

[[rules]]
id = "reads"
decision = "allow"
reason = "The system's cat only reads"
match.kind = "shell.exec"
match.command = "cat *"

[[rules]]
id = "tool"
decision = "require_approval"
reason = "The tool changes things"
match.kind = "shell.exec"
match.command = "tool *"
approvers = { groups = ["sre"], count = 1 }
"#;

#[test]
fn a_look_alike_of_an_allowed_program_is_not_that_program() {
    let server = start_server_with_policy("lookalike", READS);
    let dir = workdir("lookalike");
    std::fs::write(dir.join("notes.txt"), "the notes\n").unwrap();
    script(&dir.join("cat"), "touch pwned");

    let system = server
        .command("deploy-bot")
        .args(["run", "--", "cat", "notes.txt"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(system.status.code(), Some(0), "{}", text(&system.stderr));
    assert_eq!(text(&system.stdout), "the notes\n");

    let here = server
        .command("deploy-bot")
        .args(["run", "--", "./cat", "notes.txt"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(here.status.code(), Some(200), "{}", text(&here.stderr));
    assert!(
        text(&here.stderr).contains("denied by the policy's default"),
        "{}",
        text(&here.stderr)
    );

    let first_in_path = server
        .command("deploy-bot")
        .args(["run", "--", "cat", "notes.txt"])
        .current_dir(&dir)
        .env("PATH", path_with(&[&dir]))
        .output()
        .unwrap();
    assert_eq!(
        first_in_path.status.code(),
        Some(200),
        "{}",
        text(&first_in_path.stderr)
    );
    assert!(!dir.join("pwned").exists(), "the look-alike ran");
}

#[test]
fn a_path_entry_filled_while_the_request_waits_does_not_change_what_runs() {
    let server = start_server_with_policy("path-later", READS);
    let dir = workdir("path-later");
    let (early, approved) = (dir.join("early"), dir.join("approved"));
    std::fs::create_dir_all(&early).unwrap();
    std::fs::create_dir_all(&approved).unwrap();
    script(&approved.join("tool"), "echo approved-tool > ran.txt");

    let agent = server
        .command("deploy-bot")
        .args(["run", "--", "tool", "now"])
        .current_dir(&dir)
        .env("PATH", path_with(&[&early, &approved]))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let id = server.wait_for_pending();
    let pending = server.run("sam", &["pending", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&pending.stdout).unwrap();
    let requests = listed.get("requests").cloned().unwrap_or(listed);

    // Now a `tool` appears earlier in PATH: a second lookup would find it.
    script(&early.join("tool"), "echo planted-tool > ran.txt");
    let sam = server.run("sam", &["approve", &id]);
    assert_eq!(sam.status.code(), Some(0), "{}", text(&sam.stderr));
    let out = agent.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(dir.join("ran.txt")).unwrap(),
        "approved-tool\n"
    );
    assert_eq!(
        requests[0]["action"]["details"]["program"],
        format!("{}/tool", approved.display()),
        "the action names the program that ran"
    );
}

#[test]
fn each_review_is_shown_as_it_arrives() {
    let server = start_server("reviews-shown");
    let mut agent = server
        .command("deploy-bot")
        .args(["run", "--resource", "db:prod/x", "--", "sh", "-c", "exit 0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let said = Arc::new(Mutex::new(String::new()));
    let reader = {
        let said = Arc::clone(&said);
        let mut stderr = agent.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                said.lock().unwrap().push_str(&text(&buf[..n]));
            }
        })
    };
    let id = server.wait_for_pending();
    let dana = server.run("dana", &["approve", &id]);
    assert_eq!(dana.status.code(), Some(0), "{}", text(&dana.stderr));

    // Well before the broker's wait would answer on its own (it answers at once only on a
    // decision), the first of two approvals is on the agent's terminal.
    let deadline = Instant::now() + Duration::from_secs(15);
    let line = "dana approved (via api); still needed: 1 more approval from members of dba or \
                sre, covering 1 more group";
    while !said.lock().unwrap().contains(line) {
        assert!(
            Instant::now() < deadline,
            "the first approval was not shown: {}",
            said.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let sam = server.run("sam", &["approve", &id]);
    assert_eq!(sam.status.code(), Some(0), "{}", text(&sam.stderr));
    let status = agent.wait().unwrap();
    reader.join().unwrap();
    let said = said.lock().unwrap();
    assert_eq!(status.code(), Some(0), "{said}");
    assert!(
        said.contains("approved by dana, sam; running `sh -c 'exit 0'`"),
        "{said}"
    );
}

#[test]
fn a_program_swapped_on_disk_after_approval_does_not_run() {
    let server = start_server_with_policy("swapped", READS);
    let dir = workdir("swapped");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    script(&bin.join("tool"), "echo approved-tool > ran.txt");

    let agent = server
        .command("deploy-bot")
        .args(["run", "--", "tool", "now"])
        .current_dir(&dir)
        .env("PATH", path_with(&[&bin]))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let id = server.wait_for_pending();
    // Replaced under the same name while the request waits for its approver.
    script(&dir.join("planted"), "echo planted-tool > ran.txt");
    std::fs::rename(dir.join("planted"), bin.join("tool")).unwrap();
    let sam = server.run("sam", &["approve", &id]);
    assert_eq!(sam.status.code(), Some(0), "{}", text(&sam.stderr));

    let out = agent.wait_with_output().unwrap();
    let said = text(&out.stderr);
    assert_eq!(out.status.code(), Some(204), "{said}");
    assert!(!dir.join("ran.txt").exists(), "the replaced program ran");
    assert!(
        said.contains(&format!(
            "countersign: the command did not run: the program {}/tool changed after it was \
             asked about (SHA-256 ",
            bin.display()
        )),
        "{said}"
    );
    let export = text(&server.run("sam", &["audit", "export"]).stdout);
    assert!(export.contains("request.approved"), "{export}");
    assert!(
        !export.contains("grant.consumed"),
        "the approval is not used up by a program that does not run: {export}"
    );
}

#[test]
fn ld_preload_changes_the_digest_and_is_shown_to_the_reviewer() {
    let server = start_server_with_policy("preload", READS);
    let dir = workdir("preload");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    script(&bin.join("tool"), "exit 0");
    let preload = "/nonexistent/countersign-test-preload.so";
    let ask = |preloaded: bool| {
        let mut command = server.command("deploy-bot");
        command
            .args(["run", "--", "tool", "now"])
            .current_dir(&dir)
            .env("PATH", path_with(&[&bin]))
            .stderr(Stdio::null());
        if preloaded {
            command.env("LD_PRELOAD", preload);
        }
        command.spawn().unwrap()
    };

    let mut plain = ask(false);
    let first = server.wait_for_pending();
    let mut preloaded = ask(true);
    let deadline = Instant::now() + Duration::from_secs(20);
    let requests = loop {
        let out = server.run("sam", &["pending", "--json"]);
        let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let requests = listed.get("requests").cloned().unwrap_or(listed);
        if requests.as_array().is_some_and(|r| r.len() == 2) {
            break requests;
        }
        assert!(Instant::now() < deadline, "the second request never came");
        std::thread::sleep(Duration::from_millis(50));
    };
    let second = requests
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] != first)
        .unwrap();
    assert_eq!(second["action"]["details"]["env"]["LD_PRELOAD"], preload);
    let firsts = requests
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == first);
    assert_eq!(
        firsts.unwrap()["action"]["details"]["env"].get("LD_PRELOAD"),
        None
    );
    assert_ne!(firsts.unwrap()["digest"], second["digest"]);

    let shown = server.run("sam", &["show", second["id"].as_str().unwrap()]);
    let shown = text(&shown.stdout);
    let runs = shown.lines().find(|l| l.starts_with("runs ")).unwrap();
    assert!(
        runs.contains("`tool now # program sha256:")
            && runs.contains(&format!(" LD_PRELOAD={preload} ")),
        "the reviewer sees LD_PRELOAD with the command: {shown}"
    );
    for agent in [&mut plain, &mut preloaded] {
        let _ = agent.kill();
        let _ = agent.wait();
    }
}

const BY_ENVIRONMENT: &str = r#"
version = 1
default = "deny"

[[rules]]
id = "tool-prod"
decision = "require_approval"
reason = "The tool changes production"
match.kind = "shell.exec"
match.labels = { env = "production" }
match.command = "tool *"
approvers = { groups = ["sre"], count = 1 }

[[rules]]
id = "tool-staging"
decision = "allow"
reason = "Staging is the agent's to change"
match.kind = "shell.exec"
match.labels = { env = "staging" }
match.command = "tool *"
"#;

#[test]
fn a_staging_claim_from_an_agent_configured_for_production_is_still_gated() {
    // prod-bot's configuration says it works on production; what it says is only a claim.
    let prod_bot = countersign_test_support::principals::principals_toml(&[(
        "prod-bot",
        "agent",
        "labels = { env = \"production\" }",
    )]);
    let server = support::start_server_with("claims", BY_ENVIRONMENT, &prod_bot, &[]);
    let dir = workdir("claims");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    script(&bin.join("tool"), "echo applied > ran.txt");

    let agent = server
        .command("prod-bot")
        .args(["run", "--label", "env=staging", "--", "tool", "apply"])
        .current_dir(&dir)
        .env("PATH", path_with(&[&bin]))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let id = server.wait_for_pending();
    assert!(!dir.join("ran.txt").exists(), "the claim let it run");
    let shown: serde_json::Value =
        serde_json::from_slice(&server.run("sam", &["show", &id, "--json"]).stdout).unwrap();
    let shown = &shown["request"];
    assert_eq!(shown["rules"], serde_json::json!(["tool-prod"]));
    assert_eq!(
        shown["action"]["labels"],
        serde_json::json!({"env": "production"})
    );
    assert_eq!(
        shown["action"]["claims"],
        serde_json::json!({"env": "staging"})
    );
    let export = text(&server.run("sam", &["audit", "export"]).stdout);
    assert!(export.contains("action.claim_overridden"), "{export}");

    // Approved, it runs: the broker's labels are in the digest the agent checks.
    let sam = server.run("sam", &["approve", &id]);
    assert_eq!(sam.status.code(), Some(0), "{}", text(&sam.stderr));
    let out = agent.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(dir.join("ran.txt")).unwrap(),
        "applied\n"
    );
}
