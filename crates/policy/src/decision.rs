//! What the policy decides for one action. A decision is a value, never an error: it always names
//! the rules behind it and explains itself in plain words.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The three things a policy can say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Allow,
    RequireApproval,
    Deny,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::RequireApproval => "require_approval",
            Outcome::Deny => "deny",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown decision '{0}' (expected allow, deny or require_approval)")]
pub struct UnknownOutcome(pub String);

impl FromStr for Outcome {
    type Err = UnknownOutcome;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "allow" => Ok(Outcome::Allow),
            "deny" => Ok(Outcome::Deny),
            "require_approval" => Ok(Outcome::RequireApproval),
            other => Err(UnknownOutcome(other.to_owned())),
        }
    }
}

/// The rules behind a decision in words: "the policy's default" (no rule matched), "rule X",
/// "rules X, Y". Every message that names who decided says it this way.
pub fn deciding_rules(rules: &[String]) -> String {
    match rules {
        [] => "the policy's default".to_owned(),
        [rule] => format!("rule {rule}"),
        rules => format!("rules {}", rules.join(", ")),
    }
}

/// Who decided, for a denial: "the policy's default", or "the policy (rule X)".
pub fn decided_by_policy(rules: &[String]) -> String {
    match rules {
        [] => deciding_rules(rules),
        rules => format!("the policy ({})", deciding_rules(rules)),
    }
}

/// One approval rule's demand on a request. A request is approved when every requirement is met.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
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

impl Requirement {
    /// "2 approvals from members of dba or sre, covering at least 2 of those groups".
    pub fn describe(&self) -> String {
        let noun = if self.count == 1 {
            "approval"
        } else {
            "approvals"
        };
        let mut s = format!("{} {noun} from {}", self.count, self.who());
        if self.distinct_groups > 1 {
            s.push_str(&format!(
                ", covering at least {} of those groups",
                self.distinct_groups
            ));
        }
        s
    }
}

impl Requirement {
    /// Who may approve: "members of dba or sre", "alice", "members of sre, or alice".
    pub fn who(&self) -> String {
        let mut who = Vec::new();
        if !self.groups.is_empty() {
            who.push(format!("members of {}", join_words(&self.groups, "or")));
        }
        if !self.principals.is_empty() {
            who.push(join_words(&self.principals, "or"));
        }
        who.join(", or ")
    }
}

/// "a", "a or b", "a, b or c".
pub(crate) fn join_words(words: &[String], conjunction: &str) -> String {
    match words {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} {conjunction} {last}", init.join(", ")),
    }
}

/// A rule whose condition could not be evaluated. The decision fails closed to deny.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConditionFailure {
    pub rule: String,
    pub error: String,
}

/// The policy's answer for one action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub outcome: Outcome,
    /// The rules that decided it (every matching rule of the winning kind), in file order. Empty
    /// when no rule matched and the default applied.
    pub rules: Vec<String>,
    /// For require_approval: what every matching approval rule demands.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requirements: Vec<Requirement>,
    /// For require_approval: how long the request stays open (the shortest of the rules' timeouts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    /// For require_approval: how long an approval can be used once given (the shortest of the
    /// rules' `approval_ttl`s). Absent in requests stored before approvals had a lifetime, which
    /// then get the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_ttl_seconds: Option<u64>,
    /// Conditions that failed to evaluate; any makes the decision deny.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub condition_failures: Vec<ConditionFailure>,
    /// The decision in plain words, built only from the action and the rules.
    pub explanation: String,
}
