//! Where the agent's claims about an action disagree with the labels Countersign vouches for.
//! The label always wins; the disagreement is recorded and shown to reviewers, because an agent
//! that says `env=staging` about a production action is either mistaken or trying to walk around
//! a rule.

use std::collections::BTreeMap;

/// One key the labels and the claims both name, with different values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disagreement<'a> {
    pub key: &'a str,
    /// What Countersign vouches for, and what rules match.
    pub label: &'a str,
    /// What the agent said.
    pub claim: &'a str,
}

/// Every key named by both with different values, in key order.
pub fn disagreements<'a>(
    labels: &'a BTreeMap<String, String>,
    claims: &'a BTreeMap<String, String>,
) -> Vec<Disagreement<'a>> {
    claims
        .iter()
        .filter_map(|(key, claim)| {
            let label = labels.get(key)?;
            (label != claim).then_some(Disagreement { key, label, claim })
        })
        .collect()
}

/// How every channel introduces the claims, in Countersign's words.
pub const CLAIMS_CAPTION: &str =
    "The agent's claims (its own words, not facts Countersign vouches for; rules match labels)";

/// The claims as one line in every channel's words, `the agent says: env=staging, ticket=OPS-1`;
/// `None` when the agent claimed nothing. The agent's text: each channel makes it inert
/// (`crate::text::clean`, then its own escaping) before showing it.
pub fn says(claims: &BTreeMap<String, String>) -> Option<String> {
    if claims.is_empty() {
        return None;
    }
    let pairs: Vec<String> = claims.iter().map(|(k, v)| format!("{k}={v}")).collect();
    Some(format!("the agent says: {}", pairs.join(", ")))
}

impl Disagreement<'_> {
    /// The warning every channel shows for it: `the agent says env=staging; Countersign's
    /// configuration says env=production — the configuration wins`. Holds the agent's text: made
    /// inert by each channel like the rest.
    pub fn warning(&self) -> String {
        format!(
            "the agent says {key}={claim}; Countersign's configuration says {key}={label} — the configuration wins",
            key = self.key,
            claim = self.claim,
            label = self.label
        )
    }
}
