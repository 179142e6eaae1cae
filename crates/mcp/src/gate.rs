//! The gate: turns a `tools/call` into an action and decides it locally with the broker's
//! policy, so that an allowed call costs microseconds. Allowed and denied calls are recorded in
//! the spool; calls that need approval go to the broker (see `approval`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use countersign_client::{ActionRequest, Client, ReportedEventType};
use countersign_model::{Action, Chain, Digest, Timestamp};
use countersign_policy::{Decision, Outcome, Policy};
use serde::Serialize;
use tokio::sync::Notify;

use crate::message::ToolCall;
use crate::spool::Spool;

/// The action kind of a tool call.
pub const KIND: &str = "mcp.tool_call";

/// What the proxy knows about where it stands, given by the binary.
#[derive(Debug, Clone)]
pub struct GateConfig {
    /// The server's name in resources `mcp:NAME/TOOL`.
    pub server: String,
    /// Labels every action of this server carries (`env=production`).
    pub labels: BTreeMap<String, String>,
    /// How often to ask the broker whether the policy changed.
    pub policy_refresh: Duration,
    /// How long the policy in hand may go unconfirmed by the broker before tool calls are
    /// refused: a proxy cut off from its broker (an outage, or someone blocking the way to keep
    /// an old policy in force) stops deciding with a policy nobody can vouch for.
    pub policy_max_age: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot ask the Countersign broker who this token is: {0}")]
    Whoami(countersign_client::ClientError),
    #[error(
        "cannot fetch the policy from the Countersign broker: {0}; no tool call can be checked \
         without it, so the proxy does not start"
    )]
    Policy(countersign_client::ClientError),
    #[error(
        "the broker's policy cannot be compiled here ({0}); is this proxy older than the broker?"
    )]
    Compile(String),
    #[error("the server name or a label cannot be used in an action: {0}")]
    Action(countersign_model::ActionError),
}

/// The policy in force here, and its hash.
#[derive(Debug)]
struct Local {
    policy: Policy,
    hash: Digest,
}

/// What to do with one tool call.
#[derive(Debug)]
pub enum Check {
    /// Forward it now; its `action.allowed` event is spooled.
    Allow,
    /// Answer with this tool error; its `action.denied` event is spooled.
    Deny(String),
    /// Ask the broker for approval.
    Approval(Box<ActionRequest>),
    /// Cannot be checked (an invalid action, a spool that cannot be written): not forwarded.
    Refuse(String),
}

#[derive(Debug)]
pub struct Gate {
    config: GateConfig,
    principal: Chain,
    client: Client,
    spool: Arc<Spool>,
    local: RwLock<Arc<Local>>,
    refresh: Notify,
    /// When the gate was made, and when the broker last confirmed the policy in force
    /// (milliseconds after `started`).
    started: Instant,
    confirmed: AtomicU64,
}

impl Gate {
    /// Learns who the token names and fetches the policy: without both, nothing can be checked.
    pub async fn connect(
        config: GateConfig,
        client: Client,
        spool: Arc<Spool>,
    ) -> Result<Gate, StartError> {
        let me = client.whoami().await.map_err(StartError::Whoami)?;
        let view = client.policy().await.map_err(StartError::Policy)?;
        let policy = Policy::parse(&view.text).map_err(|e| StartError::Compile(e.to_string()))?;
        let principal = Chain {
            id: me.id,
            kind: me.kind,
            on_behalf_of: me.acts_for,
            started_by: me.started_by,
        };
        Gate::offline(config, principal, policy, client, spool)
    }

    /// A gate with a policy in hand, for tools and tests: nothing is asked of the broker until a
    /// call needs approval or the spool is shipped.
    pub fn offline(
        config: GateConfig,
        principal: Chain,
        policy: Policy,
        client: Client,
        spool: Arc<Spool>,
    ) -> Result<Gate, StartError> {
        // What every call shares is checked once here; `check` checks what varies.
        Action {
            kind: KIND.to_owned(),
            resource: format!("mcp:{}/tool", config.server),
            labels: config.labels.clone(),
            details: serde_json::Value::Object(serde_json::Map::new()),
            principal: principal.clone(),
            justification: None,
        }
        .validate()
        .map_err(StartError::Action)?;
        let hash = policy.hash();
        Ok(Gate {
            config,
            principal,
            client,
            spool,
            local: RwLock::new(Arc::new(Local { policy, hash })),
            refresh: Notify::new(),
            started: Instant::now(),
            confirmed: AtomicU64::new(0),
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn spool(&self) -> &Arc<Spool> {
        &self.spool
    }

    pub fn server(&self) -> &str {
        &self.config.server
    }

    pub fn principal(&self) -> &Chain {
        &self.principal
    }

    /// `mcp:NAME/TOOL`.
    pub fn resource(&self, tool: &str) -> String {
        format!("mcp:{}/{tool}", self.config.server)
    }

    fn local(&self) -> Arc<Local> {
        Arc::clone(&self.local.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Decides a tool call with the local copy of the policy.
    pub fn check(&self, call: &ToolCall) -> Check {
        let action = Action {
            kind: KIND.to_owned(),
            resource: self.resource(&call.name),
            labels: self.config.labels.clone(),
            details: call.arguments.clone(),
            principal: self.principal.clone(),
            justification: None,
        };
        // Kind, labels and principal were checked when the gate was made, and the details are an
        // object: the tool's name is what is left to check, and the digest checks the arguments.
        let checked = match tool_name_problem(&call.name) {
            Some(problem) => Err(problem),
            None => action.digest().map_err(|e| e.to_string()),
        };
        let digest = match checked {
            Ok(digest) => digest,
            Err(e) => {
                return Check::Refuse(format!(
                    "Countersign cannot check this call to `{}`, so it was not run: {e}",
                    call.name
                ));
            }
        };
        if let Some(age) = self.stale() {
            let text = format!(
                "Countersign did not run this call to `{}`: its broker at {} has not confirmed \
                 the policy for {}s (at most {}s are allowed), so no call can be checked; calls \
                 run again once the broker answers",
                call.name,
                self.client.server(),
                age.as_secs(),
                self.config.policy_max_age.as_secs()
            );
            // Nothing ran and the broker is out of reach: the proxy's log is where operators
            // learn why the model's calls fail.
            tracing::warn!("{text}");
            return Check::Refuse(text);
        }
        let local = self.local();
        let decision = local.policy.decide(&action);
        let recorded = match decision.outcome {
            Outcome::RequireApproval => {
                let mut request = ActionRequest::new(action.kind, action.resource);
                request.labels = action.labels;
                request.details = action.details;
                return Check::Approval(Box::new(request));
            }
            Outcome::Allow => ReportedEventType::ActionAllowed,
            Outcome::Deny => ReportedEventType::ActionDenied,
        };
        let event = Decided {
            kind: recorded,
            data: DecidedData {
                event_id: self.spool.event_id(),
                digest,
                rules: &decision.rules,
                policy: local.hash,
                action: &action,
                decided_at: now(),
                enforced_by: "countersign mcp",
            },
            explanation: &decision.explanation,
        };
        if let Err(e) = self.spool.append_serialized(&event) {
            let text = format!(
                "Countersign cannot record this call to `{}` in its audit spool, so it was not \
                 run: {e}",
                call.name
            );
            tracing::error!("{text}");
            return Check::Refuse(text);
        }
        match decision.outcome {
            Outcome::Allow => Check::Allow,
            _ => Check::Deny(denial(&call.name, &decision)),
        }
    }

    /// How long since the broker last confirmed the policy, when that is too long.
    fn stale(&self) -> Option<Duration> {
        let confirmed = Duration::from_millis(self.confirmed.load(Ordering::Relaxed));
        let age = self.started.elapsed().saturating_sub(confirmed);
        (age >= self.config.policy_max_age).then_some(age)
    }

    fn confirm(&self) {
        let millis = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.confirmed.store(millis, Ordering::Relaxed);
    }

    /// Asks the poller to fetch the policy now: the broker decided otherwise than the local copy.
    pub fn policy_may_have_changed(&self) {
        self.refresh.notify_one();
    }

    /// Keeps the local policy equal to the broker's: polls every `policy_refresh`, and at once
    /// when asked. While the broker cannot be reached the last policy stays in force, for at
    /// most `policy_max_age` after the broker last confirmed it.
    pub async fn keep_policy_fresh(&self) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.config.policy_refresh) => {}
                () = self.refresh.notified() => {}
            }
            let view = match self.client.policy().await {
                Ok(view) => view,
                Err(e) => {
                    tracing::debug!("cannot refresh the policy: {e}");
                    continue;
                }
            };
            if view.hash == self.local().hash {
                self.confirm();
                continue;
            }
            match Policy::parse(&view.text) {
                Ok(policy) => {
                    *self.local.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(Local {
                        policy,
                        hash: view.hash,
                    });
                    self.confirm();
                    tracing::info!("the broker's policy changed; now enforcing {}", view.hash);
                }
                Err(e) => tracing::error!(
                    "the broker's new policy {} cannot be compiled here, the previous one stays \
                     in force: {e}",
                    view.hash
                ),
            }
        }
    }
}

/// An `action.allowed` or `action.denied` event as the spool keeps it (a `ReportedEvent`).
#[derive(Serialize)]
struct Decided<'a> {
    #[serde(rename = "type")]
    kind: ReportedEventType,
    data: DecidedData<'a>,
    explanation: &'a str,
}

#[derive(Serialize)]
struct DecidedData<'a> {
    event_id: String,
    digest: Digest,
    rules: &'a [String],
    policy: Digest,
    action: &'a Action,
    decided_at: Timestamp,
    enforced_by: &'static str,
}

/// Why a tool name cannot be part of a resource (`mcp:NAME/TOOL` holds at most 1,024
/// characters, none of them control characters), if it cannot.
fn tool_name_problem(tool: &str) -> Option<String> {
    if tool.is_empty() {
        return Some("the tool's name is empty".into());
    }
    if tool.chars().any(char::is_control) {
        return Some("the tool's name holds control characters".into());
    }
    (tool.len() > 900).then(|| "the tool's name is longer than 900 bytes".into())
}

/// The tool error a model reads when the policy refuses its call.
fn denial(tool: &str, decision: &Decision) -> String {
    let by = countersign_policy::decided_by_policy(&decision.rules);
    format!(
        "Countersign denied this call to `{tool}`; it was not run. Denied by {by}: {} Do not \
         retry it unchanged; if it is needed, ask a person to change the policy.",
        decision.explanation
    )
}

pub fn now() -> Timestamp {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Timestamp::from_unix_millis(millis)
}
