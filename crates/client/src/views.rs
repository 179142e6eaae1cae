//! What the broker answers, as typed views mirroring docs/api.md.
//!
//! Views ignore fields they do not know, so a newer broker can add some without breaking older
//! clients. Types shared with the core (actions, digests, ids, times, audit events, requirements)
//! come from the core crates, so a view holds exactly what the core computed.

use std::fmt;
use std::str::FromStr;

pub use countersign_approval::Verdict;
use countersign_audit::{AuditEvent, ChainHead, Checkpoint};
use countersign_model::{Action, Digest, PrincipalKind, RequestId, Timestamp};
use countersign_policy::Requirement;
use serde::{Deserialize, Serialize};

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    Pending,
    Approved,
    Denied,
    Expired,
    Cancelled,
}

impl RequestState {
    pub const ALL: [RequestState; 5] = [
        RequestState::Pending,
        RequestState::Approved,
        RequestState::Denied,
        RequestState::Expired,
        RequestState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Pending => "pending",
            RequestState::Approved => "approved",
            RequestState::Denied => "denied",
            RequestState::Expired => "expired",
            RequestState::Cancelled => "cancelled",
        }
    }

    pub fn is_pending(self) -> bool {
        self == RequestState::Pending
    }
}

impl fmt::Display for RequestState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a request state (expected pending, approved, denied, expired or cancelled)")]
pub struct UnknownState(pub String);

impl FromStr for RequestState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RequestState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

/// One request for approval, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestView {
    pub id: RequestId,
    pub state: RequestState,
    /// What an approval binds to: the digest of `action`.
    pub digest: Digest,
    pub action: Action,
    /// The rules that asked for the review.
    #[serde(default)]
    pub rules: Vec<String>,
    pub explanation: String,
    #[serde(default)]
    pub requirements: Vec<Requirement>,
    #[serde(default)]
    pub progress: Vec<ProgressView>,
    #[serde(default)]
    pub reviews: Vec<ReviewView>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    #[serde(default)]
    pub decided_at: Option<Timestamp>,
    /// Who ended a denied request with their denial, or who cancelled it.
    #[serde(default)]
    pub decided_by: Option<String>,
    /// A sentence for the requester on where the request stands.
    #[serde(default)]
    pub summary: String,
    /// Present only for the requester of an approved request.
    #[serde(default)]
    pub grant: Option<GrantView>,
}

impl RequestView {
    /// The requirement of `rule`, for the progress entry of the same rule.
    pub fn requirement(&self, rule: &str) -> Option<&Requirement> {
        self.requirements.iter().find(|r| r.rule == rule)
    }

    /// The review whose denial ended a denied request.
    pub fn denial(&self) -> Option<&ReviewView> {
        let by = self.decided_by.as_deref()?;
        self.reviews
            .iter()
            .rev()
            .find(|r| r.reviewer == by && r.verdict == Verdict::Deny)
    }
}

/// How far one approval requirement has got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressView {
    pub rule: String,
    /// The distinct eligible humans who approved, in the order they did.
    #[serde(default)]
    pub approved_by: Vec<String>,
    pub needed: u32,
    #[serde(default)]
    pub groups_covered: u32,
    #[serde(default)]
    pub groups_needed: u32,
    #[serde(default)]
    pub denied_by: Vec<String>,
    #[serde(default)]
    pub denials_needed: u32,
    pub satisfied: bool,
    pub rejected: bool,
}

/// One human's verdict on a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewView {
    pub reviewer: String,
    pub verdict: Verdict,
    #[serde(default)]
    pub comment: Option<String>,
    /// Where it was given: `api`, `cli`, `web`, `slack`, `teams`.
    pub channel: String,
    /// How the reviewer signed in: `api_token`, `slack`, `teams`, `oidc`, `oidc_mfa`.
    pub authentication: String,
    pub at: Timestamp,
}

/// The single-use permission an approved request yields to its requester.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantView {
    pub token: String,
    pub expires_at: Timestamp,
}

impl fmt::Debug for GrantView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token is a bearer credential until it is used; keep it out of logs.
        f.debug_struct("GrantView")
            .field("token", &"…")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The broker's answer to an action: one of the policy's three outcomes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum EvaluateResponse {
    /// The action may run now.
    Allow(Allowed),
    /// The action must not run.
    Deny(Denied),
    /// A request was opened; the action may run only with the grant its approval yields.
    RequireApproval(ApprovalRequired),
}

impl EvaluateResponse {
    /// The digest of the action the broker evaluated.
    pub fn digest(&self) -> Digest {
        match self {
            EvaluateResponse::Allow(a) => a.digest,
            EvaluateResponse::Deny(d) => d.digest,
            EvaluateResponse::RequireApproval(r) => r.digest,
        }
    }

    pub fn rules(&self) -> &[String] {
        match self {
            EvaluateResponse::Allow(a) => &a.rules,
            EvaluateResponse::Deny(d) => &d.rules,
            EvaluateResponse::RequireApproval(r) => &r.rules,
        }
    }

    pub fn explanation(&self) -> &str {
        match self {
            EvaluateResponse::Allow(a) => &a.explanation,
            EvaluateResponse::Deny(d) => &d.explanation,
            EvaluateResponse::RequireApproval(r) => &r.explanation,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allowed {
    #[serde(default)]
    pub rules: Vec<String>,
    pub explanation: String,
    pub digest: Digest,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Denied {
    #[serde(default)]
    pub rules: Vec<String>,
    pub explanation: String,
    pub digest: Digest,
    /// The error the broker sends along (code `denied`).
    #[serde(default)]
    pub error: Option<ErrorDetail>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRequired {
    #[serde(default)]
    pub rules: Vec<String>,
    pub explanation: String,
    pub digest: Digest,
    /// The request opened for the action (decided already if the call waited and it was).
    pub request: Box<RequestView>,
}

/// The `error` object of an error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

/// `{"error": {...}}`, the shape of every error answer.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ErrorBody {
    pub error: ErrorDetail,
}

/// The broker's answer to a grant being used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantConsumed {
    pub consumed: bool,
    /// The request whose approval was used.
    pub request: RequestId,
}

/// The policy in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyView {
    pub hash: Digest,
    pub text: String,
}

/// A reloaded policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyReloaded {
    pub hash: Digest,
}

/// Who the token names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Whoami {
    pub id: String,
    pub kind: PrincipalKind,
    #[serde(default)]
    pub groups: Vec<String>,
    /// The humans this principal acts for.
    #[serde(default)]
    pub acts_for: Vec<String>,
    /// Who starts this principal, as the broker's configuration says (part of its chain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_by: Option<String>,
    #[serde(default)]
    pub admin: bool,
}

/// A page of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    /// The checkpoints that sign events of this page.
    #[serde(default)]
    pub checkpoints: Vec<Checkpoint>,
}

/// The broker's verification of its own audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawVerification", into = "RawVerification")]
pub enum AuditVerification {
    /// Every event chains and every checkpoint matches.
    Intact {
        events: u64,
        /// `None` for an empty log.
        head: Option<ChainHead>,
        checkpoints: Option<u64>,
    },
    /// The first broken link, as a sentence an auditor can act on.
    Broken { error: String, seq: Option<u64> },
}

impl AuditVerification {
    pub fn is_intact(&self) -> bool {
        matches!(self, AuditVerification::Intact { .. })
    }
}

/// The wire shape: `{"ok": true, "events", "head"}` or `{"ok": false, "error", "seq"}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RawVerification {
    ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    events: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    head: Option<ChainHead>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checkpoints: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
}

impl TryFrom<RawVerification> for AuditVerification {
    type Error = String;

    fn try_from(raw: RawVerification) -> Result<Self, Self::Error> {
        if raw.ok {
            let events = raw
                .events
                .ok_or("a successful verification must say how many events it checked")?;
            Ok(AuditVerification::Intact {
                events,
                head: raw.head,
                checkpoints: raw.checkpoints,
            })
        } else {
            let error = raw
                .error
                .ok_or("a failed verification must name the broken link")?;
            Ok(AuditVerification::Broken {
                error,
                seq: raw.seq,
            })
        }
    }
}

impl From<AuditVerification> for RawVerification {
    fn from(verification: AuditVerification) -> Self {
        match verification {
            AuditVerification::Intact {
                events,
                head,
                checkpoints,
            } => RawVerification {
                ok: true,
                events: Some(events),
                head,
                checkpoints,
                error: None,
                seq: None,
            },
            AuditVerification::Broken { error, seq } => RawVerification {
                ok: false,
                events: None,
                head: None,
                checkpoints: None,
                error: Some(error),
                seq,
            },
        }
    }
}

/// `GET /healthz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub ok: bool,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RequestList {
    pub requests: Vec<RequestView>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct OutcomeRecorded {
    pub recorded: bool,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Appended {
    pub appended: u64,
}

#[derive(Debug, Deserialize)]
pub(crate) struct AuditKey {
    pub public_key: countersign_model::PublicKey,
}
