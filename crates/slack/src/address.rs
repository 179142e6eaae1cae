//! What a Slack address is: `#channel-name` or a channel id (`C0123ABCD`). The policy reads a
//! `notify` target as `service:address` only; Slack checks its own addresses, in the policy and
//! in `slack.channel`, when the broker starts.

use countersign_policy::{NotifyTarget, Policy};

/// The service name a policy's `notify` targets use for Slack.
pub const SERVICE: &str = "slack";

/// Checks one Slack address; the error names the whole target and says how to write it.
pub fn check(address: &str) -> Result<(), String> {
    let fix = "write it as slack:#channel-name or slack:C0123ABCD (a Slack channel id)";
    let name_ok = |name: &str| {
        !name.is_empty()
            && name.len() <= 80
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
    };
    let id_ok = |id: &str| {
        id.len() >= 9
            && id.starts_with(['C', 'G'])
            && id
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    };
    let valid = match address.strip_prefix('#') {
        Some(name) => name_ok(name),
        None => id_ok(address),
    };
    if valid {
        Ok(())
    } else {
        let target = NotifyTarget {
            service: SERVICE.to_owned(),
            address: address.to_owned(),
        };
        Err(format!(
            "notify target '{target}' is not a Slack channel: {fix} (names are lowercase letters, digits, '-', '_' and '.')"
        ))
    }
}

/// Every Slack target of the policy's rules that is not a Slack channel, each naming its rule.
pub fn check_policy(policy: &Policy) -> Vec<String> {
    policy
        .rules()
        .iter()
        .flat_map(|rule| {
            rule.notify
                .iter()
                .filter(|t| t.service == SERVICE)
                .filter_map(|t| check(&t.address).err())
                .map(|message| format!("rule '{}': {message}", rule.id))
        })
        .collect()
}
