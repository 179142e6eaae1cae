//! The stdio transport: the agent's MCP client starts Countersign as its server; Countersign
//! starts the real server and relays each line both ways, byte for byte. Only `tools/call` and
//! `notifications/cancelled` from the client are looked into; the server's messages are looked
//! into only while an approved call waits for its answer (to record the outcome).
//!
//! Each direction is a thread doing blocking reads and writes: a message is forwarded the moment
//! it arrives, without a hop through a task scheduler. Calls waiting for approval are tasks on
//! the runtime.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use countersign_model::RequestId;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use crate::approval::{Held, Hold, record_outcome};
use crate::framing::{LineReader, is_blank};
use crate::gate::{Check, Gate};
use crate::held::{HeldCalls, Withdrawal};
use crate::message::{self, Inbound, RpcId, ToolCall};

/// The longest message accepted from the client, and from the server.
const MAX_FROM_CLIENT: usize = 64 * 1024 * 1024;
const MAX_FROM_SERVER: usize = 1024 * 1024 * 1024;
/// How long the server has to exit after its input closes before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StdioError {
    #[error("cannot start the MCP server `{program}`: {source}")]
    Start { program: String, source: io::Error },
    #[error("no MCP server command was given (expected `countersign mcp -- COMMAND [ARGS…]`)")]
    NoCommand,
}

type Sink = Mutex<Option<Box<dyn Write + Send>>>;

/// What both directions and the held calls share.
pub struct Relay {
    gate: Arc<Gate>,
    held: HeldCalls,
    to_server: Sink,
    to_client: Sink,
    /// Approved calls forwarded and not answered yet: id → (request, tool).
    watched: Mutex<HashMap<RpcId, (RequestId, String)>>,
    watching: AtomicUsize,
    runtime: Handle,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("gate", &self.gate)
            .finish_non_exhaustive()
    }
}

/// How a relay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The client closed our stdin.
    ClientClosed,
    /// The server closed its stdout.
    ServerClosed,
}

fn write_to(sink: &Sink, bytes: &[u8]) -> io::Result<()> {
    let mut guard = sink.lock().unwrap_or_else(|e| e.into_inner());
    match guard.as_mut() {
        Some(out) => out.write_all(bytes).and_then(|()| out.flush()),
        None => Err(io::Error::new(io::ErrorKind::BrokenPipe, "closed")),
    }
}

impl Relay {
    pub fn new(
        gate: Arc<Gate>,
        to_server: Box<dyn Write + Send>,
        to_client: Box<dyn Write + Send>,
        runtime: Handle,
    ) -> Arc<Relay> {
        Arc::new(Relay {
            gate,
            held: HeldCalls::default(),
            to_server: Mutex::new(Some(to_server)),
            to_client: Mutex::new(Some(to_client)),
            watched: Mutex::new(HashMap::new()),
            watching: AtomicUsize::new(0),
            runtime,
        })
    }

    fn to_server(&self, bytes: &[u8]) {
        if let Err(e) = write_to(&self.to_server, bytes) {
            tracing::debug!("cannot write to the MCP server: {e}");
        }
    }

    fn to_client(&self, bytes: &[u8]) {
        if let Err(e) = write_to(&self.to_client, bytes) {
            tracing::debug!("cannot write to the MCP client: {e}");
        }
    }

    /// Relays the client's messages to the server until the client closes its end.
    pub fn pump_client(self: &Arc<Self>, from_client: impl Read) -> Ended {
        let mut lines = LineReader::new(from_client, MAX_FROM_CLIENT);
        let mut line = Vec::new();
        loop {
            match lines.read_line(&mut line) {
                Ok(true) => self.from_client(&line),
                Ok(false) => break,
                Err(e) => {
                    tracing::error!("stopped reading the MCP client: {e}");
                    break;
                }
            }
        }
        self.held.withdraw_all();
        // Closing the server's input tells it to exit.
        self.to_server
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        Ended::ClientClosed
    }

    /// One message from the client.
    pub fn from_client(self: &Arc<Self>, line: &[u8]) {
        if is_blank(line) {
            return self.to_server(line);
        }
        match message::classify(line) {
            Inbound::Pass => self.to_server(line),
            Inbound::ToolCall(call) => self.tool_call(call, line),
            Inbound::Cancelled(id) => match self.held.withdraw(id.as_json(), line) {
                Withdrawal::NotHeld => self.to_server(line),
                Withdrawal::Withdrawn | Withdrawal::Deferred => {}
            },
            Inbound::Refused(refusal) => {
                tracing::warn!("refused a message from the client: {}", refusal.message);
                if refusal.id.is_some() {
                    self.to_client(&message::error_response(&refusal));
                }
            }
            Inbound::Batch(items) => self.batch(items, line),
        }
    }

    fn tool_call(self: &Arc<Self>, call: ToolCall, line: &[u8]) {
        match self.gate.check(&call) {
            Check::Allow => self.to_server(line),
            Check::Deny(text) | Check::Refuse(text) => {
                self.to_client(&message::tool_error(&call.id, &text));
            }
            Check::Approval(action) => {
                let key = call.id.as_json().to_owned();
                let Some(withdrawn) = self.held.hold(&key) else {
                    let text = format!(
                        "Countersign did not run this call: another call with id {} is already \
                         waiting for approval; use a new id",
                        call.id
                    );
                    return self.to_client(&message::tool_error(&call.id, &text));
                };
                let relay = Arc::clone(self);
                let line = line.to_vec();
                self.runtime.spawn(async move {
                    relay.hold(call, *action, line, key, withdrawn).await;
                });
            }
        }
    }

    async fn hold(
        self: Arc<Self>,
        call: ToolCall,
        action: countersign_client::ActionRequest,
        line: Vec<u8>,
        key: String,
        withdrawn: tokio::sync::oneshot::Receiver<()>,
    ) {
        let mut sent = 0u64;
        let token = call.progress_token.clone();
        let relay = Arc::clone(&self);
        let mut progress = move |text: &str| {
            if let Some(token) = &token {
                sent += 1;
                relay.to_client(&message::progress(token, sent, text));
            }
        };
        let hold = Hold {
            gate: &self.gate,
            tool: &call.name,
            action: &action,
            held: &self.held,
            key: &key,
        };
        let held = hold.run(withdrawn, &mut progress).await;
        match held {
            Held::Forward { request } => {
                if let Some(request) = request {
                    self.watch(call.id.clone(), request, &call.name);
                }
                self.to_server(&line);
                if let Some(cancel) = self.held.release(&key) {
                    self.to_server(&cancel);
                }
            }
            Held::Refused(text) => {
                self.held.release(&key);
                self.to_client(&message::tool_error(&call.id, &text));
            }
            Held::Withdrawn => {
                self.held.release(&key);
            }
        }
    }

    /// A batch goes on unchanged when every tool call in it may run now; otherwise nothing of it
    /// is forwarded (a held call cannot be split out of a batch without changing its answer).
    fn batch(self: &Arc<Self>, items: Vec<Inbound>, line: &[u8]) {
        let mut replies = Vec::new();
        let mut all_allowed = true;
        for item in &items {
            if let Inbound::ToolCall(call) = item {
                match self.gate.check(call) {
                    Check::Allow => {}
                    Check::Deny(text) | Check::Refuse(text) => {
                        all_allowed = false;
                        replies.push(message::tool_error(&call.id, &text));
                    }
                    Check::Approval(_) => {
                        all_allowed = false;
                        replies.push(message::tool_error(
                            &call.id,
                            "Countersign did not run this call: it needs approval, and calls that \
                             need approval cannot be held inside a batch; send it on its own",
                        ));
                    }
                }
            } else if let Inbound::Refused(refusal) = item {
                all_allowed = false;
                replies.push(message::error_response(refusal));
            }
        }
        if all_allowed {
            return self.to_server(line);
        }
        if !replies.is_empty() {
            self.to_client(&message::batch(&replies));
        }
    }

    fn watch(&self, id: RpcId, request: RequestId, tool: &str) {
        let mut watched = self.watched.lock().unwrap_or_else(|e| e.into_inner());
        watched.insert(id, (request, tool.to_owned()));
        self.watching.store(watched.len(), Ordering::Release);
    }

    /// Relays the server's messages to the client until the server closes its end.
    pub fn pump_server(self: &Arc<Self>, from_server: impl Read) -> Ended {
        let mut lines = LineReader::new(from_server, MAX_FROM_SERVER);
        let mut line = Vec::new();
        loop {
            match lines.read_line(&mut line) {
                Ok(true) => {
                    if self.watching.load(Ordering::Acquire) > 0 {
                        self.check_answers(&line);
                    }
                    self.to_client(&line);
                }
                Ok(false) => break,
                Err(e) => {
                    tracing::error!("stopped reading the MCP server: {e}");
                    break;
                }
            }
        }
        self.held.withdraw_all();
        let unanswered: Vec<_> = {
            let mut watched = self.watched.lock().unwrap_or_else(|e| e.into_inner());
            self.watching.store(0, Ordering::Release);
            watched.drain().collect()
        };
        for (_, (request, tool)) in unanswered {
            let gate = Arc::clone(&self.gate);
            self.runtime.spawn(async move {
                let answer = message::Answer::Error {
                    code: 0,
                    message: "the server exited before answering".into(),
                };
                record_outcome(&gate, request, &tool, &answer).await;
            });
        }
        Ended::ServerClosed
    }

    fn check_answers(&self, line: &[u8]) {
        for (id, answer) in message::answers(line) {
            let found = {
                let mut watched = self.watched.lock().unwrap_or_else(|e| e.into_inner());
                let found = watched.remove(&id);
                self.watching.store(watched.len(), Ordering::Release);
                found
            };
            if let Some((request, tool)) = found {
                let gate = Arc::clone(&self.gate);
                self.runtime.spawn(async move {
                    record_outcome(&gate, request, &tool, &answer).await;
                });
            }
        }
    }
}

/// Starts the server and relays until either side closes; returns the server's exit status.
/// The server inherits the proxy's environment except the variables named in `withheld` (the
/// proxy's own credentials: the binary, which reads the environment, says which).
pub async fn run(
    gate: Arc<Gate>,
    command: &[String],
    withheld: &[OsString],
) -> Result<ExitStatus, StdioError> {
    let (program, args) = command.split_first().ok_or(StdioError::NoCommand)?;
    let mut server = Command::new(program);
    for name in withheld {
        server.env_remove(name);
    }
    let mut child = server
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|source| StdioError::Start {
            program: program.clone(),
            source,
        })?;
    let (Some(server_in), Some(server_out)) = (child.stdin.take(), child.stdout.take()) else {
        let _ = child.kill();
        return Err(StdioError::Start {
            program: program.clone(),
            source: io::Error::other("its standard input and output could not be connected"),
        });
    };
    let relay = Relay::new(
        gate,
        Box::new(server_in),
        Box::new(io::stdout()),
        Handle::current(),
    );
    let (ended_tx, mut ended_rx) = mpsc::unbounded_channel();
    let client_side = {
        let (relay, ended_tx) = (Arc::clone(&relay), ended_tx.clone());
        move || {
            let _ = ended_tx.send(relay.pump_client(io::stdin()));
        }
    };
    let server_side = {
        let relay = Arc::clone(&relay);
        move || {
            let _ = ended_tx.send(relay.pump_server(server_out));
        }
    };
    for (name, side) in [
        (
            "mcp-from-client",
            Box::new(client_side) as Box<dyn FnOnce() + Send>,
        ),
        ("mcp-from-server", Box::new(server_side)),
    ] {
        if let Err(source) = std::thread::Builder::new().name(name.into()).spawn(side) {
            let _ = child.kill();
            return Err(StdioError::Start {
                program: program.clone(),
                source,
            });
        }
    }
    let first = ended_rx.recv().await;
    tracing::debug!("relay ended: {first:?}");
    Ok(wait_for_exit(&mut child).await)
}

/// Waits for the server to exit after its input closed, killing it after a grace period.
async fn wait_for_exit(child: &mut Child) -> ExitStatus {
    let deadline = tokio::time::Instant::now() + EXIT_GRACE;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status,
            Ok(None) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            _ => {
                let _ = child.kill();
                match child.wait() {
                    Ok(status) => return status,
                    Err(_) => return std::os::unix::process::ExitStatusExt::from_raw(1 << 8),
                }
            }
        }
    }
}
