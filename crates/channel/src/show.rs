//! What every channel's message shows besides the request itself, read the same way for all:
//! the deciding rules' reasons, how the command differs from the requester's usual one, the
//! action's outcome once reported, the link to the request's page; when a message needs no more updates; and where a request is announced.

use countersign_approval::{Request, State};
use countersign_audit::EventKind;
use countersign_broker::{Broker, now};
use countersign_model::Timestamp;
use countersign_policy::Policy;

/// An approved request whose outcome never came is settled after this long.
const OUTCOME_PATIENCE_MS: i64 = 24 * 3_600_000;

/// How the action ended, once its requester reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// `ran` or `failed`.
    pub status: String,
    pub exit_code: Option<i64>,
    pub at: Timestamp,
}

/// What a message shows besides the request itself.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// `(rule id, reason)` for each rule that decided the request, as the policy words it.
    pub rules: Vec<(String, String)>,
    pub outcome: Option<Outcome>,
    /// How the command differs from the requester's last request for the same program, as
    /// Countersign compared them when the request was made (its `request.created` event).
    pub unusual: Vec<String>,
    /// The request's page, for the link.
    pub link: String,
}

/// Reads what the message of `request` shows besides the request, from its audit events: how
/// it differs from the requester's usual command, and the outcome only for an approved request
/// (the only kind that runs).
pub async fn context(broker: &Broker, request: &Request) -> Context {
    let policy = broker.policy();
    let rules = request
        .decision
        .rules
        .iter()
        .map(|id| {
            let reason = policy
                .rules()
                .iter()
                .find(|r| &r.id == id)
                .map_or_else(String::new, |r| r.reason.clone());
            (id.clone(), reason)
        })
        .collect();
    let events = match broker.audit_of(request.id).await {
        Ok(events) => events,
        Err(error) => {
            tracing::warn!(%error, id = %request.id, "cannot read a request's audit events");
            Vec::new()
        }
    };
    // Only an approved request runs, so only its outcome is shown.
    let outcome = if matches!(request.state, State::Approved { .. }) {
        events
            .iter()
            .rev()
            .find(|e| e.kind == EventKind::ActionOutcome)
            .map(|e| Outcome {
                status: e.data["status"].as_str().unwrap_or("failed").to_owned(),
                exit_code: e.data["exit_code"].as_i64(),
                at: e.time,
            })
    } else {
        None
    };
    let unusual = countersign_audit::unusual_of(&events);
    Context {
        rules,
        outcome,
        unusual,
        link: format!("{}/requests/{}", broker.public_url(), request.id),
    }
}

/// Whether the message of `request` shows its end, and so needs no more updates: a pending one
/// never; an approved one once its outcome is shown, or a day after the approval without one.
pub fn settled(request: &Request, context: &Context) -> bool {
    match request.state {
        State::Pending => false,
        State::Approved { at } => {
            context.outcome.is_some()
                || now().unix_millis() - at.unix_millis() > OUTCOME_PATIENCE_MS
        }
        _ => true,
    }
}

/// Where a request is announced in `service`: the channel's default address, then each
/// deciding rule's `notify` targets of that service, once each, in order.
pub fn addresses(policy: &Policy, request: &Request, service: &str, default: &str) -> Vec<String> {
    let mut addresses = vec![default.to_owned()];
    for rule in policy
        .rules()
        .iter()
        .filter(|r| request.decision.rules.contains(&r.id))
    {
        for target in rule.notify.iter().filter(|t| t.service == service) {
            if !addresses.contains(&target.address) {
                addresses.push(target.address.clone());
            }
        }
    }
    addresses
}
