//! A real broker process for the end-to-end tests: configuration, principals, start, SIGKILL,
//! restart on the same data, and the CLI run against it.

// Each test crate uses part of the support.
#![allow(dead_code)]

use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use countersign_model::SecretKey;
use countersign_test_support::poll;
use countersign_test_support::ports::{free_port, wait_for_port};
pub use countersign_test_support::principals::token;
use countersign_test_support::principals::{Principal, principals_toml};
use countersign_test_support::scratch::Scratch;

pub const BIN: &str = env!("CARGO_BIN_EXE_countersign");

/// The policy every test broker enforces unless given another.
pub const POLICY: &str = r#"
version = 1
default = "deny"

[[rules]]
id = "scripted-change"
decision = "require_approval"
reason = "Scripts that change production need a DBA and an SRE"
match.kind = "shell.exec"
match.command = "sh -c *"
approvers = { groups = ["dba", "sre"], count = 2, distinct_groups = 2 }
notify = ["slack:#sre"]

[[rules]]
id = "read-only"
decision = "allow"
reason = "Printing changes nothing"
match.kind = "shell.exec"
match.command = "echo *"
"#;

const PRINCIPALS: [Principal<'static>; 4] = [
    ("deploy-bot", "agent", "acts_for = [\"alice\"]"),
    ("alice", "human", "groups = [\"dba\", \"sre\"]"),
    (
        "dana",
        "human",
        "groups = [\"dba\"]\nslack_user = \"U0DANA0001\"",
    ),
    (
        "sam",
        "human",
        "groups = [\"sre\"]\nslack_user = \"U0SAM00001\"",
    ),
];

/// A broker process on a free port, with its own data directory; killed when dropped.
#[derive(Debug)]
pub struct Server {
    pub dir: Scratch,
    pub url: String,
    port: u16,
    child: Child,
    /// Environment variables the broker starts with (on every restart too).
    env: Vec<(String, String)>,
}

impl Drop for Server {
    // The directory goes after the process, with the field.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_server(name: &str) -> Server {
    start_server_with_policy(name, POLICY)
}

/// A broker like [`start_server`]'s, enforcing `policy`.
pub fn start_server_with_policy(name: &str, policy: &str) -> Server {
    start_server_with(name, policy, "", &[])
}

/// A broker enforcing `policy`, with `extra` appended to its configuration (a `[slack]` table,
/// say) and `env` in its environment, on every start.
pub fn start_server_with(name: &str, policy: &str, extra: &str, env: &[(&str, &str)]) -> Server {
    let dir = Scratch::named(&format!("e2e-{name}"));
    std::fs::write(dir.join("policy.toml"), policy).unwrap();
    let port = free_port();
    let mut config =
        format!("listen = \"127.0.0.1:{port}\"\ndata_dir = \"data\"\npolicy = \"policy.toml\"\n");
    config.push_str(&principals_toml(&PRINCIPALS));
    config.push_str(extra);
    std::fs::write(dir.join("countersign.toml"), config).unwrap();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let child = spawn_broker(&dir, port, &env);
    Server {
        dir,
        url: format!("http://127.0.0.1:{port}"),
        port,
        child,
        env,
    }
}

/// Starts `countersign serve` on the configuration in `dir` and polls until it listens.
fn spawn_broker(dir: &std::path::Path, port: u16, env: &[(String, String)]) -> Child {
    spawn_broker_with(dir, port, env, &[])
}

fn spawn_broker_with(
    dir: &std::path::Path,
    port: u16,
    env: &[(String, String)],
    args: &[&str],
) -> Child {
    let child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(dir.join("countersign.toml"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_port(port, "the broker", Duration::from_secs(20));
    child
}

impl Server {
    /// Sends the broker a signal by name (HUP, TERM), as an operator would with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    /// Kills the broker with SIGKILL, as a crash would, and starts it again on the same data.
    pub fn crash_and_restart(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.child = spawn_broker(&self.dir, self.port, &self.env);
    }

    /// Kills the broker (SIGKILL) and leaves it down until [`Server::start_again`].
    pub fn stop(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Starts a stopped broker again on the same data and port.
    pub fn start_again(&mut self) {
        self.child = spawn_broker(&self.dir, self.port, &self.env);
    }

    /// Starts a stopped broker again with more arguments to `serve` (`--init`).
    pub fn start_again_with(&mut self, args: &[&str]) {
        self.child = spawn_broker_with(&self.dir, self.port, &self.env, args);
    }

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

    /// The request `id` as `who` reads it (`GET /v1/requests/{id}`).
    pub async fn request(&self, who: &str, id: &str) -> serde_json::Value {
        reqwest::Client::new()
            .get(format!("{}/v1/requests/{id}", self.url))
            .bearer_auth(token(who))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub fn public_key(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("data/signing.key")).unwrap();
        text.parse::<SecretKey>().unwrap().public_key().to_string()
    }

    /// Polls `countersign pending` until a request appears, and returns its id.
    pub fn wait_for_pending(&self) -> String {
        poll::until(Duration::from_secs(20), "a pending request", || {
            let out = self.run("sam", &["pending", "--json"]);
            let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            let requests = listed.get("requests").cloned().unwrap_or(listed);
            requests
                .get(0)
                .and_then(|r| r["id"].as_str())
                .map(str::to_owned)
        })
    }
}
