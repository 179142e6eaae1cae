//! Wake-ups for clients waiting on a request: each request that someone waits on has a watch
//! channel, bumped whenever the request changes. Waiters subscribe before they read the request,
//! so a change between the read and the wait is never missed.

use std::collections::HashMap;
use std::sync::Mutex;

use countersign_model::RequestId;
use tokio::sync::watch;

#[derive(Debug, Default)]
pub struct Waiters {
    channels: Mutex<HashMap<RequestId, watch::Sender<u64>>>,
}

impl Waiters {
    pub fn subscribe(&self, id: RequestId) -> watch::Receiver<u64> {
        let mut channels = self
            .channels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        channels
            .entry(id)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Wakes everyone waiting on `id`, and forgets channels nobody listens to any more.
    pub fn notify(&self, id: RequestId) {
        let mut channels = self
            .channels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(sender) = channels.get(&id) {
            sender.send_modify(|n| *n = n.wrapping_add(1));
        }
        channels.retain(|_, sender| sender.receiver_count() > 0);
    }
}
