//! The request state machine: pending → approved / denied / expired / cancelled.
//!
//! `Request::apply` is a pure function: the request and an event in, the next request or a
//! refusal with its reason out. The invariants of DESIGN.md live here:
//! - no review counts from anyone in the delegation chain, nor from an agent;
//! - quorum counts distinct eligible humans (and distinct groups when the rule asks);
//! - one review per human; a denial from an eligible reviewer ends the request;
//! - a decided request takes no more events; expired is never denied, nor the reverse.

use std::fmt;

use countersign_model::{Action, ActionError, Digest, PrincipalKind, RequestId, Timestamp};
use countersign_policy::{Decision, Outcome, Requirement};
use serde::{Deserialize, Serialize};

use crate::quorum::{RequirementProgress, eligible, progress};
use crate::review::{Review, Verdict};

/// Where a request stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum State {
    Pending,
    Approved {
        at: Timestamp,
    },
    /// Ended by a denial. `by` is the reviewer whose denial completed it.
    Denied {
        at: Timestamp,
        by: String,
    },
    /// Nobody decided in time. Never reported as denied.
    Expired {
        at: Timestamp,
    },
    Cancelled {
        at: Timestamp,
        by: String,
    },
}

impl State {
    pub fn name(&self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Approved { .. } => "approved",
            State::Denied { .. } => "denied",
            State::Expired { .. } => "expired",
            State::Cancelled { .. } => "cancelled",
        }
    }

    pub fn is_pending(&self) -> bool {
        matches!(self, State::Pending)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Something that happens to a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Review(Review),
    /// The requester (or a human it acts for) withdraws the request.
    Cancel {
        by: String,
        at: Timestamp,
    },
    /// The deadline passed with no decision.
    Expire {
        at: Timestamp,
    },
}

/// "an agent", "a service", "a human".
fn article(kind: PrincipalKind) -> &'static str {
    match kind {
        PrincipalKind::Agent => "an agent",
        PrincipalKind::Human => "a human",
        PrincipalKind::Service => "a service",
    }
}

/// Why an event was refused. Each says, in words a reviewer can act on, what went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the request is already {state}; it takes no more reviews or changes")]
    AlreadyDecided { state: &'static str },
    #[error("the request expired at {at}; nobody can review it any more")]
    Expired { at: Timestamp },
    /// The reviewer is a program: an agent, or a service (an enforcement point).
    #[error("{reviewer} is {}; only humans review requests", article(*.kind))]
    Agent {
        reviewer: String,
        kind: PrincipalKind,
    },
    #[error(
        "{reviewer} cannot review this request: {reviewer} is {role}, and nobody approves their own request"
    )]
    SelfApproval {
        reviewer: String,
        role: &'static str,
    },
    #[error("{reviewer} is not an eligible approver for this request: it needs {needed}")]
    NotEligible { reviewer: String, needed: String },
    #[error("{reviewer} has already reviewed this request; each person reviews once")]
    AlreadyReviewed { reviewer: String },
    #[error("{by} cannot cancel this request: only the requester or the humans it acts for can")]
    NotRequester { by: String },
    #[error("the request does not expire until {expires_at}")]
    NotYetExpired { expires_at: Timestamp },
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OpenError {
    #[error("the decision is {0}, so there is nothing to approve")]
    NotApproval(Outcome),
    #[error("the decision names no approval requirement, so nobody could approve")]
    NoRequirements,
    #[error("the action is invalid: {0}")]
    Action(#[from] ActionError),
}

/// One request for approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub id: RequestId,
    pub action: Action,
    /// What the approval binds to: the digest of the action.
    pub digest: Digest,
    /// The policy decision that opened it.
    pub decision: Decision,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    /// Accepted reviews, in the order they came.
    pub reviews: Vec<Review>,
    pub state: State,
}

impl Request {
    /// Opens a request for an action the policy said requires approval.
    pub fn open(
        id: RequestId,
        action: Action,
        decision: Decision,
        now: Timestamp,
    ) -> Result<Request, OpenError> {
        if decision.outcome != Outcome::RequireApproval {
            return Err(OpenError::NotApproval(decision.outcome));
        }
        if decision.requirements.is_empty() {
            return Err(OpenError::NoRequirements);
        }
        action.validate()?;
        let digest = action.digest()?;
        let timeout = std::time::Duration::from_secs(
            decision
                .timeout_seconds
                .unwrap_or(countersign_policy::DEFAULT_TIMEOUT.as_secs()),
        );
        Ok(Request {
            id,
            digest,
            created_at: now,
            expires_at: now.plus(timeout),
            action,
            decision,
            reviews: Vec::new(),
            state: State::Pending,
        })
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.decision.requirements
    }

    pub fn progress(&self) -> Vec<RequirementProgress> {
        progress(self.requirements(), &self.reviews, &self.action.principal)
    }

    /// Applies one event. Pure: `self` is unchanged; the result is the next request, or why not.
    pub fn apply(&self, event: &Event) -> Result<Request, Refusal> {
        if !self.state.is_pending() {
            return Err(Refusal::AlreadyDecided {
                state: self.state.name(),
            });
        }
        let mut next = self.clone();
        match event {
            Event::Review(review) => {
                self.check_review(review)?;
                next.reviews.push(review.clone());
                let progress = next.progress();
                if progress.iter().any(|p| p.rejected) {
                    next.state = State::Denied {
                        at: review.at,
                        by: review.reviewer.id.clone(),
                    };
                } else if progress.iter().all(|p| p.satisfied) {
                    next.state = State::Approved { at: review.at };
                }
            }
            Event::Cancel { by, at } => {
                let chain = &self.action.principal;
                if *by != chain.id && !chain.on_behalf_of.contains(by) {
                    return Err(Refusal::NotRequester { by: by.clone() });
                }
                next.state = State::Cancelled {
                    at: *at,
                    by: by.clone(),
                };
            }
            Event::Expire { at } => {
                if *at < self.expires_at {
                    return Err(Refusal::NotYetExpired {
                        expires_at: self.expires_at,
                    });
                }
                next.state = State::Expired {
                    at: self.expires_at,
                };
            }
        }
        Ok(next)
    }

    fn check_review(&self, review: &Review) -> Result<(), Refusal> {
        let reviewer = &review.reviewer;
        if review.at >= self.expires_at {
            return Err(Refusal::Expired {
                at: self.expires_at,
            });
        }
        if reviewer.kind != PrincipalKind::Human {
            return Err(Refusal::Agent {
                reviewer: reviewer.id.clone(),
                kind: reviewer.kind,
            });
        }
        let chain = &self.action.principal;
        let role = if reviewer.id == chain.id {
            Some("the requester")
        } else if chain.on_behalf_of.contains(&reviewer.id) {
            Some("the person the requester acts for")
        } else if chain.started_by.as_ref() == Some(&reviewer.id) {
            Some("who started the requester")
        } else {
            None
        };
        if let Some(role) = role {
            return Err(Refusal::SelfApproval {
                reviewer: reviewer.id.clone(),
                role,
            });
        }
        if !self.requirements().iter().any(|r| eligible(r, reviewer)) {
            return Err(Refusal::NotEligible {
                reviewer: reviewer.id.clone(),
                needed: self
                    .requirements()
                    .iter()
                    .map(Requirement::describe)
                    .collect::<Vec<_>>()
                    .join(", and "),
            });
        }
        if self.reviews.iter().any(|r| r.reviewer.id == reviewer.id) {
            return Err(Refusal::AlreadyReviewed {
                reviewer: reviewer.id.clone(),
            });
        }
        Ok(())
    }

    /// What an agent is told while it waits: "waiting for 1 more approval from members of sre
    /// (rule terraform-prod); request r_8f2c…".
    pub fn waiting_summary(&self) -> String {
        let missing: Vec<String> = self
            .progress()
            .iter()
            .zip(self.requirements())
            .filter(|(p, _)| !p.satisfied)
            .map(|(p, r)| {
                let approvals_short = r.count.saturating_sub(p.approved_by.len() as u32);
                let groups_short = p.groups_needed.saturating_sub(p.groups_covered);
                // Each new approver covers at most one more group.
                let people = approvals_short.max(groups_short);
                let noun = if people == 1 { "approval" } else { "approvals" };
                let mut s = format!("{people} more {noun} from {}", r.who());
                if groups_short > 0 {
                    let groups = if groups_short == 1 { "group" } else { "groups" };
                    s.push_str(&format!(", covering {groups_short} more {groups}"));
                }
                format!("{s} (rule {})", r.rule)
            })
            .collect();
        format!("waiting for {}; request {}", missing.join(" and "), self.id)
    }

    /// The reviewer whose denial ended the request, with their comment, for the requester's error.
    pub fn denial(&self) -> Option<&Review> {
        match &self.state {
            State::Denied { by, .. } => self
                .reviews
                .iter()
                .rev()
                .find(|r| r.verdict == Verdict::Deny && &r.reviewer.id == by),
            _ => None,
        }
    }
}
