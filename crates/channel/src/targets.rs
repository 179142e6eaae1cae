//! The policy's `notify` targets, checked when the broker starts (and when the policy is
//! reloaded): each names a service a channel of this broker provides, and that channel accepts
//! the address. The policy crate reads only the `service:address` shape.

use countersign_policy::Policy;

/// A channel's check of its own addresses: `Ok`, or the error naming the target and the fix.
pub type AddressCheck = fn(&str) -> Result<(), String>;

/// Every problem with the policy's `notify` targets, each naming its rule, given the services
/// this broker's channels provide and how each checks its addresses.
pub fn check(policy: &Policy, channels: &[(&str, AddressCheck)]) -> Vec<String> {
    let known = channels
        .iter()
        .map(|(service, _)| format!("{service}:ADDRESS"))
        .collect::<Vec<_>>()
        .join(" or ");
    let mut problems = Vec::new();
    for rule in policy.rules() {
        for target in &rule.notify {
            match channels.iter().find(|(service, _)| *service == target.service) {
                Some((_, check)) => {
                    if let Err(message) = check(&target.address) {
                        problems.push(format!("rule '{}': {message}", rule.id));
                    }
                }
                None => problems.push(format!(
                    "rule '{}': notify target '{target}' names the service '{}', which no channel of \
                     Countersign provides; write {known}, or remove the target from the rule",
                    rule.id, target.service
                )),
            }
        }
    }
    problems
}
