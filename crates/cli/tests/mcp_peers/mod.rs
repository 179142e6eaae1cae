//! The real peers of the MCP proxy tests: `@modelcontextprotocol/server-everything` (npm) as the
//! upstream server, and the official MCP Python SDK as the client, driven through
//! tests/peers/python/mcp_driver.py. Both are installed by scripts/install-test-peers; a test
//! without them fails and says so.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use countersign_test_support::ports;
pub use countersign_test_support::ports::free_port;
pub use countersign_test_support::process::{Peer as Process, repo_root as repo};
use serde_json::{Value, json};

/// How long any one expected thing may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

fn installed(path: PathBuf) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: run scripts/install-test-peers to install the MCP test peers",
        path.display()
    );
    path
}

pub fn python() -> PathBuf {
    installed(repo().join("tests/peers/python/.venv/bin/python"))
}

/// `mcp-server-everything`, as npm installed it.
pub fn everything() -> PathBuf {
    installed(repo().join("tests/peers/mcp/node_modules/.bin/mcp-server-everything"))
}

/// Polls until something listens on `port`.
pub fn wait_for_port(port: u16, what: &str) {
    ports::wait_for_port(port, what, DEADLINE);
}

/// `countersign mcp --name NAME --listen` on a free port in front of `upstream`, run by
/// deploy-bot against `server` with its spool in `spool` and `env` added to its environment;
/// returns it, once it listens, and its port.
pub fn listening_proxy(
    server: &crate::support::Server,
    name: &str,
    upstream: &str,
    spool: impl AsRef<OsStr>,
    env: &[(&str, &str)],
) -> (Process, u16) {
    let port = free_port();
    let child = Command::new(crate::support::BIN)
        .args([
            "mcp",
            "--name",
            name,
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--upstream",
            upstream,
        ])
        .env("COUNTERSIGN_SERVER", &server.url)
        .env("COUNTERSIGN_TOKEN", crate::support::token("deploy-bot"))
        .env("COUNTERSIGN_SPOOL", spool)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let process = Process(child);
    wait_for_port(port, "countersign mcp --listen");
    (process, port)
}

/// server-everything in its streamable HTTP mode on a free port; returns it and its endpoint.
pub fn everything_over_http() -> (Process, String) {
    let port = free_port();
    let child = Command::new(everything())
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let process = Process(child);
    wait_for_port(port, "server-everything (streamable HTTP)");
    (process, format!("http://127.0.0.1:{port}/mcp"))
}

/// The Python SDK client, taking commands and reporting events as JSON lines.
#[derive(Debug)]
pub struct Driver {
    process: Process,
    stdin: ChildStdin,
    events: mpsc::Receiver<Value>,
    /// Events read while looking for another one.
    backlog: Vec<Value>,
    pub tools: Vec<String>,
}

impl Driver {
    /// Starts the driver (`stdio COMMAND…` or `http URL`) with `env`, and waits until it has
    /// initialized the session and listed the tools.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Driver {
        let mut command = Command::new(python());
        command
            .arg(repo().join("tests/peers/python/mcp_driver.py"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<Value>(&line) {
                    Ok(event) => {
                        let _ = tx.send(event);
                    }
                    Err(_) => eprintln!("mcp_driver: {line}"),
                }
            }
        });
        let mut driver = Driver {
            process: Process(child),
            stdin,
            events,
            backlog: Vec::new(),
            tools: Vec::new(),
        };
        let ready = driver.expect("the client to be ready", |e| e["event"] == "ready");
        driver.tools = serde_json::from_value(ready["tools"].clone()).unwrap();
        driver
    }

    pub fn send(&mut self, command: Value) {
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// Calls a tool; its events carry `tag`.
    pub fn call(&mut self, tag: &str, tool: &str, arguments: Value) {
        self.send(json!({"op": "call", "tag": tag, "tool": tool, "arguments": arguments, "progress": true}));
    }

    /// Waits for the first event matching `wanted` (earlier unmatched events stay queued).
    pub fn expect(&mut self, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.backlog.iter().position(&wanted) {
            return self.backlog.remove(i);
        }
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) if wanted(&event) => return event,
                Ok(event) => self.backlog.push(event),
                Err(_) => panic!(
                    "waited {DEADLINE:?} for {what}; the client said: {:#?}",
                    self.backlog
                ),
            }
        }
    }

    /// The call's final event: a result or an error.
    pub fn outcome(&mut self, tag: &str) -> Value {
        self.expect(&format!("the answer to call {tag}"), |e| {
            e["tag"] == tag && (e["event"] == "result" || e["event"] == "error")
        })
    }

    /// Whether the call has answered yet, from what has arrived so far.
    pub fn answered(&mut self, tag: &str) -> bool {
        while let Ok(event) = self.events.try_recv() {
            self.backlog.push(event);
        }
        self.backlog
            .iter()
            .any(|e| e["tag"] == tag && (e["event"] == "result" || e["event"] == "error"))
    }

    pub fn quit(mut self) {
        self.send(json!({"op": "quit"}));
        let deadline = Instant::now() + DEADLINE;
        while self.process.0.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the client did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
