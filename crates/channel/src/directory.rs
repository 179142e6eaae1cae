//! Which principal a channel's user is, by the `identities` the configuration gives principals
//! (`identities = { slack = "U…", teams = "…" }`). Only humans: an agent never reviews, so no
//! channel identity ever maps to one. A channel may add its own lookups (Slack: by email) after
//! this one.

use std::sync::Arc;

use countersign_broker::{Broker, Principal};
use countersign_model::PrincipalKind;

/// The human whose identity in `channel` is `identity`, if the configuration says so.
pub fn configured(broker: &Broker, channel: &str, identity: &str) -> Option<Arc<Principal>> {
    broker
        .principals()
        .iter()
        .find(|p| p.kind == PrincipalKind::Human && p.identity(channel) == Some(identity))
        .cloned()
}

/// Every identity in `channel` the configuration names, with its principal's id, for a channel
/// to check at start-up (`at` says where, as in the configuration's own errors).
pub fn identities<'a>(
    broker: &'a Broker,
    channel: &'a str,
) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
    broker
        .principals()
        .iter()
        .filter_map(move |p| Some((p.id.as_str(), p.identity(channel)?)))
}
