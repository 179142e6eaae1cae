//! What a caller sends. Strict: every body has exactly the fields docs/api.md names (an unknown
//! field is refused, so a typo cannot slip past the broker unnoticed), and free-form JSON inside
//! a body (action details, reported event data) refuses a key repeated in one object, read by
//! the one strict parser, `countersign_model::strict_json`.

use std::collections::BTreeMap;
use std::fmt;

use countersign_approval::Verdict;
use countersign_audit::EventKind;
use countersign_model::strict_json::StrictValue;
use countersign_model::{Action, ActionError, Chain, Digest, PrincipalKind, RequestId};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use utoipa::ToSchema;

use crate::openapi::schemas;

/// An action to evaluate (`POST /v1/actions`). The broker fills in who asks from the token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    /// A dotted name: `shell.exec`, `mcp.tool_call`, `http.request`, `sql.statement`, …
    #[schema(schema_with = schemas::action_kind)]
    pub kind: String,
    /// What it acts on: `host:build-7`, `db:prod/customers`, …
    #[schema(schema_with = schemas::resource)]
    pub resource: String,
    /// Facts about the action that the sender vouches for. Only a service principal (an
    /// enforcement point) may send them, for the keys its configuration lists; an agent's
    /// labels come from the broker's configuration, and what its own tools say goes in `claims`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(schema_with = schemas::labels)]
    pub labels: BTreeMap<String, String>,
    /// What the agent's own tools say about the action (`env=staging`): recorded and shown to
    /// reviewers as the agent's words, matched only by rules that ask for claims.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(schema_with = schemas::claims)]
    pub claims: BTreeMap<String, String>,
    /// What exactly runs (argv, SQL text, tool arguments); a JSON object.
    #[serde(default = "empty_object", deserialize_with = "strict")]
    #[schema(schema_with = schemas::json_object)]
    pub details: Value,
    /// The requester's own words on why. Shown to reviewers marked as untrusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = schemas::justification)]
    pub justification: Option<String>,
    /// The humans the requester acts for; by default those the broker's configuration names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = schemas::on_behalf_of)]
    pub on_behalf_of: Option<Vec<String>>,
    /// What started the requester (a pipeline run, a scheduler).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = schemas::started_by)]
    pub started_by: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// Free-form JSON read with the strict parser: a key twice in one object is refused, naming it.
fn strict<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
    StrictValue::deserialize(deserializer).map(|strict| strict.0)
}

/// As [`strict`], with `null` standing for an empty object, as leaving the field out does.
fn strict_or_empty<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
    strict(deserializer).map(|value| match value {
        Value::Null => empty_object(),
        other => other,
    })
}

/// Stands in for the requester when checking an action locally. The broker puts the token's
/// principal there; the placeholder never reaches the digest, which covers only what runs.
const PLACEHOLDER_REQUESTER: &str = "requester";

impl ActionBody {
    /// An action with no labels, empty details and no justification.
    pub fn new(kind: impl Into<String>, resource: impl Into<String>) -> Self {
        ActionBody {
            kind: kind.into(),
            resource: resource.into(),
            labels: BTreeMap::new(),
            claims: BTreeMap::new(),
            details: empty_object(),
            justification: None,
            on_behalf_of: None,
            started_by: None,
        }
    }

    /// The action as the core sees it, asked by `requester`.
    pub fn into_action(self, requester: Chain) -> Action {
        Action {
            kind: self.kind,
            resource: self.resource,
            labels: self.labels,
            claims: self.claims,
            details: self.details,
            principal: requester,
            justification: self.justification,
        }
    }

    /// The action as the core sees it, with a placeholder requester.
    fn as_action(&self) -> Action {
        self.clone().into_action(Chain {
            via: None,
            id: PLACEHOLDER_REQUESTER.to_owned(),
            kind: PrincipalKind::Agent,
            on_behalf_of: self.on_behalf_of.clone().unwrap_or_default(),
            started_by: self.started_by.clone(),
        })
    }

    /// Checks the action as the broker will, before sending it.
    pub fn validate(&self) -> Result<(), ActionError> {
        self.as_action().validate()
    }

    /// The digest of the action, computed here: what an approval must be bound to before the
    /// action may run on the strength of it.
    pub fn digest(&self) -> Result<Digest, ActionError> {
        self.as_action().digest()
    }
}

/// A review (`POST /v1/requests/{id}/reviews`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewBody {
    #[schema(schema_with = schemas::verdict)]
    pub verdict: Verdict,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = schemas::comment)]
    pub comment: Option<String>,
}

/// A grant about to be used (`POST /v1/grants/consume`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsumeBody {
    pub token: String,
    /// The digest of the action about to run.
    #[schema(schema_with = schemas::digest)]
    pub digest: Digest,
}

impl fmt::Debug for ConsumeBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token is a bearer credential until it is used; keep it out of logs.
        f.debug_struct("ConsumeBody")
            .field("token", &"…")
            .field("digest", &self.digest)
            .finish()
    }
}

/// How an approved action went (`POST /v1/requests/{id}/outcome`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutcomeBody {
    #[schema(inline)]
    pub status: OutcomeStatus,
    /// A whole number from −2^31 to 2^31 − 1; JSON may write it `1` or `1.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = schemas::exit_code)]
    pub exit_code: Option<serde_json::Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = schemas::outcome_summary)]
    pub summary: Option<String>,
}

/// How an approved action went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeStatus {
    /// It ran and succeeded.
    Ran,
    /// It ran and failed, or could not be started.
    Failed,
}

impl OutcomeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeStatus::Ran => "ran",
            OutcomeStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for OutcomeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The audit event types an enforcement point may report itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportedEventType {
    /// It let an action run on a decision it made locally.
    ActionAllowed,
    /// It refused an action on a decision it made locally.
    ActionDenied,
    /// How an action went.
    ActionOutcome,
}

impl From<ReportedEventType> for EventKind {
    fn from(kind: ReportedEventType) -> EventKind {
        match kind {
            ReportedEventType::ActionAllowed => EventKind::ActionAllowed,
            ReportedEventType::ActionDenied => EventKind::ActionDenied,
            ReportedEventType::ActionOutcome => EventKind::ActionOutcome,
        }
    }
}

impl TryFrom<EventKind> for ReportedEventType {
    type Error = EventKind;

    fn try_from(kind: EventKind) -> Result<Self, EventKind> {
        match kind {
            EventKind::ActionAllowed => Ok(ReportedEventType::ActionAllowed),
            EventKind::ActionDenied => Ok(ReportedEventType::ActionDenied),
            EventKind::ActionOutcome => Ok(ReportedEventType::ActionOutcome),
            other => Err(other),
        }
    }
}

impl Serialize for ReportedEventType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(EventKind::from(*self).as_str())
    }
}

impl<'de> Deserialize<'de> for ReportedEventType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse::<EventKind>()
            .ok()
            .and_then(|kind| ReportedEventType::try_from(kind).ok())
            .ok_or_else(|| {
                let allowed: Vec<&str> = EventKind::REPORTABLE.iter().map(|k| k.as_str()).collect();
                serde::de::Error::custom(format!(
                    "type '{text}' cannot be reported (expected one of {})",
                    allowed.join(", ")
                ))
            })
    }
}

/// One event for `POST /v1/audit/events`; the broker stamps the time and the principal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportedEvent {
    #[serde(rename = "type")]
    pub kind: ReportedEventType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<RequestId>,
    /// Structured details; a JSON object.
    #[serde(default = "empty_object", deserialize_with = "strict_or_empty")]
    pub data: Value,
    /// What happened, in plain language for an auditor.
    pub explanation: String,
}

/// A batch of reported events (`POST /v1/audit/events`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppendBody {
    #[schema(schema_with = schemas::reported_events)]
    pub events: Vec<ReportedEvent>,
}
