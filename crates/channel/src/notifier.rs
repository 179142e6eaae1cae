//! Keeps a channel's messages true to their requests: each request has at most one worker;
//! changes that arrive while it works mark the request dirty, and the worker brings the messages
//! up to date again, so updates never go out of order and bursts coalesce. Messages are rendered
//! from the broker's current state, not from the change, so a missed change costs only
//! freshness: at start, on a lagging feed and every few minutes, every pending request and every
//! delivery not yet settled is synchronised again. Where each message is lives in the broker's
//! deliveries, so any broker instance, after any restart, updates it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use countersign_broker::{Broker, RequestFilter};
use countersign_model::RequestId;
use tokio::sync::broadcast::error::RecvError;

/// How often everything unsettled is synchronised again, changes or not.
const RESYNC_EVERY: Duration = Duration::from_secs(300);

/// The most pending requests a resync reads.
const RESYNC_PENDING: u32 = 500;

/// What a channel adds to the loop: its name, and how to bring one request's messages up to date.
pub trait Channel: Send + Sync + 'static {
    /// The channel's service, as in deliveries and `notify` targets: `slack`.
    fn service(&self) -> &'static str;

    /// A human-readable name for logs: `Slack`.
    fn title(&self) -> &'static str;

    /// Brings every message of request `id` up to date (posting it where it is not yet).
    fn sync(&self, broker: &Broker, id: RequestId) -> impl Future<Output = ()> + Send;
}

/// Follows the broker's changes for one channel.
#[derive(Debug)]
pub struct Notifier<C> {
    broker: Broker,
    channel: C,
    /// Requests with a worker running: `true` when they changed again meanwhile.
    working: Mutex<HashMap<RequestId, bool>>,
}

impl<C: Channel> Notifier<C> {
    pub fn new(broker: Broker, channel: C) -> Notifier<C> {
        Notifier {
            broker,
            channel,
            working: Mutex::new(HashMap::new()),
        }
    }

    /// Follows the broker's changes until the broker stops.
    pub async fn run(self: Arc<Self>) {
        let mut changes = self.broker.subscribe();
        self.resync().await;
        let mut resync = tokio::time::interval(RESYNC_EVERY);
        resync.tick().await;
        loop {
            tokio::select! {
                change = changes.recv() => match change {
                    Ok(change) => self.touch(change.id),
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, channel = self.channel.title(), "a channel's notifier fell behind; synchronising every open request");
                        self.resync().await;
                    }
                    Err(RecvError::Closed) => return,
                },
                _ = resync.tick() => self.resync().await,
            }
        }
    }

    /// Every pending request, and every request whose message does not show its end yet.
    pub async fn resync(self: &Arc<Self>) {
        let title = self.channel.title();
        let filter = RequestFilter {
            state: Some("pending".into()),
            limit: RESYNC_PENDING,
            ..Default::default()
        };
        match self.broker.requests(&filter).await {
            Ok(pending) => pending.iter().for_each(|r| self.touch(r.id)),
            Err(error) => {
                tracing::error!(%error, channel = title, "cannot list pending requests to show them");
            }
        }
        match self
            .broker
            .unsettled_deliveries(self.channel.service())
            .await
        {
            Ok(ids) => ids.into_iter().for_each(|id| self.touch(id)),
            Err(error) => {
                tracing::error!(%error, channel = title, "cannot list messages to update")
            }
        }
    }

    /// Marks a request as changed; starts its worker unless one is running.
    pub fn touch(self: &Arc<Self>, id: RequestId) {
        let mut working = self.working.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(dirty) = working.get_mut(&id) {
            *dirty = true;
            return;
        }
        working.insert(id, false);
        let this = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                this.channel.sync(&this.broker, id).await;
                let mut working = this.working.lock().unwrap_or_else(|p| p.into_inner());
                match working.get_mut(&id) {
                    Some(dirty) if *dirty => *dirty = false,
                    _ => {
                        working.remove(&id);
                        return;
                    }
                }
            }
        });
    }
}
