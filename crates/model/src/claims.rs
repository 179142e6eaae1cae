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
