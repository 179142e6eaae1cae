//! What the broker answers besides request views: the three outcomes of an evaluated action, a
//! used grant, the policy, who the token names, and the small acknowledgements. Read tolerantly:
//! none refuses a field it does not know.

use std::collections::BTreeMap;

use countersign_model::{Digest, PrincipalKind, PublicKey, RequestId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ErrorDetail;
use crate::openapi::schemas;
use crate::request::RequestView;

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
    /// The labels the action was decided with (the principal's configured ones, and a service's):
    /// the digest covers them, so an enforcement point checks it with these.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
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

/// The broker's answer to a grant being used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GrantConsumed {
    pub consumed: bool,
    /// The request whose approval was used.
    #[schema(schema_with = schemas::request_id)]
    pub request: RequestId,
}

/// The policy in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PolicyView {
    #[schema(schema_with = schemas::digest)]
    pub hash: Digest,
    pub text: String,
}

/// A reloaded policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PolicyReloaded {
    #[schema(schema_with = schemas::digest)]
    pub hash: Digest,
}

/// Who the token names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Whoami {
    pub id: String,
    #[schema(schema_with = schemas::principal_kind)]
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
    /// The labels every action of this principal carries, from the broker's configuration: what
    /// a local gate adds to an action so that it decides as the broker does.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The resource patterns this principal is bound to (empty: any resource).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
}

/// `GET /v1/requests`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RequestList {
    pub requests: Vec<RequestView>,
}

/// `POST /v1/requests/{id}/outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OutcomeRecorded {
    pub recorded: bool,
}

/// `POST /v1/audit/events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Appended {
    /// How many events were added to the log.
    pub appended: u64,
    /// How many had been recorded before (same reporter, same `data.event_id`).
    #[serde(default)]
    #[schema(required = true)]
    pub already_recorded: u64,
}

/// `GET /v1/audit/key`: the key that verifies the log's checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditKey {
    /// The Ed25519 public key, in Countersign's text form.
    #[schema(value_type = String)]
    pub public_key: PublicKey,
}

/// `GET /readyz` while ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    pub ready: bool,
    /// ok, or why the store cannot commit
    pub store: String,
    pub policy: PolicySummary,
}

/// Which policy is in force, and how many rules it has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PolicySummary {
    #[schema(schema_with = schemas::digest)]
    pub hash: Digest,
    pub rules: u64,
}

/// `GET /healthz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub ok: bool,
}
