//! The policy file as written: the TOML document model, read with line positions and printed back.
//!
//! These types mirror the file one to one, so printing a parsed policy and parsing it again gives
//! the same document. Validation and compilation happen in `compile`.

use std::collections::BTreeMap;

use countersign_model::Action;
use serde::{Deserialize, Serialize};
use toml::Spanned;

/// A whole policy file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySource {
    /// The policy language version; only 1 exists.
    #[serde(default = "version_one")]
    pub version: u32,
    /// The decision for actions no rule matches: allow or deny.
    pub default: Spanned<String>,
    /// How long a request stays open when its rule names no timeout (default 1h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_timeout: Option<Spanned<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Spanned<RuleSource>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<Spanned<TestSource>>,
}

fn version_one() -> u32 {
    1
}

/// One `[[rules]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSource {
    pub id: String,
    /// allow, deny or require_approval.
    pub decision: Spanned<String>,
    /// Why the rule exists, in words a reviewer and an auditor understand.
    pub reason: String,
    /// Required; optional here only so that its absence is reported with the rule's name.
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub matcher: Option<Spanned<MatchSource>>,
    /// A CEL condition over `action` and `principal`; the rule applies only when it is true.
    #[serde(rename = "if", default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Spanned<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvers: Option<Spanned<ApproversSource>>,
    /// How long a request this rule opens stays pending: 30m, 4h, 1d.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Spanned<String>>,
    /// How long an approval of a request this rule opens can be used, from the moment it is
    /// approved: 5m, 1h (default 15m, at most 24h). After that the action must be asked for again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_ttl: Option<Spanned<String>>,
    /// Where a request this rule opens is announced, besides the broker's default channels:
    /// `slack:#dba-approvals`, `slack:C0123ABCD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<Spanned<Vec<String>>>,
}

/// What a rule applies to. Every field given must match; a list matches when any entry does.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchSource {
    /// Action kinds (`shell.exec`, `mcp.*`); required — write "*" for every kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Patterns>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Patterns>,
    /// Label name → value pattern(s); the label must be present and match. Labels are facts
    /// Countersign vouches for (the principal's configuration, a service); never claims.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, Patterns>,
    /// Claim name → value pattern(s), as `labels`, over what the agent's own tools said: a rule
    /// that asks for claims trusts the agent's word.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, Patterns>,
    /// Command-line patterns for actions that carry `details.argv` (`pg_dump *`). The program is
    /// matched by its file name, so `/usr/bin/pg_dump` matches `pg_dump *`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Patterns>,
    /// Case-insensitive patterns over `details.sql`, whitespace collapsed (`copy * to *`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<Patterns>,
}

/// One pattern or a list of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Patterns {
    One(String),
    Many(Vec<String>),
}

impl Patterns {
    pub fn as_slice(&self) -> &[String] {
        match self {
            Patterns::One(one) => std::slice::from_ref(one),
            Patterns::Many(many) => many,
        }
    }
}

/// Who may approve, and how many must.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproversSource {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<String>,
    /// Distinct humans who must approve (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Separation of duties: the approvers must come from at least this many different groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distinct_groups: Option<u32>,
    /// Denials from eligible reviewers that end the request (default 1: any denial ends it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denials: Option<u32>,
}

/// One `[[tests]]` entry: an action and what the policy must decide for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSource {
    pub name: String,
    /// allow, deny or require_approval.
    pub expect: Spanned<String>,
    /// The ids of the rules that must decide it; omitted, they are not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<String>>,
    pub action: Action,
}

/// A TOML syntax or shape error, with the 1-based line it points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: Option<usize>,
    /// The rule or test it concerns, when it sits inside one: "rule 'prod-db-export'".
    pub subject: Option<String>,
    /// What is wrong, naming the key: "approvers.count must be a whole number, …".
    pub message: String,
}

impl PolicySource {
    /// Reads a policy file's text.
    pub fn parse(text: &str) -> Result<PolicySource, SyntaxError> {
        toml::from_str(text).map_err(|e| {
            let message = e.message().trim_end();
            let Some(span) = e.span() else {
                return SyntaxError {
                    line: None,
                    subject: None,
                    message: message.to_owned(),
                };
            };
            let place = crate::shape::locate(text, span.start);
            let reworded = crate::shape::reword(message);
            // An unknown or missing field names itself; only a value's type needs its key.
            let names_itself =
                message.starts_with("unknown field") || message.starts_with("missing field");
            let message = match place.key {
                Some(key) if !names_itself && reworded.starts_with("must be") => {
                    format!("{key} {reworded}")
                }
                Some(key) if !names_itself => format!("{key}: {reworded}"),
                _ => reworded,
            };
            SyntaxError {
                line: Some(line_of(text, span.start)),
                subject: place.subject,
                message,
            }
        })
    }

    /// Writes the policy back as TOML; parsing the result gives an equal document.
    pub fn print(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }
}

/// Finds the line of a byte offset in one text. Built once per file: counting newlines from the
/// start for every rule made loading quadratic (330 ms for 1,000 rules).
#[derive(Debug)]
pub struct Lines {
    /// Byte offsets of every newline, in order.
    newlines: Vec<usize>,
}

impl Lines {
    pub fn new(text: &str) -> Lines {
        Lines {
            newlines: text
                .bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i)
                .collect(),
        }
    }

    /// The 1-based line of byte `offset`.
    pub fn line_of(&self, offset: usize) -> usize {
        self.newlines.partition_point(|&n| n < offset) + 1
    }
}

/// The 1-based line of byte `offset` in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    Lines::new(text).line_of(offset)
}
