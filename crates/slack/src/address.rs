//! What Slack's addresses and identities look like: a channel is `#channel-name` or a channel id
//! (`C0123ABCD`), a user an id like `U0123ABCDE`. The policy reads a `notify` target as
//! `service:address` only, and the configuration a principal's `identities.slack` as text; Slack
//! checks its own (the policy's targets through `countersign_channel::targets`, `slack.channel`,
//! the principals' Slack ids) when the broker starts.

use countersign_policy::NotifyTarget;

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

/// Checks a principal's Slack user id (`identities.slack`); the error says where to find it.
pub fn check_user(principal: &str, user: &str) -> Result<(), String> {
    let valid = user.len() >= 9
        && user.starts_with(['U', 'W'])
        && user
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    if valid {
        Ok(())
    } else {
        Err(format!(
            "principal '{principal}': identities.slack '{user}' is not a Slack user id (like U0123ABCDE: open the person's Slack profile, ⋮ → Copy member ID)"
        ))
    }
}
