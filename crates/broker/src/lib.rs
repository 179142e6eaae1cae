//! The Countersign broker: the HTTP API (docs/api.md) over the store, the policy and the approval
//! core, with waiters, the expiry timer, group-committed audit and metrics.
//!
//! This crate opens sockets and talks to the store, but reads no file and no environment: the
//! binary hands it the configuration, the policy's text (and a way to read it again), the store
//! and the signing key.

mod api;
mod audit_batch;
mod changes;
pub mod config;
mod error;
mod expiry;
pub mod listener;
mod metrics;
mod reported;
mod service;
mod state;
mod trust;
pub mod views;
mod waiters;

use std::sync::{Arc, RwLock};

use countersign_audit::EventKind;
use countersign_model::{Digest, PublicKey, SecretKey};
use countersign_policy::Policy;
use countersign_store::Store;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::Notify;

pub use api::AuditVerification;
pub use changes::Change;
pub use config::{Config, ConfigError, ListenerLimits, Principal};
pub use countersign_store::{Delivery, RequestFilter};
pub use error::ApiError;
pub use service::{ReviewInput, Submitted};
pub use state::{PolicyLoader, now};

use crate::audit_batch::AuditBatcher;
use crate::changes::Changes;
use crate::metrics::Metrics;
use crate::state::{State, draft};
use crate::waiters::Waiters;

/// A running broker's shared state; cheap to clone.
#[derive(Debug, Clone)]
pub struct Broker {
    state: Arc<State>,
}

impl Broker {
    /// Builds the broker and starts its background tasks (expiry, audit batching). Must be called
    /// inside a tokio runtime.
    pub async fn start(
        config: &Config,
        policy: Policy,
        load_policy: PolicyLoader,
        store: Arc<dyn Store>,
        key: SecretKey,
    ) -> Result<Broker, countersign_store::StoreError> {
        let pending = store.count_requests("pending").await?;
        let state = Arc::new(State {
            policy: RwLock::new(Arc::new(policy)),
            served: Default::default(),
            load_policy,
            audit: AuditBatcher::start(Arc::clone(&store)),
            store,
            public_key: key.public_key(),
            key,
            principals: config.principals.iter().cloned().map(Arc::new).collect(),
            tokens: config.tokens.clone(),
            waiters: Waiters::default(),
            changes: Changes::default(),
            deadlines: Notify::new(),
            metrics: Metrics::default(),
            public_url: config.public_url.clone(),
        });
        state
            .metrics
            .set_pending(i64::try_from(pending).unwrap_or(i64::MAX));
        expiry::start(Arc::clone(&state));
        Ok(Broker { state })
    }

    pub fn router(&self) -> axum::Router {
        api::router(Arc::clone(&self.state))
    }

    /// Serves the API on `listener`, within the default limits, until the future is dropped.
    pub async fn serve(&self, listener: TcpListener) -> std::io::Result<()> {
        listener::serve(
            listener,
            self.router(),
            ListenerLimits::default(),
            std::future::pending(),
        )
        .await
    }

    /// Re-reads and applies the policy (on SIGHUP); a broken policy is refused and the old one
    /// stays in force. Either way the attempt is audited.
    pub async fn reload_policy(&self, by: &str) -> Result<Digest, String> {
        reload_policy(&self.state, by).await
    }

    pub fn policy_hash(&self) -> Digest {
        self.state.policy().hash()
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<Policy> {
        self.state.policy()
    }

    /// The URL reviewers use to reach this broker.
    pub fn public_url(&self) -> &str {
        &self.state.public_url
    }

    /// The key that verifies the broker's grants, audit checkpoints and exports.
    pub fn public_key(&self) -> &PublicKey {
        &self.state.public_key
    }
}

pub(crate) async fn reload_policy(state: &State, by: &str) -> Result<Digest, String> {
    let at = now();
    let previous = state.policy().hash();
    let loaded = (state.load_policy)().and_then(|text| {
        Policy::parse(&text).map_err(|errors| {
            format!("the new policy was refused, the old one stays in force:\n{errors}")
        })
    });
    match loaded {
        Ok(policy) => {
            let hash = policy.hash();
            let event = draft(
                at,
                EventKind::PolicyReloaded,
                by,
                None,
                format!("{by} reloaded the policy: {previous} was replaced by {hash}."),
            )
            .with_data(
                json!({ "previous": previous, "hash": hash, "rules": policy.rules().len() }),
            );
            // The new policy applies only once its adoption is on record.
            state
                .store
                .append_audit(vec![event])
                .await
                .map_err(|e| e.to_string())?;
            let mut in_force = state
                .policy
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            // Remembered before it is replaced, so a report naming it is never left unknown.
            if in_force.hash() != hash {
                state.served.replaced(Arc::clone(&in_force));
            }
            *in_force = Arc::new(policy);
            drop(in_force);
            tracing::info!(%hash, %by, "policy reloaded");
            Ok(hash)
        }
        Err(errors) => {
            let event = draft(
                at,
                EventKind::PolicyReloadRefused,
                by,
                None,
                format!("{by} tried to reload the policy; {errors}"),
            )
            .with_data(json!({ "in_force": previous }));
            if let Err(error) = state.store.append_audit(vec![event]).await {
                tracing::error!(%error, "cannot record a refused policy reload");
            }
            tracing::warn!(%errors, "policy reload refused");
            Err(errors)
        }
    }
}
