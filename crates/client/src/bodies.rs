//! What the client sends. Strict: every body has exactly the fields docs/api.md names, and reading
//! one back refuses unknown fields, so a typo cannot slip a field past the broker unnoticed.

use std::collections::BTreeMap;
use std::fmt;

use countersign_model::{Action, ActionError, Chain, Digest, PrincipalKind, RequestId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::views::Verdict;

/// An action to evaluate (`POST /v1/actions`). The broker fills in who asks from the token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    /// A dotted name: `shell.exec`, `mcp.tool_call`, `http.request`, `sql.statement`, …
    pub kind: String,
    /// What it acts on: `host:build-7`, `db:prod/customers`, …
    pub resource: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// What exactly runs (argv, SQL text, tool arguments); a JSON object.
    #[serde(default = "empty_object")]
    pub details: Value,
    /// The requester's own words on why. Shown to reviewers marked as untrusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    /// The humans the requester acts for; by default those the broker's configuration names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<Vec<String>>,
    /// What started the requester (a pipeline run, a scheduler).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_by: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// Stands in for the requester when checking an action locally. The broker puts the token's
/// principal there; the placeholder never reaches the digest, which covers only what runs.
const PLACEHOLDER_REQUESTER: &str = "requester";

impl ActionRequest {
    /// An action with no labels, empty details and no justification.
    pub fn new(kind: impl Into<String>, resource: impl Into<String>) -> Self {
        ActionRequest {
            kind: kind.into(),
            resource: resource.into(),
            labels: BTreeMap::new(),
            details: empty_object(),
            justification: None,
            on_behalf_of: None,
            started_by: None,
        }
    }

    /// The action as the core sees it, with a placeholder requester.
    fn as_action(&self) -> Action {
        Action {
            kind: self.kind.clone(),
            resource: self.resource.clone(),
            labels: self.labels.clone(),
            details: self.details.clone(),
            principal: Chain {
                id: PLACEHOLDER_REQUESTER.to_owned(),
                kind: PrincipalKind::Agent,
                on_behalf_of: self.on_behalf_of.clone().unwrap_or_default(),
                started_by: self.started_by.clone(),
            },
            justification: self.justification.clone(),
        }
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

/// How an approved action went, for `POST /v1/requests/{id}/outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeStatus {
    /// It ran and succeeded.
    Ran,
    /// It ran and failed, or could not be started.
    Failed,
}

impl fmt::Display for OutcomeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OutcomeStatus::Ran => "ran",
            OutcomeStatus::Failed => "failed",
        })
    }
}

/// The audit event types an enforcement point may report itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReportedEventType {
    /// It let an action run on a decision it made locally.
    #[serde(rename = "action.allowed")]
    ActionAllowed,
    /// It refused an action on a decision it made locally.
    #[serde(rename = "action.denied")]
    ActionDenied,
    /// How an action went.
    #[serde(rename = "action.outcome")]
    ActionOutcome,
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
    #[serde(default = "empty_object")]
    pub data: Value,
    /// What happened, in plain language for an auditor.
    pub explanation: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct ReviewBody<'a> {
    pub verdict: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<&'a str>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ConsumeBody<'a> {
    pub token: &'a str,
    pub digest: Digest,
}

#[derive(Debug, Serialize)]
pub(crate) struct OutcomeBody<'a> {
    pub status: OutcomeStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<&'a str>,
}

#[derive(Debug, Serialize)]
pub(crate) struct AppendBody<'a, E> {
    pub events: &'a [E],
}
