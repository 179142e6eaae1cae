//! A request for approval as the API shows it (docs/api.md, "Views"), read tolerantly: a field a
//! newer broker adds, at any depth, is ignored rather than refused, so older clients keep working.
//!
//! The action and the requirements reach readers as the core's own types (what the CLI renders and
//! digests), but travel in wire shapes of their own (`ActionView`, `RequirementView`): the core
//! types refuse unknown fields, as stored records must, and may change without changing the wire.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use countersign_approval::Verdict;
use countersign_model::{Action, Chain, Digest, PrincipalKind, RequestId, Timestamp};
use countersign_policy::Requirement;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use utoipa::ToSchema;

use crate::openapi::schemas;

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RequestView {
    #[schema(schema_with = schemas::request_id)]
    pub id: RequestId,
    #[schema(inline)]
    pub state: RequestState,
    /// What an approval binds to: the digest of `action`.
    #[schema(schema_with = schemas::digest)]
    pub digest: Digest,
    #[serde(serialize_with = "action_out", deserialize_with = "action_in")]
    #[schema(value_type = ActionView)]
    pub action: Action,
    /// The rules that asked for the review.
    #[serde(default)]
    pub rules: Vec<String>,
    pub explanation: String,
    #[serde(
        default,
        serialize_with = "requirements_out",
        deserialize_with = "requirements_in"
    )]
    #[schema(value_type = Vec<RequirementView>)]
    pub requirements: Vec<Requirement>,
    #[serde(default)]
    pub progress: Vec<ProgressView>,
    #[serde(default)]
    pub reviews: Vec<ReviewView>,
    #[schema(schema_with = schemas::timestamp)]
    pub created_at: Timestamp,
    #[schema(schema_with = schemas::timestamp)]
    pub expires_at: Timestamp,
    #[serde(default)]
    #[schema(schema_with = schemas::timestamp_or_null)]
    pub decided_at: Option<Timestamp>,
    /// Who ended a denied request with their denial, or who cancelled it.
    #[serde(default)]
    pub decided_by: Option<String>,
    /// For an approved request: when its approval stops letting the action run.
    #[serde(default)]
    #[schema(schema_with = schemas::timestamp_or_null)]
    pub approval_expires_at: Option<Timestamp>,
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

/// An action on the wire: what it is, what it acts on, and who asks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ActionView {
    pub kind: String,
    pub resource: String,
    /// Facts Countersign vouches for: what rules match.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// What the agent's own tools said about the action: its words, shown as such, never a label.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, String>,
    /// What exactly runs (argv, SQL text, tool arguments); a JSON object.
    #[serde(default)]
    #[schema(schema_with = schemas::json_object)]
    pub details: Value,
    pub principal: ChainView,
    /// The requester's own words on why; untrusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
}

/// Who asks for an action: the requester, the humans it acts for, and what started it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChainView {
    pub id: String,
    #[schema(schema_with = schemas::principal_kind)]
    pub kind: PrincipalKind,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_behalf_of: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_by: Option<String>,
    /// The service (an enforcement point such as a proxy) the request came through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

impl From<&Action> for ActionView {
    fn from(action: &Action) -> ActionView {
        ActionView {
            kind: action.kind.clone(),
            resource: action.resource.clone(),
            labels: action.labels.clone(),
            claims: action.claims.clone(),
            details: action.details.clone(),
            principal: ChainView {
                id: action.principal.id.clone(),
                kind: action.principal.kind,
                on_behalf_of: action.principal.on_behalf_of.clone(),
                started_by: action.principal.started_by.clone(),
                via: action.principal.via.clone(),
            },
            justification: action.justification.clone(),
        }
    }
}

impl From<ActionView> for Action {
    fn from(view: ActionView) -> Action {
        Action {
            kind: view.kind,
            resource: view.resource,
            labels: view.labels,
            claims: view.claims,
            details: view.details,
            principal: Chain {
                id: view.principal.id,
                kind: view.principal.kind,
                on_behalf_of: view.principal.on_behalf_of,
                started_by: view.principal.started_by,
                via: view.principal.via,
            },
            justification: view.justification,
        }
    }
}

fn action_out<S: Serializer>(action: &Action, serializer: S) -> Result<S::Ok, S::Error> {
    ActionView::from(action).serialize(serializer)
}

fn action_in<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Action, D::Error> {
    ActionView::deserialize(deserializer).map(Action::from)
}

/// One approval rule's demand on a request, on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RequirementView {
    /// The rule that asks for it.
    pub rule: String,
    /// Humans in any of these groups may review.
    #[serde(default)]
    pub groups: Vec<String>,
    /// These humans may review, whatever their groups.
    #[serde(default)]
    pub principals: Vec<String>,
    /// Distinct eligible humans who must approve.
    pub count: u32,
    /// The approvers must cover at least this many of `groups` (0: no such demand).
    #[serde(default)]
    pub distinct_groups: u32,
    /// Eligible denials that end the request.
    pub denials: u32,
}

impl From<&Requirement> for RequirementView {
    fn from(r: &Requirement) -> RequirementView {
        RequirementView {
            rule: r.rule.clone(),
            groups: r.groups.clone(),
            principals: r.principals.clone(),
            count: r.count,
            distinct_groups: r.distinct_groups,
            denials: r.denials,
        }
    }
}

impl From<RequirementView> for Requirement {
    fn from(r: RequirementView) -> Requirement {
        Requirement {
            rule: r.rule,
            groups: r.groups,
            principals: r.principals,
            count: r.count,
            distinct_groups: r.distinct_groups,
            denials: r.denials,
        }
    }
}

fn requirements_out<S: Serializer>(
    requirements: &[Requirement],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(requirements.iter().map(RequirementView::from))
}

fn requirements_in<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<Requirement>, D::Error> {
    Vec::<RequirementView>::deserialize(deserializer)
        .map(|views| views.into_iter().map(Requirement::from).collect())
}

/// How far one approval requirement has got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReviewView {
    pub reviewer: String,
    #[schema(schema_with = schemas::verdict)]
    pub verdict: Verdict,
    #[serde(default)]
    pub comment: Option<String>,
    /// Where it was given: `api`, `cli`, `web`, `slack`, `teams`. Text, so that a channel a newer
    /// broker adds still reads.
    pub channel: String,
    /// How the reviewer signed in: `api_token`, `slack`, `teams`, `oidc`, `oidc_mfa`.
    pub authentication: String,
    #[schema(schema_with = schemas::timestamp)]
    pub at: Timestamp,
}

/// The single-use permission an approved request yields to its requester.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GrantView {
    pub token: String,
    #[schema(schema_with = schemas::timestamp)]
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
