//! The audit side of delivering messages: the `notification.posted` event recorded with a
//! delivery, and `notification.failed`, recorded once per request and address so an outage
//! leaves one trace, not one per retry. The request itself is never touched by a failed
//! delivery: it stays reviewable through every other channel.

use std::collections::HashSet;
use std::sync::Mutex;

use countersign_audit::{EventDraft, EventKind};
use countersign_broker::{Broker, now};
use countersign_model::RequestId;
use serde_json::Value;

/// Who records what a channel does on its own.
const SYSTEM: &str = "countersign";

/// The event recorded with a new delivery, in the same transaction.
pub fn posted(request: RequestId, explanation: String, data: Value) -> EventDraft {
    EventDraft::new(now(), EventKind::NotificationPosted, explanation)
        .with_principal(SYSTEM.to_owned())
        .with_request_id(request)
        .with_data(data)
}

/// Deliveries whose failure is already in the audit log.
#[derive(Debug, Default)]
pub struct Failures {
    recorded: Mutex<HashSet<(RequestId, String)>>,
}

impl Failures {
    /// Audits a failed delivery to `address`, the first time only for this request and address.
    pub async fn record(
        &self,
        broker: &Broker,
        request: RequestId,
        address: &str,
        explanation: String,
        data: Value,
    ) {
        let first = self
            .recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((request, address.to_owned()));
        if !first {
            return;
        }
        let event = EventDraft::new(now(), EventKind::NotificationFailed, explanation)
            .with_principal(SYSTEM.to_owned())
            .with_request_id(request)
            .with_data(data);
        if let Err(error) = broker.record(vec![event]).await {
            tracing::error!(%error, %address, "cannot record a failed delivery");
        }
    }
}
