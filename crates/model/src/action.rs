//! What a principal wants to do: the action, who asks (the delegation chain), and its digest.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::canonical::{self, CanonicalError};
use crate::digest::Digest;

/// Whether a principal is a person or a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// A non-human caller: an LLM agent, a bot, a pipeline. Never counts as a reviewer.
    Agent,
    /// A person.
    Human,
    /// An enforcement point that talks to the broker as itself (a proxy holding a credential the
    /// agent never sees) and submits on behalf of the agent that authenticated to it. It may
    /// vouch for the labels and resources its configuration lists; it never reviews and is never
    /// a member of a chain.
    Service,
}

impl fmt::Display for PrincipalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PrincipalKind::Agent => "agent",
            PrincipalKind::Human => "human",
            PrincipalKind::Service => "service",
        })
    }
}

/// Who asks for an action: the requester, the humans it acts for, and what started it.
/// Everyone in the chain is barred from reviewing the request (no self-approval).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chain {
    /// The principal that sent the action.
    pub id: String,
    pub kind: PrincipalKind,
    /// The humans the requester acts for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_behalf_of: Vec<String>,
    /// What started the requester (a pipeline run, a scheduler), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_by: Option<String>,
    /// The service principal (an enforcement point) the request came through, on behalf of the
    /// requester. Not a member of the chain: a service never reviews anyway, and counting it
    /// would change nothing but who may not review.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

impl Chain {
    /// Every principal id in the chain: the requester, those it acts for, what started it.
    pub fn members(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.id.as_str())
            .chain(self.on_behalf_of.iter().map(String::as_str))
            .chain(self.started_by.as_deref())
    }

    pub fn contains(&self, principal: &str) -> bool {
        self.members().any(|member| member == principal)
    }

    /// "deploy-bot (agent), acting for alice, started by ci-42".
    pub fn describe(&self) -> String {
        let mut s = format!("{} ({})", self.id, self.kind);
        if !self.on_behalf_of.is_empty() {
            s.push_str(", acting for ");
            s.push_str(&self.on_behalf_of.join(" and "));
        }
        if let Some(started_by) = &self.started_by {
            s.push_str(", started by ");
            s.push_str(started_by);
        }
        if let Some(via) = &self.via {
            s.push_str(", via ");
            s.push_str(via);
        }
        s
    }
}

/// One thing a principal wants to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// A dotted name: `shell.exec`, `mcp.tool_call`, `http.request`, `sql.statement`, …
    pub kind: String,
    /// What it acts on: `db:prod/customers`, `mcp:github/create_pull_request`, …
    pub resource: String,
    /// Facts Countersign vouches for (`env=production`): set by the broker from its configuration
    /// of the principal, or by an enforcement point the agent cannot configure. Rules match them.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// What the agent's own tools say about the action (`--label env=staging`): recorded and shown
    /// to reviewers as the agent's words, matched only by rules that ask for claims, and never
    /// able to replace or remove a label. Not part of the digest: like the justification, a claim
    /// changes nothing that runs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, String>,
    /// What exactly runs: argv, SQL text, tool arguments, method and path…
    #[serde(default = "empty_object")]
    pub details: Value,
    pub principal: Chain,
    /// The requester's own words on why. Untrusted, and not part of the digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ActionError {
    #[error(
        "action kind '{0}' is not a dotted name (expected lowercase words joined by dots, such as shell.exec)"
    )]
    Kind(String),
    #[error("action resource must be 1 to 1024 characters without control characters")]
    Resource,
    #[error(
        "label '{0}' is not a valid label name (expected 1 to 128 letters, digits, '_', '-', '.' or '/')"
    )]
    LabelName(String),
    #[error("label '{0}' has a value longer than 1024 characters or with control characters")]
    LabelValue(String),
    #[error(
        "claim '{0}' is not a valid claim name (expected 1 to 128 letters, digits, '_', '-', '.' or '/')"
    )]
    ClaimName(String),
    #[error("claim '{0}' has a value longer than 1024 characters or with control characters")]
    ClaimValue(String),
    #[error("action details must be a JSON object, not {0}")]
    Details(&'static str),
    #[error("action details: {0}")]
    Canonical(#[from] CanonicalError),
    #[error(
        "'{0}' is not a valid principal id (expected 1 to 128 letters, digits or . _ @ + : -, starting with a letter or digit)"
    )]
    PrincipalId(String),
    #[error("the justification is longer than 4096 characters")]
    Justification,
}

const MAX_TEXT: usize = 1024;

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// `shell.exec`, `mcp.tool_call`: two or more lowercase words joined by dots.
pub fn is_valid_kind(kind: &str) -> bool {
    kind.len() <= 128
        && kind.contains('.')
        && kind.split('.').all(|word| {
            let mut chars = word.chars();
            chars.next().is_some_and(|c| c.is_ascii_lowercase())
                && chars
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        })
}

/// Principal ids: `deploy-bot`, `alice@example.com`, `ci:pipeline-42`.
pub fn is_valid_principal_id(id: &str) -> bool {
    let mut chars = id.chars();
    id.len() <= 128
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "._@+:-".contains(c))
}

/// Label and claim names: 1 to 128 letters, digits, `_`, `-`, `.` or `/`.
pub fn is_valid_label_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c))
}

/// Label and claim values: at most 1024 characters, none a control character.
pub fn is_valid_label_value(value: &str) -> bool {
    value.chars().count() <= MAX_TEXT && !has_control(value)
}

impl Action {
    /// Checks every field against the rules an enforcement point and the broker rely on.
    pub fn validate(&self) -> Result<(), ActionError> {
        if !is_valid_kind(&self.kind) {
            return Err(ActionError::Kind(self.kind.clone()));
        }
        if self.resource.is_empty()
            || self.resource.chars().count() > MAX_TEXT
            || has_control(&self.resource)
        {
            return Err(ActionError::Resource);
        }
        for (name, value) in &self.labels {
            if !is_valid_label_name(name) {
                return Err(ActionError::LabelName(name.clone()));
            }
            if value.chars().count() > MAX_TEXT || has_control(value) {
                return Err(ActionError::LabelValue(name.clone()));
            }
        }
        for (name, value) in &self.claims {
            if !is_valid_label_name(name) {
                return Err(ActionError::ClaimName(name.clone()));
            }
            if value.chars().count() > MAX_TEXT || has_control(value) {
                return Err(ActionError::ClaimValue(name.clone()));
            }
        }
        if !self.details.is_object() {
            return Err(ActionError::Details(crate::strict_json::type_name(
                &self.details,
            )));
        }
        for id in self.principal.members() {
            if !is_valid_principal_id(id) {
                return Err(ActionError::PrincipalId(id.to_owned()));
            }
        }
        if self
            .justification
            .as_ref()
            .is_some_and(|j| j.chars().count() > 4096)
        {
            return Err(ActionError::Justification);
        }
        self.digest().map(|_| ())
    }

    /// The RFC 8785 canonical JSON of what defines what runs: kind, resource, labels and details.
    /// Who asks and why are deliberately left out; the request binds those separately.
    pub fn canonical_json(&self) -> Result<String, ActionError> {
        let labels = self
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let subject = serde_json::json!({
            "kind": self.kind,
            "resource": self.resource,
            "labels": Value::Object(labels),
            "details": self.details,
        });
        Ok(canonical::to_canonical_string(&subject)?)
    }

    /// SHA-256 of [`Action::canonical_json`]: what an approval is bound to.
    pub fn digest(&self) -> Result<Digest, ActionError> {
        Ok(Digest::of(self.canonical_json()?.as_bytes()))
    }

    /// `details.argv` when it is a non-empty list of strings (the shape of `shell.exec`).
    pub fn argv(&self) -> Option<Vec<&str>> {
        let argv = self.details.get("argv")?.as_array()?;
        let argv: Option<Vec<&str>> = argv.iter().map(Value::as_str).collect();
        argv.filter(|a| !a.is_empty())
    }

    /// The labels as one line: `env=production, team=data`.
    pub fn labels_line(&self) -> String {
        pairs_line(&self.labels)
    }

    /// The claims as one line, as [`Action::labels_line`] does the labels.
    pub fn claims_line(&self) -> String {
        pairs_line(&self.claims)
    }

    /// `details.sql` (the shape of `sql.statement`).
    pub fn sql(&self) -> Option<&str> {
        self.details.get("sql")?.as_str()
    }
}

fn pairs_line(pairs: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join(", ")
}

/// Joins argv into one line a shell would split back the same way: plain words stay as they are,
/// anything else is single-quoted. This is what reviewers read and what command patterns match.
pub fn shell_join<'a>(argv: impl IntoIterator<Item = &'a str>) -> String {
    let mut line = String::new();
    for (i, arg) in argv.into_iter().enumerate() {
        if i > 0 {
            line.push(' ');
        }
        let plain = !arg.is_empty()
            && arg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c));
        if plain {
            line.push_str(arg);
        } else {
            line.push('\'');
            line.push_str(&arg.replace('\'', "'\\''"));
            line.push('\'');
        }
    }
    line
}
