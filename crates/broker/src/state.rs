//! What every handler shares: the policy in force, the store, the directory, the signing key,
//! waiters, the expiry timer's doorbell, the audit batcher and metrics.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use countersign_api::ErrorCode;
use countersign_audit::{EventDraft, EventKind};
use countersign_model::ids::GrantId;
use countersign_model::{Digest, PublicKey, RequestId, SecretKey, Timestamp};
use countersign_policy::Policy;
use countersign_store::Store;
use tokio::sync::Notify;

use axum::http::StatusCode;

use crate::audit_batch::AuditBatcher;
use crate::changes::Changes;
use crate::config::Principal;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::reported::Served;
use crate::waiters::Waiters;

/// Reads the policy file's current text; supplied by the binary, which owns file access.
pub type PolicyLoader = Arc<dyn Fn() -> Result<String, String> + Send + Sync>;

pub struct State {
    pub policy: RwLock<Arc<Policy>>,
    /// The policies replaced since start, by which reported decisions are checked.
    pub served: Served,
    pub load_policy: PolicyLoader,
    pub store: Arc<dyn Store>,
    pub key: SecretKey,
    pub public_key: PublicKey,
    pub principals: Vec<Arc<Principal>>,
    pub tokens: HashMap<[u8; 32], usize>,
    pub waiters: Waiters,
    pub changes: Changes,
    /// Rung when a request with a possibly earlier deadline is created.
    pub deadlines: Notify,
    pub audit: AuditBatcher,
    pub metrics: Metrics,
    pub public_url: String,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

impl State {
    pub fn policy(&self) -> Arc<Policy> {
        Arc::clone(
            &self
                .policy
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    /// Wakes whoever waits on request `id` and tells the change feed; call once the change
    /// recorded as the audit event `kind` is durable.
    pub fn changed(&self, id: RequestId, kind: EventKind) {
        self.waiters.notify(id);
        self.changes.publish(id, kind);
    }

    pub fn principal(&self, id: &str) -> Option<Arc<Principal>> {
        self.principals.iter().find(|p| p.id == id).cloned()
    }

    pub fn principal_by_token(&self, token: &str) -> Option<Arc<Principal>> {
        let hash = Digest::of(token.as_bytes());
        self.tokens
            .get(hash.as_bytes())
            .map(|&i| Arc::clone(&self.principals[i]))
    }
}

/// The time now, by this machine's clock.
pub fn now() -> Timestamp {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Timestamp::from_unix_millis(millis)
}

/// 16 bytes from the operating system's secure random source; without one, nothing can be
/// opened or granted, so the call is answered 503.
fn random_bytes() -> Result<[u8; 16], ApiError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            format!("the system's random source failed, so nothing was done: {e}"),
        )
    })?;
    Ok(bytes)
}

pub fn new_request_id() -> Result<RequestId, ApiError> {
    random_bytes().map(RequestId::from_random)
}

pub fn new_grant_id() -> Result<GrantId, ApiError> {
    random_bytes().map(GrantId::from_random)
}

/// An audit event about a request, at `time`, by `principal`.
pub fn draft(
    time: Timestamp,
    kind: EventKind,
    principal: &str,
    request: Option<RequestId>,
    explanation: String,
) -> EventDraft {
    let draft = EventDraft::new(time, kind, explanation).with_principal(principal.to_owned());
    match request {
        Some(id) => draft.with_request_id(id),
        None => draft,
    }
}
