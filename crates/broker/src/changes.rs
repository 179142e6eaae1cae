//! The feed of request changes: every creation, review, decision and recorded outcome is
//! published here after it is durable, for whoever shows requests to people (Slack messages, the
//! web inbox). Subscribers re-read the request from the store, so a missed change costs only
//! freshness: a lagging subscriber is told how many it missed and resynchronises.

use countersign_audit::EventKind;
use countersign_model::RequestId;
use tokio::sync::broadcast;

/// How many changes a slow subscriber may fall behind before it is told it lagged.
const CAPACITY: usize = 4096;

/// One durable change to a request: its id and the audit event kind that recorded it
/// (`request.created`, `review.approved`, `review.denied`, `request.approved`, `request.denied`,
/// `request.expired`, `request.cancelled`, `action.outcome`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub id: RequestId,
    pub kind: EventKind,
}

#[derive(Debug)]
pub struct Changes {
    sender: broadcast::Sender<Change>,
}

impl Default for Changes {
    fn default() -> Changes {
        Changes {
            sender: broadcast::channel(CAPACITY).0,
        }
    }
}

impl Changes {
    pub fn publish(&self, id: RequestId, kind: EventKind) {
        // No subscriber is not an error: nobody is showing requests right now.
        let _ = self.sender.send(Change { id, kind });
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.sender.subscribe()
    }
}
