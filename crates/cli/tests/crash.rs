//! Crash safety: the broker is killed with SIGKILL at random moments while an agent submits
//! requests, two humans review them and approved actions consume their grants. After each restart,
//! everything that was acknowledged must still be there; at the end, pending requests can still be
//! waited on and approved, no approval is used twice, and the audit chain verifies.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use countersign_client::{
    ActionRequest, AuditVerification, Client, EvaluateResponse, RequestState, Verdict,
};
use countersign_model::RequestId;
use serde_json::json;
use support::{start_server, token};

/// What the broker acknowledged: each must survive any crash after the acknowledgement.
#[derive(Debug, Default)]
struct Acknowledged {
    requests: BTreeSet<RequestId>,
    reviews: BTreeSet<(RequestId, String)>,
    consumed: BTreeSet<RequestId>,
}

impl Acknowledged {
    fn count(&self) -> usize {
        self.requests.len() + self.reviews.len() + self.consumed.len()
    }
}

type Shared = Arc<Mutex<Acknowledged>>;

fn client(url: &str, who: &str) -> Client {
    Client::new(url, &token(who)).unwrap()
}

fn gated(n: u64) -> ActionRequest {
    serde_json::from_value(json!({
        "kind": "shell.exec",
        "resource": "db:prod/customers",
        "details": {"argv": ["sh", "-c", format!("echo change {n}")]},
    }))
    .unwrap()
}

/// The agent: opens gated requests, and uses the grants of approved ones.
async fn agent(url: String, acked: Shared, stop: Arc<AtomicBool>, mut n: u64) {
    let agent = client(&url, "deploy-bot");
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        if let Ok(EvaluateResponse::RequireApproval(gated)) = agent.evaluate(&gated(n), None).await
        {
            acked.lock().unwrap().requests.insert(gated.request.id);
        }
        let approved: Vec<RequestId> = {
            let a = acked.lock().unwrap();
            a.requests
                .iter()
                .filter(|id| !a.consumed.contains(id))
                .copied()
                .collect()
        };
        for id in approved.into_iter().take(3) {
            let Ok(view) = agent.get_request(id).await else {
                continue;
            };
            if view.state != RequestState::Approved {
                continue;
            }
            let Ok(waited) = agent.wait(id, Duration::from_secs(1)).await else {
                continue;
            };
            if let Some(grant) = waited.grant
                && agent
                    .consume_grant(&grant.token, waited.digest)
                    .await
                    .is_ok()
            {
                acked.lock().unwrap().consumed.insert(id);
            }
        }
    }
}

/// A reviewer: approves whatever is pending.
async fn reviewer(url: String, who: &'static str, acked: Shared, stop: Arc<AtomicBool>) {
    let human = client(&url, who);
    while !stop.load(Ordering::SeqCst) {
        let Ok(pending) = human
            .list_requests(Some(RequestState::Pending), Some(10))
            .await
        else {
            tokio::task::yield_now().await;
            continue;
        };
        for request in pending {
            if request.reviews.iter().any(|r| r.reviewer == who) {
                continue;
            }
            if human
                .review(request.id, Verdict::Approve, None)
                .await
                .is_ok()
            {
                acked
                    .lock()
                    .unwrap()
                    .reviews
                    .insert((request.id, who.to_owned()));
            }
        }
    }
}

/// A tiny deterministic generator, so a failing run can be replayed.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_work_survives_sigkill_at_any_moment() {
    let mut server = start_server("crash");
    let url = server.url.clone();
    let acked: Shared = Arc::default();
    let mut seed = 0x5eed_u64 ^ u64::from(std::process::id());

    for round in 0..5u64 {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = vec![
            tokio::spawn(agent(
                url.clone(),
                Arc::clone(&acked),
                Arc::clone(&stop),
                round * 1_000_000,
            )),
            tokio::spawn(reviewer(
                url.clone(),
                "dana",
                Arc::clone(&acked),
                Arc::clone(&stop),
            )),
            tokio::spawn(reviewer(
                url.clone(),
                "sam",
                Arc::clone(&acked),
                Arc::clone(&stop),
            )),
        ];
        // Kill at a random point: after a random number of further acknowledgements.
        let target = acked.lock().unwrap().count() + 3 + (next(&mut seed) % 25) as usize;
        let deadline = Instant::now() + Duration::from_secs(60);
        while acked.lock().unwrap().count() < target {
            assert!(
                Instant::now() < deadline,
                "the workload made no progress in round {round}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let url_for_restart = url.clone();
        tokio::task::block_in_place(|| server.crash_and_restart());
        stop.store(true, Ordering::SeqCst);
        for task in tasks {
            task.await.unwrap();
        }

        // Everything acknowledged before the crash is still there.
        let sam = client(&url_for_restart, "sam");
        let snapshot: Vec<(RequestId, Vec<String>)> = {
            let a = acked.lock().unwrap();
            let mut by_request: BTreeMap<RequestId, Vec<String>> =
                a.requests.iter().map(|id| (*id, vec![])).collect();
            for (id, who) in &a.reviews {
                by_request.entry(*id).or_default().push(who.clone());
            }
            by_request.into_iter().collect()
        };
        for (id, reviewers) in snapshot {
            let view = sam.get_request(id).await.unwrap_or_else(|e| {
                panic!("round {round}: acknowledged request {id} is lost: {e}")
            });
            for who in reviewers {
                assert!(
                    view.reviews.iter().any(|r| r.reviewer == who),
                    "round {round}: the acknowledged review of {id} by {who} is lost"
                );
            }
        }
    }

    // After the last restart: pending requests can still be waited on and approved, and every
    // approval runs at most once.
    let agent = client(&url, "deploy-bot");
    let (requests, consumed) = {
        let a = acked.lock().unwrap();
        (a.requests.clone(), a.consumed.clone())
    };
    eprintln!(
        "acknowledged: {} requests, {} reviews, {} consumed",
        requests.len(),
        acked.lock().unwrap().reviews.len(),
        consumed.len()
    );
    assert!(
        requests.len() >= 5,
        "too little work was done to mean anything: {} requests",
        requests.len()
    );
    for id in &requests {
        let view = agent.get_request(*id).await.unwrap();
        if view.state == RequestState::Pending {
            let waiting = {
                let agent = client(&url, "deploy-bot");
                let id = *id;
                tokio::spawn(async move { agent.wait(id, Duration::from_secs(30)).await })
            };
            for who in ["dana", "sam"] {
                if !view.reviews.iter().any(|r| r.reviewer == who) {
                    client(&url, who)
                        .review(*id, Verdict::Approve, None)
                        .await
                        .unwrap();
                }
            }
            let decided = waiting.await.unwrap().unwrap();
            assert_eq!(decided.state, RequestState::Approved, "{id}");
        }
        let waited = agent.wait(*id, Duration::from_secs(1)).await.unwrap();
        match waited.grant {
            // A used approval hands out no grant; the log check below proves it was used once.
            None => {}
            Some(grant) => {
                assert!(
                    !consumed.contains(id),
                    "{id}: a grant was handed out for an approval already used"
                );
                agent
                    .consume_grant(&grant.token, waited.digest)
                    .await
                    .unwrap();
                let again = agent
                    .consume_grant(&grant.token, waited.digest)
                    .await
                    .unwrap_err();
                assert_eq!(again.code(), Some("grant_used"), "{id}");
            }
        }
    }

    let sam = client(&url, "sam");
    match sam.audit_verify().await.unwrap() {
        AuditVerification::Intact { events, .. } => assert!(events > 0),
        AuditVerification::Broken { error, .. } => {
            panic!("the audit chain broke across crashes: {error}")
        }
    }
    let export = sam.audit_export().await.unwrap();
    let mut consumptions: BTreeMap<String, usize> = BTreeMap::new();
    for line in export.lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        if record["event"]["type"] == "grant.consumed" {
            *consumptions
                .entry(record["event"]["request_id"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    assert!(
        consumptions.values().all(|n| *n == 1),
        "an approval was consumed twice: {consumptions:?}"
    );
    assert_eq!(consumptions.len(), requests.len());
}
