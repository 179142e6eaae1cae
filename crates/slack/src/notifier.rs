//! Keeps one Slack message per request and channel true to the request: posted when the request
//! opens, updated after every review, at its end, and once more with the action's outcome.
//!
//! The loop (a worker per request, bursts coalesced, resyncs) is `countersign_channel`'s
//! notifier; this file says how one request's Slack messages are brought up to date. Where each
//! message is lives in the broker's deliveries, its reference being Slack's channel id and `ts`,
//! so any broker instance, after any restart, updates it.

use countersign_approval::Request;
use countersign_broker::{Broker, Delivery};
use countersign_channel::deliveries::{self, Failures};
use countersign_channel::show;
use countersign_model::RequestId;
use serde_json::json;

use crate::address::SERVICE;
use crate::render;
use crate::web_api::SlackApi;

/// How Slack posts and updates a request's messages.
#[derive(Debug)]
pub struct SlackChannel {
    api: SlackApi,
    default_channel: String,
    failures: Failures,
}

impl SlackChannel {
    pub fn new(api: SlackApi, default_channel: String) -> SlackChannel {
        SlackChannel {
            api,
            default_channel,
            failures: Failures::default(),
        }
    }

    async fn post(
        &self,
        broker: &Broker,
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
        let delivery = Delivery {
            request: request.id,
            channel: SERVICE.into(),
            address: target.to_owned(),
            reference: format!("{channel} {ts}"),
            settled: false,
        };
        let event = deliveries::posted(
            request.id,
            format!(
                "Request {} was posted to Slack channel {target} ({channel}) for review.",
                request.id
            ),
            json!({ "service": SERVICE, "target": target, "channel": channel, "ts": ts }),
        );
        broker
            .record_delivery(&delivery, vec![event])
            .await
            .map_err(|e| format!("posted, but cannot record where: {e}"))
    }

    /// Logs a failed delivery, and audits the first failure per request and channel. The request
    /// itself is untouched: it stays reviewable through every other channel.
    async fn delivery_failed(&self, broker: &Broker, request: &Request, target: &str, error: &str) {
        tracing::error!(id = %request.id, %target, %error, "Slack delivery failed; the request stays reviewable in the web inbox, the CLI and the API");
        let explanation = format!(
            "Request {} could not be shown in Slack channel {target}: {error}. It stays reviewable through the web inbox, the CLI and the API.",
            request.id
        );
        let data = json!({ "service": SERVICE, "target": target, "error": error });
        self.failures
            .record(broker, request.id, target, explanation, data)
            .await;
    }
}

impl countersign_channel::Channel for SlackChannel {
    fn service(&self) -> &'static str {
        SERVICE
    }

    fn title(&self) -> &'static str {
        "Slack"
    }

    /// Brings every message of one request up to date.
    async fn sync(&self, broker: &Broker, id: RequestId) {
        let (request, posted) = match (broker.request(id).await, broker.deliveries(id).await) {
            (Ok(Some(request)), Ok(posted)) => (request, posted),
            (Ok(None), _) => return,
            (Err(error), _) | (_, Err(error)) => {
                tracing::error!(%error, %id, "cannot read a request to show it in Slack");
                return;
            }
        };
        let context = show::context(broker, &request).await;
        let settled = show::settled(&request, &context);
        let blocks = render::blocks(&request, &context);
        let text = render::fallback_text(&request);
        let policy = broker.policy();
        for target in show::addresses(&policy, &request, SERVICE, &self.default_channel) {
            let existing = posted
                .iter()
                .find(|d| d.channel == SERVICE && d.address == target);
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
                                if let Err(error) = broker.record_delivery(&done, vec![]).await {
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
                None => self.post(broker, &request, &target, &text, &blocks).await,
            };
            if let Err(error) = result {
                self.delivery_failed(broker, &request, &target, &error)
                    .await;
            }
        }
    }
}
