//! Group commit for the audit events of allowed and denied actions: concurrent handlers hand their
//! events to one task, which appends everything queued in a single durable transaction and then
//! answers each handler. One fsync serves a whole batch, which is what makes durable allowed
//! decisions cheap.

use std::sync::Arc;

use countersign_audit::EventDraft;
use countersign_store::{Store, StoreError};
use tokio::sync::{mpsc, oneshot};

/// Largest batch one transaction takes.
const MAX_BATCH: usize = 1024;

type Reply = oneshot::Sender<Result<(), String>>;

#[derive(Debug, Clone)]
pub struct AuditBatcher {
    queue: mpsc::Sender<(EventDraft, Reply)>,
}

impl AuditBatcher {
    pub fn start(store: Arc<dyn Store>) -> AuditBatcher {
        let (queue, mut incoming) = mpsc::channel::<(EventDraft, Reply)>(8192);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while incoming.recv_many(&mut batch, MAX_BATCH).await > 0 {
                let (drafts, replies): (Vec<EventDraft>, Vec<Reply>) = batch.drain(..).unzip();
                // Handed on as an unavailable store, so keep only what follows that prefix.
                let result = store
                    .append_audit(drafts)
                    .await
                    .map(|_| ())
                    .map_err(|e| match e {
                        StoreError::Unavailable(message) => message,
                        other => other.to_string(),
                    });
                for reply in replies {
                    let _ = reply.send(result.clone());
                }
            }
        });
        AuditBatcher { queue }
    }

    /// Appends one event; returns once it is durable.
    pub async fn append(&self, draft: EventDraft) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((draft, reply))
            .await
            .map_err(|_| StoreError::Unavailable("the audit writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the audit writer has stopped".into()))?
            .map_err(StoreError::Unavailable)
    }
}
