//! Which principal a Slack user is: by the Slack id configured on the principal
//! (`identities.slack`, through `countersign_channel::directory`), or else by the email of a
//! human principal, looked up with `users.lookupByEmail` (which trusts the
//! workspace's verified emails). Agents are never matched: an agent cannot review.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use countersign_broker::{Broker, Principal};
use countersign_model::PrincipalKind;

use crate::address::SERVICE;
use crate::web_api::{SlackApi, SlackError};

/// An unknown Slack user triggers a new email lookup at most this often.
const REFRESH_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct Directory {
    broker: Broker,
    by_email: RwLock<HashMap<String, Arc<Principal>>>,
    refreshed: Mutex<Option<Instant>>,
}

impl Directory {
    pub fn new(broker: Broker) -> Directory {
        Directory {
            broker,
            by_email: RwLock::new(HashMap::new()),
            refreshed: Mutex::new(None),
        }
    }

    /// The human whose Slack user id this is, if any.
    pub async fn principal(&self, api: &SlackApi, user: &str) -> Option<Arc<Principal>> {
        if let Some(p) = self.configured(user) {
            return Some(p);
        }
        if let Some(p) = self.cached(user) {
            return Some(p);
        }
        let due = {
            let mut refreshed = self.refreshed.lock().unwrap_or_else(|p| p.into_inner());
            let due = refreshed.is_none_or(|at| at.elapsed() >= REFRESH_EVERY);
            if due {
                *refreshed = Some(Instant::now());
            }
            due
        };
        if due {
            self.refresh(api).await;
        }
        self.cached(user)
    }

    fn configured(&self, user: &str) -> Option<Arc<Principal>> {
        countersign_channel::directory::configured(&self.broker, SERVICE, user)
    }

    fn cached(&self, user: &str) -> Option<Arc<Principal>> {
        self.by_email
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(user)
            .cloned()
    }

    /// Looks up the Slack user of every human principal with an email and no Slack id.
    pub async fn refresh(&self, api: &SlackApi) {
        let mut found = HashMap::new();
        let mut unanswered = Vec::new();
        for principal in self.broker.principals() {
            let (PrincipalKind::Human, None, Some(email)) = (
                principal.kind,
                principal.identity(SERVICE),
                &principal.email,
            ) else {
                continue;
            };
            match api
                .call_form("users.lookupByEmail", &[("email", email)])
                .await
            {
                Ok(answer) => {
                    if let Some(id) = answer["user"]["id"].as_str() {
                        found.insert(id.to_owned(), Arc::clone(principal));
                    }
                }
                Err(SlackError::Refused { error, .. }) if error == "users_not_found" => {}
                Err(error) => {
                    tracing::warn!(%error, principal = %principal.id, "cannot look up a reviewer's Slack account by email");
                    unanswered.push(principal.id.clone());
                }
            }
        }
        let mut by_email = self.by_email.write().unwrap_or_else(|p| p.into_inner());
        // Whoever Slack could not answer about keeps the account found before.
        for (user, principal) in by_email.drain() {
            if unanswered.contains(&principal.id) {
                found.entry(user).or_insert(principal);
            }
        }
        *by_email = found;
    }
}
