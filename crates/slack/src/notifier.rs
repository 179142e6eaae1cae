//! Keeps one Slack message per request and channel true to the request: posted when the request
//! opens, updated after every review, at its end, and once more with the action's outcome.
//!
//! Each request has at most one worker; changes that arrive while it works mark the request dirty,
//! and the worker renders the latest state again, so updates never go out of order and bursts
//! coalesce. Messages are rendered from the store, not from the change, so a missed change costs
//! only freshness: at start, on a lagging feed and every few minutes, every pending request and
//! every message not yet settled is synchronised again. Where each message is lives in the store,
//! so any broker instance, after any restart, updates it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use countersign_approval::{Request, State};
use countersign_audit::EventDraft;
use countersign_broker::{Broker, Delivery, RequestFilter, now};
use countersign_model::RequestId;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::render::{self, Context, Outcome};
use crate::web_api::SlackApi;

const SERVICE: &str = "slack";

/// How often everything unsettled is synchronised again, changes or not.
const RESYNC_EVERY: Duration = Duration::from_secs(300);

/// An approved request whose outcome never came is settled after this long.
const OUTCOME_PATIENCE_MS: i64 = 24 * 3_600_000;

#[derive(Debug)]
pub struct Notifier {
    broker: Broker,
    api: SlackApi,
    default_channel: String,
    /// Requests with a worker running: `true` when they changed again meanwhile.
    working: Mutex<HashMap<RequestId, bool>>,
    /// Deliveries whose failure is already in the audit log, so an outage is recorded once.
    failures_recorded: Mutex<HashSet<(RequestId, String)>>,
}

impl Notifier {
    pub fn new(broker: Broker, api: SlackApi, default_channel: String) -> Notifier {
        Notifier {
            broker,
            api,
            default_channel,
            working: Mutex::new(HashMap::new()),
            failures_recorded: Mutex::new(HashSet::new()),
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
                        tracing::warn!(missed, "the Slack notifier fell behind; synchronising every open request");
                        self.resync().await;
                    }
                    Err(RecvError::Closed) => return,
                },
                _ = resync.tick() => self.resync().await,
            }
        }
    }

    /// Every pending request, and every request whose message does not show its end yet.
    async fn resync(self: &Arc<Self>) {
        let filter = RequestFilter {
            state: Some("pending".into()),
            limit: 500,
            ..Default::default()
        };
        match self.broker.requests(&filter).await {
            Ok(pending) => pending.iter().for_each(|r| self.touch(r.id)),
            Err(error) => tracing::error!(%error, "cannot list pending requests for Slack"),
        }
        match self.broker.unsettled_deliveries(SERVICE).await {
            Ok(ids) => ids.into_iter().for_each(|id| self.touch(id)),
            Err(error) => tracing::error!(%error, "cannot list Slack messages to update"),
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
                this.sync(id).await;
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

    /// Where a request is announced: the default channel, then each deciding rule's `notify`.
    fn targets(&self, request: &Request) -> Vec<String> {
        let policy = self.broker.policy();
        let mut targets = vec![self.default_channel.clone()];
        for rule in policy
            .rules()
            .iter()
            .filter(|r| request.decision.rules.contains(&r.id))
        {
            for target in rule.notify.iter().filter(|t| t.service == SERVICE) {
                if !targets.contains(&target.address) {
                    targets.push(target.address.clone());
                }
            }
        }
        targets
    }

    async fn context(&self, request: &Request) -> Context {
        let policy = self.broker.policy();
        let rules = request
            .decision
            .rules
            .iter()
            .map(|id| {
                let reason = policy
                    .rules()
                    .iter()
                    .find(|r| &r.id == id)
                    .map_or_else(String::new, |r| r.reason.clone());
                (id.clone(), reason)
            })
            .collect();
        let outcome = if matches!(request.state, State::Approved { .. }) {
            match self.broker.audit_of(request.id).await {
                Ok(events) => events
                    .iter()
                    .rev()
                    .find(|e| e.kind == "action.outcome")
                    .map(|e| Outcome {
                        status: e.data["status"].as_str().unwrap_or("failed").to_owned(),
                        exit_code: e.data["exit_code"].as_i64(),
                        at: e.time,
                    }),
                Err(error) => {
                    tracing::warn!(%error, id = %request.id, "cannot read a request's outcome");
                    None
                }
            }
        } else {
            None
        };
        Context {
            rules,
            outcome,
            link: format!("{}/requests/{}", self.broker.public_url(), request.id),
        }
    }

    /// Brings every message of one request up to date.
    async fn sync(&self, id: RequestId) {
        let (request, posted) = match (
            self.broker.request(id).await,
            self.broker.deliveries(id).await,
        ) {
            (Ok(Some(request)), Ok(posted)) => (request, posted),
            (Ok(None), _) => return,
            (Err(error), _) | (_, Err(error)) => {
                tracing::error!(%error, %id, "cannot read a request to show it in Slack");
                return;
            }
        };
        let context = self.context(&request).await;
        let settled = match request.state {
            State::Pending => false,
            State::Approved { at } => {
                context.outcome.is_some()
                    || now().unix_millis() - at.unix_millis() > OUTCOME_PATIENCE_MS
            }
            _ => true,
        };
        let blocks = render::blocks(&request, &context);
        let text = render::fallback_text(&request);
        for target in self.targets(&request) {
            let existing = posted
                .iter()
                .find(|m| m.channel == SERVICE && m.address == target);
            let result = match existing {
                Some(message) if message.settled => continue,
                Some(message) => {
                    let Some((channel, ts)) = message.reference.split_once(' ') else {
                        tracing::error!(%id, reference = %message.reference, "a Slack message's recorded place is not a channel and a ts");
                        continue;
                    };
                    let body =
                        json!({ "channel": channel, "ts": ts, "text": text, "blocks": blocks });
                    match self.api.call("chat.update", &body).await {
                        Ok(_) => {
                            if settled {
                                let done = Delivery {
                                    settled: true,
                                    ..message.clone()
                                };
                                if let Err(error) = self.broker.record_delivery(&done, vec![]).await
                                {
                                    tracing::warn!(%error, %id, "cannot mark a Slack message settled");
                                }
                            }
                            Ok(())
                        }
                        Err(error) => Err(error.to_string()),
                    }
                }
                // A request that ended before it could be announced is not announced late.
                None if !request.state.is_pending() => continue,
                None => self.post(&request, &target, &text, &blocks).await,
            };
            if let Err(error) = result {
                self.delivery_failed(&request, &target, &error).await;
            }
        }
    }

    async fn post(
        &self,
        request: &Request,
        target: &str,
        text: &str,
        blocks: &serde_json::Value,
    ) -> Result<(), String> {
        let body = json!({ "channel": target, "text": text, "blocks": blocks, "unfurl_links": false, "unfurl_media": false });
        let answer = self
            .api
            .call("chat.postMessage", &body)
            .await
            .map_err(|e| e.to_string())?;
        let (Some(channel), Some(ts)) = (answer["channel"].as_str(), answer["ts"].as_str()) else {
            return Err("Slack's answer to chat.postMessage has no channel and ts".into());
        };
        let message = Delivery {
            request: request.id,
            channel: SERVICE.into(),
            address: target.to_owned(),
            reference: format!("{channel} {ts}"),
            settled: false,
        };
        let event = EventDraft::new(
            now(),
            "notification.posted",
            format!(
                "Request {} was posted to Slack channel {target} ({channel}) for review.",
                request.id
            ),
        )
        .with_principal("countersign".to_owned())
        .with_request_id(request.id)
        .with_data(json!({ "service": SERVICE, "target": target, "channel": channel, "ts": ts }));
        self.broker
            .record_delivery(&message, vec![event])
            .await
            .map_err(|e| format!("posted, but cannot record where: {e}"))
    }

    /// Logs a failed delivery, and audits the first failure per request and channel. The request
    /// itself is untouched: it stays reviewable through every other channel.
    async fn delivery_failed(&self, request: &Request, target: &str, error: &str) {
        tracing::error!(id = %request.id, %target, %error, "Slack delivery failed; the request stays reviewable in the web inbox, the CLI and the API");
        let first = self
            .failures_recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((request.id, target.to_owned()));
        if !first {
            return;
        }
        let event = EventDraft::new(
            now(),
            "notification.failed",
            format!(
                "Request {} could not be shown in Slack channel {target}: {error}. It stays reviewable through the web inbox, the CLI and the API.",
                request.id
            ),
        )
        .with_principal("countersign".to_owned())
        .with_request_id(request.id)
        .with_data(json!({ "service": SERVICE, "target": target, "error": error }));
        if let Err(e) = self.broker.record(vec![event]).await {
            tracing::error!(error = %e, "cannot record a failed Slack delivery");
        }
    }
}
