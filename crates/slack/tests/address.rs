//! Slack's addresses in a policy's `notify`: the policy reads `service:address` only, and Slack
//! refuses, when the broker starts, an address that is not a Slack channel, with the words the
//! policy crate used before it knew no Slack syntax.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

use countersign_policy::Policy;
use countersign_slack::address::{SERVICE, check, check_user};

const POLICY: &str = r##"version = 1
default = "deny"
[[rules]]
id = "export"
notify = ["slack:#dba-approvals", "slack:C0123ABCD", "slack:#DBA Approvals", "teams:DBA Approvals"]
decision = "require_approval"
reason = "r"
match.kind = "a.b"
approvers = { groups = ["dba"] }
"##;

#[test]
fn a_policy_naming_a_slack_address_that_is_no_channel_is_refused_with_the_rule() {
    let policy = Policy::parse(POLICY).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        countersign_channel::targets::check(&policy, &[(SERVICE, check)]),
        [
            "rule 'export': notify target 'slack:#DBA Approvals' is not a Slack channel: write it as slack:#channel-name or slack:C0123ABCD (a Slack channel id) (names are lowercase letters, digits, '-', '_' and '.')",
            "rule 'export': notify target 'teams:DBA Approvals' names the service 'teams', which no channel of Countersign provides; write slack:ADDRESS, or remove the target from the rule",
        ]
    );
}

#[test]
fn channel_names_and_ids_are_slack_addresses() {
    for good in ["#dba-approvals", "#a.b_c-1", "C0123ABCD", "G0123ABCD"] {
        assert_eq!(check(good), Ok(()), "{good}");
    }
    for bad in [
        "dba-approvals",
        "#",
        "#Upper",
        "C0123",
        "c0123abcd",
        "U0123ABCD",
    ] {
        assert!(check(bad).is_err(), "{bad}");
    }
}

#[test]
fn slack_identities_are_user_ids() {
    assert_eq!(check_user("dana", "U0DANA0001"), Ok(()));
    assert_eq!(
        check_user("dana", "dana"),
        Err("principal 'dana': identities.slack 'dana' is not a Slack user id (like U0123ABCDE: open the person's Slack profile, ⋮ → Copy member ID)".into())
    );
}
