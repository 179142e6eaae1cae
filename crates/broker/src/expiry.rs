//! Expiry: one timer on the earliest deadline among pending requests (not a scan on a fixed tick).
//! Creating a request rings a doorbell so the timer can move earlier; after expiring what is due,
//! it asks the store for the next deadline.

use std::sync::Arc;
use std::time::Duration;

use countersign_approval::Event;
use countersign_audit::EventKind;
use countersign_store::{Update, Updated};

use crate::state::{State, draft, now};

pub fn start(state: Arc<State>) {
    tokio::spawn(async move {
        loop {
            let next = match state.store.next_deadline().await {
                Ok(next) => next,
                Err(error) => {
                    // Retry backoff: the store is down; requests stay pending, which is safe.
                    tracing::error!(%error, "cannot read deadlines; retrying in a second");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let wait = next.map(|deadline| now().until(deadline));
            match wait {
                Some(wait) if wait.is_zero() => expire_due(&state).await,
                Some(wait) => {
                    tokio::select! {
                        () = tokio::time::sleep(wait) => expire_due(&state).await,
                        () = state.deadlines.notified() => {}
                    }
                }
                None => state.deadlines.notified().await,
            }
        }
    });
}

async fn expire_due(state: &State) {
    let at = now();
    let due = match state.store.due_requests(at).await {
        Ok(due) => due,
        Err(error) => {
            tracing::error!(%error, "cannot list expired requests");
            tokio::time::sleep(Duration::from_secs(1)).await;
            return;
        }
    };
    for id in due {
        let transition = Box::new(move |current: &countersign_approval::Request| {
            let next = current.apply(&Event::Expire { at })?;
            let explanation = format!(
                "Request {id} expired at {}: nobody approved it in time. It was not denied; the action did not run.",
                next.expires_at
            );
            let audit = vec![draft(
                at,
                EventKind::RequestExpired,
                "countersign",
                Some(id),
                explanation,
            )];
            Ok(Update {
                request: next,
                audit,
                grant: None,
            })
        });
        match state.store.update_request(id, transition).await {
            Ok(Updated::Applied { request, .. }) => {
                state.metrics.request_closed(request.created_at.until(at));
                state.changed(id, EventKind::RequestExpired);
            }
            // Decided between the listing and now: nothing to expire.
            Ok(Updated::Refused { .. }) => {}
            Err(error) => tracing::error!(%error, %id, "cannot expire a request"),
        }
    }
}
