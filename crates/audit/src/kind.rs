//! The closed list of audit event types: the names the log, its exports and the API carry, one
//! place to match on them, so a misspelt type cannot steer a decision.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! event_kinds {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)+) => {
        /// What an audit event records. Serialized as its dotted name (`request.created`), the
        /// same text the log has always stored, so stored logs and exports read unchanged.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventKind {
            $($(#[$doc])* $variant,)+
        }

        impl EventKind {
            /// Every type, in the order they are declared.
            pub const ALL: &'static [EventKind] = &[$(EventKind::$variant,)+];

            /// The dotted name the log stores.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventKind::$variant => $name,)+
                }
            }
        }
    };
}

event_kinds! {
    /// A gated action opened a request for approval.
    RequestCreated = "request.created",
    /// Every requirement of a request was met.
    RequestApproved = "request.approved",
    /// A reviewer's denial ended a request.
    RequestDenied = "request.denied",
    /// The requester or a human cancelled a request.
    RequestCancelled = "request.cancelled",
    /// Nobody decided a request in time.
    RequestExpired = "request.expired",
    /// A reviewer approved.
    ReviewApproved = "review.approved",
    /// A reviewer denied.
    ReviewDenied = "review.denied",
    /// A review or cancellation was refused (self-approval, not eligible, too late…).
    ReviewRefused = "review.refused",
    /// An approved request yielded a grant.
    GrantIssued = "grant.issued",
    /// An enforcement point used a grant.
    GrantConsumed = "grant.consumed",
    /// A grant was not honoured: the approval no longer stands.
    GrantRefused = "grant.refused",
    /// The policy let an action run.
    ActionAllowed = "action.allowed",
    /// The policy refused an action.
    ActionDenied = "action.denied",
    /// The agent's claims about an action contradicted a label Countersign vouches for: the
    /// label was kept, and this records what the agent said.
    ActionClaimOverridden = "action.claim_overridden",
    /// How an approved action went.
    ActionOutcome = "action.outcome",
    /// An alert: an enforcement point reported a decision the policy it named does not make
    /// (another outcome or other rules), or named a policy the broker never served or no longer
    /// remembers, or an action that cannot be decided. Recorded by the broker, never reportable.
    ActionReportMismatch = "action.report_mismatch",
    /// A new policy came into force.
    PolicyReloaded = "policy.reloaded",
    /// A new policy was refused; the old one stays in force.
    PolicyReloadRefused = "policy.reload_refused",
    /// A channel showed a request to reviewers.
    NotificationPosted = "notification.posted",
    /// A channel could not show a request to reviewers.
    NotificationFailed = "notification.failed",
}

impl EventKind {
    /// The types an enforcement point may report itself (`POST /v1/audit/events`): decisions it
    /// made locally, and outcomes.
    pub const REPORTABLE: [EventKind; 3] = [
        EventKind::ActionAllowed,
        EventKind::ActionDenied,
        EventKind::ActionOutcome,
    ];

    pub fn is_reportable(self) -> bool {
        Self::REPORTABLE.contains(&self)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A type name that is not one of Countersign's audit event types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an audit event type")]
pub struct UnknownEventKind(pub String);

impl FromStr for EventKind {
    type Err = UnknownEventKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventKind::ALL
            .iter()
            .copied()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| UnknownEventKind(s.to_owned()))
    }
}

impl From<EventKind> for String {
    fn from(kind: EventKind) -> String {
        kind.as_str().to_owned()
    }
}

impl PartialEq<EventKind> for String {
    fn eq(&self, other: &EventKind) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<EventKind> for str {
    fn eq(&self, other: &EventKind) -> bool {
        self == other.as_str()
    }
}

impl Serialize for EventKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_reads_back_from_its_name() {
        for kind in EventKind::ALL {
            assert_eq!(kind.as_str().parse::<EventKind>(), Ok(*kind));
            assert_eq!(
                serde_json::to_string(kind).unwrap(),
                format!("\"{}\"", kind.as_str())
            );
        }
        assert!("request.made".parse::<EventKind>().is_err());
    }

    #[test]
    fn only_local_decisions_and_outcomes_are_reportable() {
        let reportable: Vec<&str> = EventKind::ALL
            .iter()
            .filter(|k| k.is_reportable())
            .map(|k| k.as_str())
            .collect();
        assert_eq!(
            reportable,
            ["action.allowed", "action.denied", "action.outcome"]
        );
    }
}
