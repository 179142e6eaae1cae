//! The policy's `notify` targets against the channels a broker has: an unknown service is
//! refused naming the rule and the fix, an address goes to its channel's own check.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

use countersign_channel::targets::check;
use countersign_policy::Policy;

fn policy(notify: &str) -> Policy {
    Policy::parse(&format!(
        "version = 1\ndefault = \"deny\"\n[[rules]]\nid = \"export\"\nnotify = {notify}\n\
         decision = \"require_approval\"\nreason = \"r\"\nmatch.kind = \"a.b\"\n\
         approvers = {{ groups = [\"dba\"] }}\n"
    ))
    .unwrap_or_else(|e| panic!("{e}"))
}

fn hash_only(address: &str) -> Result<(), String> {
    if address.starts_with('#') {
        Ok(())
    } else {
        Err(format!("'{address}' has no #"))
    }
}

#[test]
fn every_target_names_a_service_a_channel_provides() {
    let p = policy(r##"["chat:#ok", "email:dba@example.com", "pager:x"]"##);
    assert_eq!(
        check(&p, &[("chat", hash_only), ("teams", hash_only)]),
        [
            "rule 'export': notify target 'email:dba@example.com' names the service 'email', which no channel of Countersign provides; write chat:ADDRESS or teams:ADDRESS, or remove the target from the rule",
            "rule 'export': notify target 'pager:x' names the service 'pager', which no channel of Countersign provides; write chat:ADDRESS or teams:ADDRESS, or remove the target from the rule",
        ]
    );
}

#[test]
fn each_address_is_checked_by_its_channel() {
    let p = policy(r##"["chat:#ok", "chat:nohash"]"##);
    assert_eq!(
        check(&p, &[("chat", hash_only)]),
        ["rule 'export': 'nohash' has no #"]
    );
    assert!(check(&policy(r##"["chat:#ok"]"##), &[("chat", hash_only)]).is_empty());
}
