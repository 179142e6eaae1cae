//! The local gate: decides any action with the broker's policy compiled here, so that an allowed
//! action costs microseconds. Allowed and denied actions are recorded in the audit spool before
//! they go on; actions that need approval go to the broker (see `hold`). The policy is polled for
//! changes and refused once the broker has not confirmed it for longer than its maximum age.
//!
//! What turns a protocol's message into an [`Action`] (a tool call, a statement, an HTTP call)
//! stays with its enforcement point, as do the words its client reads.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use countersign_client::{ActionRequest, Client, ClientError, ReportedEventType};
use countersign_model::{Action, ActionError, Chain, Digest, Timestamp};
use countersign_policy::glob::Glob;
use countersign_policy::{Decision, Outcome, Policy};
use serde::Serialize;
use tokio::sync::Notify;

use crate::spool::{Spool, SpoolError};

/// What an enforcement point knows about where it stands, given by the binary.
#[derive(Debug, Clone)]
pub struct GateConfig {
    /// Claims every action of this enforcement point carries (`env=production`): it runs as the
    /// agent, which can configure it, so what it says is the agent's word, never a label.
    pub claims: BTreeMap<String, String>,
    /// How often to ask the broker whether the policy changed.
    pub policy_refresh: Duration,
    /// How long the policy in hand may go unconfirmed by the broker before actions are refused:
    /// a gate cut off from its broker (an outage, or someone blocking the way to keep an old
    /// policy in force) stops deciding with a policy nobody can vouch for.
    pub policy_max_age: Duration,
    /// Who enforced a decision, as its audit event names it (`countersign mcp`).
    pub enforced_by: &'static str,
}

/// What the broker's configuration says of the gate's principal (`GET /v1/whoami`): the labels
/// every one of its actions carries, and the resources it is bound to. The gate decides with
/// them, so that its local decision is the broker's.
#[derive(Debug, Clone, Default)]
pub struct Bindings {
    pub labels: BTreeMap<String, String>,
    resources: Vec<Glob>,
}

impl Bindings {
    /// The labels and resource patterns as the broker names them.
    pub fn new(labels: BTreeMap<String, String>, resources: &[String]) -> Result<Bindings, String> {
        let resources = resources
            .iter()
            .map(|p| Glob::new(p).map_err(|e| format!("resource binding '{p}': {e}")))
            .collect::<Result<_, _>>()?;
        Ok(Bindings { labels, resources })
    }

    /// The patterns, quoted, when `resource` is outside them.
    fn outside(&self, resource: &str) -> Option<String> {
        if self.resources.is_empty() || self.resources.iter().any(|g| g.matches(resource)) {
            return None;
        }
        let quoted: Vec<String> = self
            .resources
            .iter()
            .map(|g| format!("'{}'", g.as_str()))
            .collect();
        Some(quoted.join(", "))
    }
}

/// Why a gate cannot start: without the principal and the policy nothing can be checked.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot ask the Countersign broker who this token is: {0}")]
    Whoami(ClientError),
    #[error("cannot fetch the policy from the Countersign broker: {0}")]
    Policy(ClientError),
    #[error("the broker's policy cannot be compiled here ({0})")]
    Compile(String),
}

/// The policy in force here, and its hash.
#[derive(Debug)]
struct Local {
    policy: Policy,
    hash: Digest,
}

/// What to do with one action.
#[derive(Debug)]
pub enum Check {
    /// Let it run now; its `action.allowed` event is spooled.
    Allow,
    /// The policy denies it; its `action.denied` event is spooled.
    Deny(Decision),
    /// Ask the broker for approval (see `hold`).
    Approval(Box<ActionRequest>),
    /// It cannot be checked: it does not run.
    Refuse(Refusal),
}

/// Why an action cannot be checked here.
#[derive(Debug)]
pub enum Refusal {
    /// The action is not valid (its digest cannot be computed).
    Invalid(ActionError),
    /// The broker has not confirmed the policy for `age`, longer than `max_age`.
    Stale { age: Duration, max_age: Duration },
    /// Its decision cannot be made durable in the audit spool.
    Unrecorded(SpoolError),
    /// The resource is outside those the broker's configuration binds the principal to
    /// (`bindings`, quoted): the broker would refuse it too.
    Unbound { bindings: String },
}

#[derive(Debug)]
pub struct Gate {
    config: GateConfig,
    principal: Chain,
    bindings: Bindings,
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
    ) -> Result<Gate, ConnectError> {
        let (principal, bindings, policy) = fetch(&client).await?;
        Ok(Gate::offline(config, principal, policy, client, spool).bound(bindings))
    }

    /// A gate with a policy in hand, for tools and tests: nothing is asked of the broker until an
    /// action needs approval or the spool is shipped.
    pub fn offline(
        config: GateConfig,
        principal: Chain,
        policy: Policy,
        client: Client,
        spool: Arc<Spool>,
    ) -> Gate {
        let hash = policy.hash();
        Gate {
            config,
            principal,
            bindings: Bindings::default(),
            client,
            spool,
            local: RwLock::new(Arc::new(Local { policy, hash })),
            refresh: Notify::new(),
            started: Instant::now(),
            confirmed: AtomicU64::new(0),
        }
    }

    /// The gate with the labels and resource bindings the broker's configuration gives its
    /// principal.
    pub fn bound(mut self, bindings: Bindings) -> Gate {
        self.bindings = bindings;
        self
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn spool(&self) -> &Arc<Spool> {
        &self.spool
    }

    pub fn principal(&self) -> &Chain {
        &self.principal
    }

    pub fn config(&self) -> &GateConfig {
        &self.config
    }

    /// The action of this enforcement point's principal: the labels the broker's configuration
    /// gives it, and this enforcement point's claims.
    pub fn action(&self, kind: &str, resource: String, details: serde_json::Value) -> Action {
        Action {
            kind: kind.to_owned(),
            resource,
            labels: self.bindings.labels.clone(),
            claims: self.config.claims.clone(),
            details,
            principal: self.principal.clone(),
            justification: None,
        }
    }

    fn local(&self) -> Arc<Local> {
        Arc::clone(&self.local.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Decides an action with the local copy of the policy, and spools the decision when it is
    /// an allow or a deny.
    pub fn check(&self, action: Action) -> Check {
        let digest = match action.digest() {
            Ok(digest) => digest,
            Err(e) => return Check::Refuse(Refusal::Invalid(e)),
        };
        if let Some(age) = self.stale() {
            return Check::Refuse(Refusal::Stale {
                age,
                max_age: self.config.policy_max_age,
            });
        }
        if let Some(bindings) = self.bindings.outside(&action.resource) {
            return Check::Refuse(Refusal::Unbound { bindings });
        }
        let local = self.local();
        let decision = local.policy.decide(&action);
        let recorded = match decision.outcome {
            Outcome::RequireApproval => {
                // The broker adds the principal's labels itself: an agent never sends labels.
                let mut request = ActionRequest::new(action.kind, action.resource);
                request.claims = action.claims;
                request.details = action.details;
                request.justification = action.justification;
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
                enforced_by: self.config.enforced_by,
            },
            explanation: &decision.explanation,
        };
        if let Err(e) = self.spool.append_serialized(&event) {
            return Check::Refuse(Refusal::Unrecorded(e));
        }
        match decision.outcome {
            Outcome::Allow => Check::Allow,
            _ => Check::Deny(decision),
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

/// Who the token names, and the broker's policy compiled.
async fn fetch(client: &Client) -> Result<(Chain, Bindings, Policy), ConnectError> {
    let me = client.whoami().await.map_err(ConnectError::Whoami)?;
    let view = client.policy().await.map_err(ConnectError::Policy)?;
    let policy = Policy::parse(&view.text).map_err(|e| ConnectError::Compile(e.to_string()))?;
    let bindings = Bindings::new(me.labels, &me.resources).map_err(ConnectError::Compile)?;
    let principal = Chain {
        via: None,
        id: me.id,
        kind: me.kind,
        on_behalf_of: me.acts_for,
        started_by: me.started_by,
    };
    Ok((principal, bindings, policy))
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

/// The time on this machine's clock, as audit events carry it.
pub fn now() -> Timestamp {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Timestamp::from_unix_millis(millis)
}
