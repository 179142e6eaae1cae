//! The first end-to-end path with real processes: `countersign serve`, an agent's gated
//! `countersign run`, reviews from the CLI, and the audit log verified online and offline.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use countersign_model::{Digest, SecretKey};

const BIN: &str = env!("CARGO_BIN_EXE_countersign");

const POLICY: &str = r#"
version = 1
default = "deny"

[[rules]]
id = "scripted-change"
decision = "require_approval"
reason = "Scripts that change production need a DBA and an SRE"
match.kind = "shell.exec"
match.command = "sh -c *"
approvers = { groups = ["dba", "sre"], count = 2, distinct_groups = 2 }

[[rules]]
id = "read-only"
decision = "allow"
reason = "Printing changes nothing"
match.kind = "shell.exec"
match.command = "echo *"
"#;

/// (id, kind, extra TOML)
const PRINCIPALS: [(&str, &str, &str); 4] = [
    ("deploy-bot", "agent", "acts_for = [\"alice\"]"),
    ("alice", "human", "groups = [\"dba\", \"sre\"]"),
    ("dana", "human", "groups = [\"dba\"]"),
    ("sam", "human", "groups = [\"sre\"]"),
];

fn token(id: &str) -> String {
    format!("e2e-token-{id}")
}

/// A broker process on a free port, with its own data directory; killed when dropped.
#[derive(Debug)]
pub struct Server {
    pub dir: PathBuf,
    pub url: String,
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn start_server(name: &str) -> Server {
    let dir = std::env::temp_dir().join(format!("countersign-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("policy.toml"), POLICY).unwrap();
    let port = free_port();
    let mut config =
        format!("listen = \"127.0.0.1:{port}\"\ndata_dir = \"data\"\npolicy = \"policy.toml\"\n");
    for (id, kind, extra) in PRINCIPALS {
        let hash = Digest::of(token(id).as_bytes()).hex();
        config.push_str(&format!("\n[[principals]]\nid = \"{id}\"\nkind = \"{kind}\"\n{extra}\ntoken_sha256 = \"{hash}\"\n"));
    }
    std::fs::write(dir.join("countersign.toml"), config).unwrap();
    let child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(dir.join("countersign.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server {
        dir,
        url: format!("http://127.0.0.1:{port}"),
        child,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the broker did not start listening"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

impl Server {
    pub fn command(&self, who: &str) -> Command {
        let mut command = Command::new(BIN);
        command
            .env("COUNTERSIGN_SERVER", &self.url)
            .env("COUNTERSIGN_TOKEN", token(who));
        command
    }

    pub fn run(&self, who: &str, args: &[&str]) -> Output {
        self.command(who).args(args).output().unwrap()
    }

    pub fn public_key(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("data/signing.key")).unwrap();
        text.parse::<SecretKey>().unwrap().public_key().to_string()
    }

    /// Polls `countersign pending` until a request appears, and returns its id.
    pub fn wait_for_pending(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = self.run("sam", &["pending", "--json"]);
            let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            let requests = listed.get("requests").cloned().unwrap_or(listed);
            if let Some(id) = requests.get(0).and_then(|r| r["id"].as_str()) {
                return id.to_owned();
            }
            assert!(Instant::now() < deadline, "no request became pending");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

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
