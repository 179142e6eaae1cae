//! The MCP side of the gate: turns a `tools/call` into an action (kind `mcp.tool_call`, resource
//! `mcp:NAME/TOOL`, details = the arguments) for the shared local gate (`countersign_enforce`),
//! and words its verdicts as the tool errors a model reads. Calls that need approval go to the
//! broker (see `approval`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use countersign_client::{ActionRequest, Client};
use countersign_enforce::gate::{self as local, ConnectError, Refusal};
use countersign_model::{Action, Chain};
use countersign_policy::{Decision, Policy};

use countersign_enforce::Spool;

use crate::message::ToolCall;

/// The action kind of a tool call.
pub const KIND: &str = "mcp.tool_call";

/// Who enforced a decision, as its audit event names it.
const ENFORCED_BY: &str = "countersign mcp";

/// What the proxy knows about where it stands, given by the binary.
#[derive(Debug, Clone)]
pub struct GateConfig {
    /// The server's name in resources `mcp:NAME/TOOL`.
    pub server: String,
    /// Claims every tool call of this server carries (`env=production`): the agent runs the
    /// proxy and can configure it, so these are its words, never labels.
    pub claims: BTreeMap<String, String>,
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

impl From<ConnectError> for StartError {
    fn from(e: ConnectError) -> StartError {
        match e {
            ConnectError::Whoami(e) => StartError::Whoami(e),
            ConnectError::Policy(e) => StartError::Policy(e),
            ConnectError::Compile(e) => StartError::Compile(e),
        }
    }
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

/// The shared local gate, with what makes a tool call an action: the server's name.
#[derive(Debug)]
pub struct Gate {
    local: Arc<local::Gate>,
    server: String,
}

impl Gate {
    /// Learns who the token names and fetches the policy: without both, nothing can be checked.
    pub async fn connect(
        config: GateConfig,
        client: Client,
        spool: Arc<Spool>,
    ) -> Result<Gate, StartError> {
        let (server, config) = split(config);
        let local = local::Gate::connect(config, client, spool).await?;
        Gate::checked(local, server)
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
        let (server, config) = split(config);
        let local = local::Gate::offline(config, principal, policy, client, spool);
        Gate::checked(local, server)
    }

    fn checked(local: local::Gate, server: String) -> Result<Gate, StartError> {
        // What every call shares is checked once here; `check` checks what varies.
        let gate = Gate {
            local: Arc::new(local),
            server,
        };
        let sample = gate.local.action(
            KIND,
            gate.resource("tool"),
            serde_json::Value::Object(serde_json::Map::new()),
        );
        sample.validate().map_err(StartError::Action)?;
        Ok(gate)
    }

    /// The gate every enforcement point shares, which this one wraps.
    pub fn local(&self) -> &Arc<local::Gate> {
        &self.local
    }

    pub fn client(&self) -> &Client {
        self.local.client()
    }

    pub fn spool(&self) -> &Arc<Spool> {
        self.local.spool()
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    pub fn principal(&self) -> &Chain {
        self.local.principal()
    }

    /// `mcp:NAME/TOOL`.
    pub fn resource(&self, tool: &str) -> String {
        format!("mcp:{}/{tool}", self.server)
    }

    /// Decides a tool call with the local copy of the policy.
    pub fn check(&self, call: &ToolCall) -> Check {
        // Kind, labels and principal were checked when the gate was made, and the details are an
        // object: the tool's name is what is left to check, and the digest checks the arguments.
        if let Some(problem) = tool_name_problem(&call.name) {
            return Check::Refuse(unchecked(&call.name, &problem));
        }
        let action: Action =
            self.local
                .action(KIND, self.resource(&call.name), call.arguments.clone());
        match self.local.check(action) {
            local::Check::Allow => Check::Allow,
            local::Check::Deny(decision) => Check::Deny(denial(&call.name, &decision)),
            local::Check::Approval(request) => Check::Approval(request),
            local::Check::Refuse(Refusal::Invalid(e)) => {
                Check::Refuse(unchecked(&call.name, &e.to_string()))
            }
            local::Check::Refuse(Refusal::Stale { age, max_age }) => {
                let text = format!(
                    "Countersign did not run this call to `{}`: its broker at {} has not confirmed \
                     the policy for {}s (at most {}s are allowed), so no call can be checked; calls \
                     run again once the broker answers",
                    call.name,
                    self.client().server(),
                    age.as_secs(),
                    max_age.as_secs()
                );
                // Nothing ran and the broker is out of reach: the proxy's log is where operators
                // learn why the model's calls fail.
                tracing::warn!("{text}");
                Check::Refuse(text)
            }
            local::Check::Refuse(Refusal::Unbound { bindings }) => Check::Refuse(format!(
                "Countersign did not run this call to `{}`: the broker's configuration binds {} \
                 to the resources {bindings}, and {} is none of them",
                call.name,
                self.principal().id,
                self.resource(&call.name)
            )),
            local::Check::Refuse(Refusal::Unrecorded(e)) => {
                let text = format!(
                    "Countersign cannot record this call to `{}` in its audit spool, so it was not \
                     run: {e}",
                    call.name
                );
                tracing::error!("{text}");
                Check::Refuse(text)
            }
        }
    }

    /// Asks the poller to fetch the policy now: the broker decided otherwise than the local copy.
    pub fn policy_may_have_changed(&self) {
        self.local.policy_may_have_changed();
    }
}

fn split(config: GateConfig) -> (String, local::GateConfig) {
    let shared = local::GateConfig {
        claims: config.claims,
        policy_refresh: config.policy_refresh,
        policy_max_age: config.policy_max_age,
        enforced_by: ENFORCED_BY,
    };
    (config.server, shared)
}

fn unchecked(tool: &str, problem: &str) -> String {
    format!("Countersign cannot check this call to `{tool}`, so it was not run: {problem}")
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
