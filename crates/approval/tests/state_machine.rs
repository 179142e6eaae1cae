//! The request state machine against the invariants of DESIGN.md: examples first, then
//! properties over arbitrary sequences of events.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

use std::collections::{BTreeMap, BTreeSet};

use countersign_approval::{
    Authentication, Channel, Event, Refusal, Request, Review, Reviewer, State, Verdict,
};
use countersign_model::{Action, Chain, PrincipalKind, RequestId, Timestamp};
use countersign_policy::{Decision, Outcome, Requirement};
use proptest::prelude::*;
use serde_json::json;

const T0: i64 = 1_795_277_280_000;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix_millis(T0 + secs * 1000)
}

fn requirement(
    rule: &str,
    groups: &[&str],
    principals: &[&str],
    count: u32,
    distinct: u32,
) -> Requirement {
    Requirement {
        rule: rule.into(),
        groups: groups.iter().map(|s| s.to_string()).collect(),
        principals: principals.iter().map(|s| s.to_string()).collect(),
        count,
        distinct_groups: distinct,
        denials: 1,
    }
}

fn open(requirements: Vec<Requirement>) -> Request {
    let action = Action {
        kind: "shell.exec".into(),
        resource: "db:prod/customers".into(),
        claims: Default::default(),
        labels: BTreeMap::new(),
        details: json!({"argv": ["pg_dump", "customers"]}),
        principal: Chain {
            via: None,
            id: "deploy-bot".into(),
            kind: PrincipalKind::Agent,
            on_behalf_of: vec!["alice".into()],
            started_by: Some("ci-42".into()),
        },
        justification: None,
    };
    let decision = Decision {
        outcome: Outcome::RequireApproval,
        rules: requirements.iter().map(|r| r.rule.clone()).collect(),
        requirements,
        timeout_seconds: Some(1800),
        approval_ttl_seconds: None,
        condition_failures: vec![],
        explanation: "test".into(),
    };
    Request::open(RequestId::from_random([1; 16]), action, decision, at(0)).unwrap()
}

fn human(id: &str, groups: &[&str]) -> Reviewer {
    Reviewer {
        id: id.into(),
        kind: PrincipalKind::Human,
        groups: groups.iter().map(|s| s.to_string()).collect(),
        authentication: Authentication::ApiToken,
    }
}

fn review(reviewer: Reviewer, verdict: Verdict, secs: i64) -> Event {
    Event::Review(Review {
        reviewer,
        verdict,
        comment: None,
        channel: Channel::Api,
        at: at(secs),
    })
}

fn dba_and_sre() -> Request {
    open(vec![requirement(
        "prod-db-export",
        &["dba", "sre"],
        &[],
        2,
        2,
    )])
}

#[test]
fn two_eligible_humans_from_two_groups_approve() {
    let r = dba_and_sre();
    let r = r
        .apply(&review(human("dana", &["dba"]), Verdict::Approve, 10))
        .unwrap();
    assert_eq!(r.state, State::Pending);
    assert_eq!(
        r.waiting_summary(),
        "waiting for 1 more approval from members of dba or sre, covering 1 more group \
         (rule prod-db-export); request r_01010101010101010101010101010101"
    );
    let r = r
        .apply(&review(human("sam", &["sre"]), Verdict::Approve, 20))
        .unwrap();
    assert_eq!(r.state, State::Approved { at: at(20) });
}

#[test]
fn two_approvers_from_one_group_do_not_meet_separation_of_duties() {
    let r = dba_and_sre();
    let r = r
        .apply(&review(human("dana", &["dba"]), Verdict::Approve, 10))
        .unwrap();
    let r = r
        .apply(&review(human("dave", &["dba"]), Verdict::Approve, 20))
        .unwrap();
    assert_eq!(r.state, State::Pending);
    assert!(r.waiting_summary().starts_with(
        "waiting for 1 more approval from members of dba or sre, covering 1 more group"
    ));
    // One person in both groups covers only one of them.
    let r = r
        .apply(&review(
            human("both", &["dba", "sre"]),
            Verdict::Approve,
            30,
        ))
        .unwrap();
    assert_eq!(r.state, State::Approved { at: at(30) });
}

#[test]
fn the_chain_and_agents_never_review() {
    let r = dba_and_sre();
    let refused = |reviewer: Reviewer| r.apply(&review(reviewer, Verdict::Approve, 5)).unwrap_err();
    assert_eq!(
        refused(human("alice", &["dba"])).to_string(),
        "alice cannot review this request: alice is the person the requester acts for, and nobody approves their own request"
    );
    assert!(matches!(
        refused(human("deploy-bot", &["dba"])),
        Refusal::SelfApproval {
            role: "the requester",
            ..
        }
    ));
    assert!(matches!(
        refused(human("ci-42", &["sre"])),
        Refusal::SelfApproval { .. }
    ));
    let mut bot = human("other-bot", &["dba"]);
    bot.kind = PrincipalKind::Agent;
    assert_eq!(
        refused(bot).to_string(),
        "other-bot is an agent; only humans review requests"
    );
    assert_eq!(
        refused(human("eve", &["marketing"])).to_string(),
        "eve is not an eligible approver for this request: it needs 2 approvals from members of dba or sre, covering at least 2 of those groups"
    );
}

#[test]
fn one_review_per_human_and_none_after_the_decision() {
    let r = dba_and_sre();
    let r = r
        .apply(&review(human("dana", &["dba"]), Verdict::Approve, 10))
        .unwrap();
    let again = r
        .apply(&review(human("dana", &["dba"]), Verdict::Approve, 11))
        .unwrap_err();
    assert_eq!(
        again,
        Refusal::AlreadyReviewed {
            reviewer: "dana".into()
        }
    );
    let denied = r
        .apply(&review(human("sam", &["sre"]), Verdict::Deny, 12))
        .unwrap();
    assert_eq!(
        denied.state,
        State::Denied {
            at: at(12),
            by: "sam".into()
        }
    );
    assert_eq!(denied.denial().unwrap().reviewer.id, "sam");
    let late = denied
        .apply(&review(human("sid", &["sre"]), Verdict::Approve, 13))
        .unwrap_err();
    assert_eq!(
        late.to_string(),
        "the request is already denied; it takes no more reviews or changes"
    );
}

#[test]
fn expiry_is_never_denial_and_the_reverse() {
    let r = dba_and_sre();
    assert_eq!(
        r.apply(&Event::Expire { at: at(100) }).unwrap_err(),
        Refusal::NotYetExpired {
            expires_at: at(1800)
        }
    );
    let expired = r.apply(&Event::Expire { at: at(1800) }).unwrap();
    assert_eq!(expired.state, State::Expired { at: at(1800) });
    assert!(expired.denial().is_none());
    let late_review = r
        .apply(&review(human("dana", &["dba"]), Verdict::Deny, 1800))
        .unwrap_err();
    assert_eq!(late_review, Refusal::Expired { at: at(1800) });
    let denied = r
        .apply(&review(human("dana", &["dba"]), Verdict::Deny, 10))
        .unwrap();
    assert!(denied.apply(&Event::Expire { at: at(5000) }).is_err());
    assert_eq!(denied.state.name(), "denied");
}

#[test]
fn only_the_chain_cancels() {
    let r = dba_and_sre();
    assert_eq!(
        r.apply(&Event::Cancel {
            by: "mallory".into(),
            at: at(1)
        })
        .unwrap_err()
        .to_string(),
        "mallory cannot cancel this request: only the requester or the humans it acts for can"
    );
    let cancelled = r
        .apply(&Event::Cancel {
            by: "deploy-bot".into(),
            at: at(2),
        })
        .unwrap();
    assert_eq!(
        cancelled.state,
        State::Cancelled {
            at: at(2),
            by: "deploy-bot".into()
        }
    );
}

#[test]
fn every_matching_rule_must_be_satisfied() {
    let r = open(vec![
        requirement("terraform-prod", &["sre"], &[], 1, 0),
        requirement("security-review", &[], &["sol"], 1, 0),
    ]);
    let r = r
        .apply(&review(human("sam", &["sre"]), Verdict::Approve, 1))
        .unwrap();
    assert_eq!(r.state, State::Pending);
    let r = r
        .apply(&review(human("sol", &[]), Verdict::Approve, 2))
        .unwrap();
    assert_eq!(r.state, State::Approved { at: at(2) });
}

#[test]
fn a_rule_may_tolerate_denials() {
    let mut lenient = requirement("lenient", &["sre"], &[], 1, 0);
    lenient.denials = 2;
    let r = open(vec![lenient]);
    let r = r
        .apply(&review(human("sam", &["sre"]), Verdict::Deny, 1))
        .unwrap();
    assert_eq!(r.state, State::Pending);
    let r = r
        .apply(&review(human("sid", &["sre"]), Verdict::Deny, 2))
        .unwrap();
    assert_eq!(
        r.state,
        State::Denied {
            at: at(2),
            by: "sid".into()
        }
    );
}

#[test]
fn requests_round_trip_through_json() {
    let r = dba_and_sre()
        .apply(&review(human("dana", &["dba"]), Verdict::Approve, 10))
        .unwrap();
    let text = serde_json::to_string(&r).unwrap();
    assert!(text.contains(r#""state":{"name":"pending"}"#), "{text}");
    let back: Request = serde_json::from_str(&text).unwrap();
    assert_eq!(back, r);
}

// ─── Properties ────────────────────────────────────────────────────────────────────────────────

/// The cast: chain members, agents, and humans in various groups (some in several).
fn cast() -> Vec<Reviewer> {
    let mut bot = human("rogue-bot", &["dba", "sre"]);
    bot.kind = PrincipalKind::Agent;
    vec![
        human("alice", &["dba", "sre"]),      // the human the agent acts for
        human("deploy-bot", &["dba", "sre"]), // the requester, pretending to be human
        human("ci-42", &["sre"]),             // what started it
        bot,
        human("dana", &["dba"]),
        human("dave", &["dba"]),
        human("sam", &["sre"]),
        human("sid", &["sre"]),
        human("both", &["dba", "sre"]),
        human("sol", &["security"]),
        human("eve", &[]),
    ]
}

fn arbitrary_requirements() -> impl Strategy<Value = Vec<Requirement>> {
    let one = (
        prop::sample::subsequence(vec!["dba", "sre", "security"], 0..=3),
        prop::sample::subsequence(vec!["sol", "eve", "alice"], 0..=2),
        1u32..=3,
        0u32..=2,
        1u32..=2,
    )
        .prop_filter("somebody must be able to approve", |(g, p, ..)| {
            !g.is_empty() || !p.is_empty()
        })
        .prop_map(
            |(groups, principals, count, distinct, denials)| Requirement {
                rule: format!("r-{}-{}", groups.join("-"), principals.join("-")),
                distinct_groups: distinct.min(groups.len() as u32).min(count),
                groups: groups.into_iter().map(String::from).collect(),
                principals: principals.into_iter().map(String::from).collect(),
                count,
                denials,
            },
        );
    prop::collection::vec(one, 1..=2)
}

fn arbitrary_events() -> impl Strategy<Value = Vec<(usize, bool, u8)>> {
    // (who, approve?, what kind of event: mostly reviews, sometimes cancel or expire)
    prop::collection::vec((0..cast().len(), prop::bool::weighted(0.8), 0u8..20), 0..25)
}

proptest! {
    /// No sequence of events approves a request without, for every requirement, a quorum of
    /// distinct eligible humans outside the chain; and nobody in the chain, and no agent, is ever
    /// among the accepted reviews.
    #[test]
    fn approval_needs_a_real_quorum(requirements in arbitrary_requirements(), events in arbitrary_events()) {
        let cast = cast();
        let mut request = open(requirements.clone());
        for (i, (who, approve, kind)) in events.into_iter().enumerate() {
            let secs = i as i64 + 1;
            let event = match kind {
                0 => Event::Cancel { by: cast[who].id.clone(), at: at(secs) },
                1 => Event::Expire { at: at(secs * 200) },
                _ => review(cast[who].clone(), if approve { Verdict::Approve } else { Verdict::Deny }, secs * 100),
            };
            let before = request.clone();
            match request.apply(&event) {
                Ok(next) => {
                    prop_assert!(before.state.is_pending(), "a decided request changed");
                    request = next;
                }
                Err(_) => prop_assert_eq!(&request, &before),
            }
        }
        let chain = &request.action.principal;
        for accepted in &request.reviews {
            prop_assert_eq!(accepted.reviewer.kind, PrincipalKind::Human);
            prop_assert!(!chain.contains(&accepted.reviewer.id), "{} is in the chain", accepted.reviewer.id);
        }
        let ids: Vec<&str> = request.reviews.iter().map(|r| r.reviewer.id.as_str()).collect();
        let distinct: BTreeSet<&str> = ids.iter().copied().collect();
        prop_assert_eq!(ids.len(), distinct.len(), "someone reviewed twice");

        if let State::Approved { .. } = request.state {
            for req in &requirements {
                // Recount independently of the crate's quorum code.
                let approvers: Vec<&Reviewer> = request.reviews.iter()
                    .filter(|r| r.verdict == Verdict::Approve)
                    .map(|r| &r.reviewer)
                    .filter(|r| req.principals.contains(&r.id) || r.groups.iter().any(|g| req.groups.contains(g)))
                    .collect();
                prop_assert!(approvers.len() >= req.count as usize, "rule {} approved with {} approvers", req.rule, approvers.len());
                if req.distinct_groups > 0 {
                    prop_assert!(brute_force_cover(&req.groups, &approvers) >= req.distinct_groups);
                }
            }
            prop_assert!(request.reviews.iter().all(|r| r.verdict == Verdict::Approve) || requirements.iter().any(|r| r.denials > 1));
        }
        if let State::Expired { at: when } = request.state {
            prop_assert_eq!(when, request.expires_at);
            prop_assert!(request.denial().is_none());
        }
        if let State::Denied { .. } = request.state {
            prop_assert!(request.denial().is_some());
        }
    }
}

/// The most groups the approvers can cover, one group per person, by trying every assignment.
fn brute_force_cover(groups: &[String], approvers: &[&Reviewer]) -> u32 {
    fn go(i: usize, groups: &[String], approvers: &[&Reviewer], used: &mut Vec<bool>) -> u32 {
        if i == approvers.len() {
            return 0;
        }
        let mut best = go(i + 1, groups, approvers, used);
        for (g, group) in groups.iter().enumerate() {
            if !used[g] && approvers[i].groups.contains(group) {
                used[g] = true;
                best = best.max(1 + go(i + 1, groups, approvers, used));
                used[g] = false;
            }
        }
        best
    }
    go(0, groups, approvers, &mut vec![false; groups.len()])
}

#[test]
fn channel_names_are_the_same_in_json_and_in_the_store() {
    for channel in [
        Channel::Api,
        Channel::Cli,
        Channel::Web,
        Channel::Slack,
        Channel::Teams,
    ] {
        assert_eq!(serde_json::to_value(channel).unwrap(), channel.as_str());
    }
}
