//! The calls waiting for approval, by JSON-RPC id, so that the client's `notifications/cancelled`
//! can withdraw one. Once a call's approval is being used, a cancellation no longer stops it: it
//! is passed to the server right after the call, as it would have been without Countersign.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::oneshot;

#[derive(Debug)]
enum Slot {
    Waiting(oneshot::Sender<()>),
    /// Past the point of no return; a cancellation that arrives now is kept to send after it.
    Forwarding(Option<Vec<u8>>),
}

/// What became of a cancellation.
#[derive(Debug, PartialEq, Eq)]
pub enum Withdrawal {
    /// The call was waiting: it is withdrawn and will never be forwarded.
    Withdrawn,
    /// The call is being forwarded: the cancellation follows it.
    Deferred,
    /// Not a held call: forward the cancellation as it is.
    NotHeld,
}

/// Held calls of one connection (stdio) or of all sessions (HTTP, keyed by session and id).
#[derive(Debug, Default)]
pub struct HeldCalls {
    calls: Mutex<HashMap<String, Slot>>,
}

impl HeldCalls {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a call; the receiver fires if it is withdrawn. `None` if a call with this key
    /// is already held.
    pub fn hold(&self, key: &str) -> Option<oneshot::Receiver<()>> {
        let mut calls = self.lock();
        if calls.contains_key(key) {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        calls.insert(key.to_owned(), Slot::Waiting(tx));
        Some(rx)
    }

    /// The client cancelled `key`; `notification` is its message, kept if it must follow the call.
    pub fn withdraw(&self, key: &str, notification: &[u8]) -> Withdrawal {
        let mut calls = self.lock();
        match calls.get_mut(key) {
            None => Withdrawal::NotHeld,
            Some(Slot::Forwarding(kept)) => {
                *kept = Some(notification.to_vec());
                Withdrawal::Deferred
            }
            Some(Slot::Waiting(_)) => {
                if let Some(Slot::Waiting(tx)) = calls.remove(key) {
                    let _ = tx.send(());
                }
                Withdrawal::Withdrawn
            }
        }
    }

    /// The approval is about to be used: from now on the call goes ahead. False if it was
    /// withdrawn meanwhile (then it must not go ahead).
    pub fn start_forwarding(&self, key: &str) -> bool {
        let mut calls = self.lock();
        match calls.get_mut(key) {
            Some(slot @ Slot::Waiting(_)) => {
                *slot = Slot::Forwarding(None);
                true
            }
            _ => false,
        }
    }

    /// The call is done with (forwarded or refused): forgets it, and returns a cancellation that
    /// arrived while it was being forwarded.
    pub fn release(&self, key: &str) -> Option<Vec<u8>> {
        match self.lock().remove(key) {
            Some(Slot::Forwarding(kept)) => kept,
            _ => None,
        }
    }

    /// Withdraws every waiting call (the client or the server went away).
    pub fn withdraw_all(&self) {
        let mut calls = self.lock();
        calls.retain(|_, slot| matches!(slot, Slot::Forwarding(_)));
    }
}
