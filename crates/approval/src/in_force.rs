//! Whether an approval still lets its action run: it has a lifetime from the moment it is given,
//! and the policy in force when the action is about to run decides again (a later deny wins, and
//! so does a requirement the approvals given do not meet).

use std::time::Duration;

use countersign_model::{RequestId, Timestamp};
use countersign_policy::{DEFAULT_APPROVAL_TTL, Decision, Outcome};

use crate::quorum::progress;
use crate::request::{Request, State};

/// Why an approval no longer lets its action run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Lapse {
    #[error("request {request} is {state}, not approved")]
    NotApproved {
        request: RequestId,
        state: &'static str,
    },
    #[error("the approval of request {request} expired unused at {at}; ask for the action again")]
    Expired { request: RequestId, at: Timestamp },
    #[error(
        "the policy in force now denies this action ({rules}): {explanation} The approval of \
         request {request} no longer lets it run"
    )]
    DeniedNow {
        request: RequestId,
        rules: String,
        explanation: String,
    },
    #[error(
        "the policy in force now requires {needed}, which the approvals of request {request} do \
         not meet; ask for the action again"
    )]
    RequirementsUnmet { request: RequestId, needed: String },
}

impl Request {
    /// When the approval stops letting the action run; `None` unless approved. Requests stored
    /// before approvals had a lifetime get the default.
    pub fn approval_expires_at(&self) -> Option<Timestamp> {
        let State::Approved { at } = self.state else {
            return None;
        };
        let ttl = self
            .decision
            .approval_ttl_seconds
            .map_or(DEFAULT_APPROVAL_TTL, Duration::from_secs);
        Some(at.plus(ttl))
    }

    /// Whether the approval still lets the action run at `now`, given what the policy in force
    /// decides for the action now (`decision`).
    pub fn approval_in_force(&self, decision: &Decision, now: Timestamp) -> Result<(), Lapse> {
        let request = self.id;
        let until = self.approval_expires_at().ok_or(Lapse::NotApproved {
            request,
            state: self.state.name(),
        })?;
        if now >= until {
            return Err(Lapse::Expired { request, at: until });
        }
        match decision.outcome {
            Outcome::Allow => Ok(()),
            Outcome::Deny => Err(Lapse::DeniedNow {
                request,
                rules: countersign_policy::deciding_rules(&decision.rules),
                explanation: decision.explanation.clone(),
            }),
            Outcome::RequireApproval => {
                let now_required = progress(
                    &decision.requirements,
                    &self.reviews,
                    &self.action.principal,
                );
                let unmet: Vec<String> = now_required
                    .iter()
                    .zip(&decision.requirements)
                    .filter(|(p, _)| !p.satisfied || p.rejected)
                    .map(|(_, r)| format!("{} (rule {})", r.describe(), r.rule))
                    .collect();
                if unmet.is_empty() {
                    Ok(())
                } else {
                    Err(Lapse::RequirementsUnmet {
                        request,
                        needed: unmet.join(", and "),
                    })
                }
            }
        }
    }
}
