//! Countersign in Slack. Pending requests are posted (Block Kit) to a default channel and to the
//! channels their rules name; reviewers approve or deny from the message; each click is verified
//! as Slack's (signature, freshness, no replay), mapped to a principal, and applied through the
//! broker's one review path, so self-approval and eligibility rules hold exactly as in the API.
//! Messages are updated after every review, at the request's end and with the outcome.
//!
//! This crate talks to Slack and the broker; it reads no file and no environment: the binary
//! passes the settings and the secrets.

pub mod address;
mod directory;
mod interactions;
mod notifier;
pub mod render;
pub mod settings;
pub mod signature;
mod web_api;

use std::sync::Arc;

use axum::Router;
use axum::routing::post;
use countersign_broker::Broker;

pub use settings::{Secrets, Settings};
pub use web_api::{SlackApi, SlackError};

use crate::directory::Directory;
use crate::notifier::SlackChannel;
use crate::signature::ReplayGuard;

/// What the interaction endpoint shares.
#[derive(Debug)]
struct Shared {
    broker: Broker,
    api: SlackApi,
    settings: Settings,
    secrets: Secrets,
    directory: Directory,
    replays: ReplayGuard,
}

/// The running Slack integration.
#[derive(Debug, Clone)]
pub struct Slack {
    shared: Arc<Shared>,
}

impl Slack {
    /// Starts posting and updating messages for the broker's requests. Must be called inside a
    /// tokio runtime.
    pub fn start(broker: Broker, settings: Settings, secrets: Secrets) -> Result<Slack, String> {
        let api = SlackApi::new(&settings, &secrets.bot_token)?;
        for (principal, user) in
            countersign_channel::directory::identities(&broker, address::SERVICE)
        {
            address::check_user(principal, user)?;
        }
        let notifier = Arc::new(countersign_channel::Notifier::new(
            broker.clone(),
            SlackChannel::new(api.clone(), settings.channel.clone()),
        ));
        tokio::spawn(notifier.run());
        let shared = Arc::new(Shared {
            directory: Directory::new(broker.clone()),
            broker,
            api,
            settings,
            secrets,
            replays: ReplayGuard::default(),
        });
        let warm = Arc::clone(&shared);
        tokio::spawn(async move { warm.directory.refresh(&warm.api).await });
        Ok(Slack { shared })
    }

    /// `POST /slack/interactions`, to merge with the broker's router.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/slack/interactions", post(interactions::receive))
            .with_state(Arc::clone(&self.shared))
    }
}
