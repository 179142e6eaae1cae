//! What every review channel shares, so that a new channel (Teams after Slack) is a copy of a
//! shape, not of code:
//!
//! - [`notifier`]: the loop that keeps one message per request and address true to the request
//!   (a worker per request, a dirty flag that coalesces bursts, a resync at start, on a lagging
//!   feed and every few minutes); the channel supplies only how to bring one request's messages
//!   up to date.
//! - [`show`]: what a message shows besides the request (the rules' reasons, the outcome, the
//!   link), when a message is settled, and where a request is announced (`notify`).
//! - [`deliveries`]: the audit events of a delivery and of a failed one (recorded once).
//! - [`targets`]: the policy's `notify` targets checked at start-up against the channels that
//!   provide their services.
//! - [`directory`]: which principal a channel's user is, by the principal's `identities`.
//!
//! Channels reach requests, audit events and deliveries through the broker's service layer, never
//! the store.

pub mod deliveries;
pub mod directory;
pub mod notifier;
pub mod show;
pub mod targets;

pub use countersign_broker::Delivery;
pub use notifier::{Channel, Notifier};
pub use show::{Context, Outcome};
