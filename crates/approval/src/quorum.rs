//! Counting approvals: distinct eligible humans per requirement, and — for separation of duties —
//! how many different groups they can cover, one group per person.

use countersign_policy::Requirement;
use serde::Serialize;

use crate::review::{Review, Reviewer, Verdict};

/// Whether `reviewer` may review for `requirement`: named as a principal, or in one of its groups.
pub(crate) fn eligible(requirement: &Requirement, reviewer: &Reviewer) -> bool {
    requirement.principals.contains(&reviewer.id)
        || requirement
            .groups
            .iter()
            .any(|g| reviewer.groups.contains(g))
}

/// How far one requirement has got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequirementProgress {
    pub rule: String,
    /// The distinct eligible humans who approved, in the order they did.
    pub approved_by: Vec<String>,
    pub needed: u32,
    /// How many different groups the approvers cover (each person covering one).
    pub groups_covered: u32,
    pub groups_needed: u32,
    pub denied_by: Vec<String>,
    pub denials_needed: u32,
    pub satisfied: bool,
    pub rejected: bool,
}

/// Progress of every requirement, given the reviews a request accepted.
///
/// The counting re-checks eligibility and distinctness itself instead of trusting the reviews it
/// is given, so quorum holds even if a caller passes reviews the state machine never accepted.
pub fn progress(
    requirements: &[Requirement],
    reviews: &[Review],
    chain: &countersign_model::Chain,
) -> Vec<RequirementProgress> {
    requirements
        .iter()
        .map(|requirement| {
            let counts = |verdict: Verdict| -> Vec<&Reviewer> {
                let mut seen: Vec<&Reviewer> = Vec::new();
                for review in reviews {
                    let r = &review.reviewer;
                    let countable = review.verdict == verdict
                        && r.kind == countersign_model::PrincipalKind::Human
                        && !chain.contains(&r.id)
                        && eligible(requirement, r)
                        && !seen.iter().any(|s| s.id == r.id);
                    if countable {
                        seen.push(r);
                    }
                }
                seen
            };
            let approvers = counts(Verdict::Approve);
            let deniers = counts(Verdict::Deny);
            let groups_covered = max_distinct_groups(&requirement.groups, &approvers);
            let satisfied = approvers.len() >= requirement.count as usize
                && groups_covered >= requirement.distinct_groups;
            RequirementProgress {
                rule: requirement.rule.clone(),
                approved_by: approvers.iter().map(|r| r.id.clone()).collect(),
                needed: requirement.count,
                groups_covered,
                groups_needed: requirement.distinct_groups,
                denied_by: deniers.iter().map(|r| r.id.clone()).collect(),
                denials_needed: requirement.denials,
                satisfied,
                rejected: deniers.len() >= requirement.denials as usize,
            }
        })
        .collect()
}

/// The largest number of `groups` the approvers can cover when each approver covers at most one
/// group they belong to: a maximum bipartite matching (Kuhn's augmenting paths; the graphs are tiny).
fn max_distinct_groups(groups: &[String], approvers: &[&Reviewer]) -> u32 {
    // owner[g] = the approver currently covering group g.
    let mut owner: Vec<Option<usize>> = vec![None; groups.len()];
    let mut covered = 0;
    for a in 0..approvers.len() {
        let mut visited = vec![false; groups.len()];
        if augment(a, groups, approvers, &mut owner, &mut visited) {
            covered += 1;
        }
    }
    covered
}

fn augment(
    a: usize,
    groups: &[String],
    approvers: &[&Reviewer],
    owner: &mut [Option<usize>],
    visited: &mut [bool],
) -> bool {
    for (g, group) in groups.iter().enumerate() {
        if visited[g] || !approvers[a].groups.contains(group) {
            continue;
        }
        visited[g] = true;
        let free = match owner[g] {
            None => true,
            Some(other) => augment(other, groups, approvers, owner, visited),
        };
        if free {
            owner[g] = Some(a);
            return true;
        }
    }
    false
}
