//! The SQLite store when its disk fails or its files disappear: a write is acknowledged only once
//! it is committed to the database at the store's path, the store recovers on its own when room
//! returns, and a moved or deleted database stops every write instead of taking it into the void.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

use std::future::Future as _;
use std::path::Path;
use std::time::Duration;

use countersign_approval::{Event, Grant, Verdict};
use countersign_audit::{EventDraft, verify_with_checkpoints};
use countersign_model::ids::GrantId;
use countersign_store::conformance::{apply, at, checkpoint_key, request, review};
use countersign_store::{Consumed, SqliteStore, Store, StoreError, Updated};
use countersign_test_support::scratch::Scratch;

async fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path, Some(checkpoint_key()))
        .await
        .unwrap()
}

/// An audit event large enough that a few of them need a new page of the database; those written
/// once the disk is full are larger still, so none fits where the first refused one did not.
fn event(tag: &str) -> EventDraft {
    let padding = if tag.starts_with("full") { 1800 } else { 1500 };
    EventDraft::new(
        at(5),
        "action.allowed",
        format!("{tag} {}", "x".repeat(padding)),
    )
}

/// What the store said about each write: acknowledged (must be there after reopening) or not
/// (must not be).
#[derive(Default)]
struct Ledger {
    acknowledged: Vec<String>,
    refused: Vec<String>,
}

impl Ledger {
    async fn append(&mut self, store: &SqliteStore, tag: String) -> Result<(), StoreError> {
        let result = store.append_audit(vec![event(&tag)]).await.map(|_| ());
        match &result {
            Ok(()) => self.acknowledged.push(tag),
            Err(_) => self.refused.push(tag),
        }
        result
    }
}

async fn consume(
    store: &SqliteStore,
    grant: &Grant,
    secs: i64,
) -> Result<(Consumed, Vec<countersign_audit::AuditEvent>), StoreError> {
    store
        .consume_grant(
            grant.claims.grant,
            grant.claims.request,
            grant.claims.digest,
            at(secs),
            vec![EventDraft::new(at(secs), "grant.consumed", "used")],
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failed_commit_no_write_is_acknowledged_until_it_commits_again() {
    let scratch = Scratch::new();
    let path = scratch.database();
    let store = open(&path).await;
    let key = checkpoint_key();

    // An approved request with its grant, and a pending one, from before the disk fills.
    let approved = request(1, "deploy-bot", 0);
    let pending = request(2, "deploy-bot", 0);
    for r in [&approved, &pending] {
        store
            .create_request(
                r,
                vec![EventDraft::new(at(0), "request.created", "created")],
            )
            .await
            .unwrap();
    }
    let Updated::Applied { request: done, .. } = store
        .update_request(
            approved.id,
            apply(Event::Review(review("sam", Verdict::Approve, 1))),
        )
        .await
        .unwrap()
    else {
        panic!("not approved")
    };
    let grant = Grant::issue(
        &done,
        GrantId::from_random([7; 16]),
        at(2),
        Duration::from_secs(3600),
        &key,
    )
    .unwrap();
    store.insert_grant(&grant.claims, vec![]).await.unwrap();
    store.health().await.unwrap();

    // The disk fills: the database cannot grow past its size now.
    store.limit_size(Some(1)).await.unwrap();
    let mut ledger = Ledger::default();
    let mut failures = 0;
    for n in 0..200 {
        if ledger.append(&store, format!("before-{n}")).await.is_err() {
            failures += 1;
            break;
        }
    }
    assert_eq!(failures, 1, "the full database never refused a write");

    // Every later audit event needs room too and is refused, never acknowledged and dropped.
    for n in 0..5 {
        assert!(
            ledger.append(&store, format!("full-{n}")).await.is_err(),
            "an audit event was acknowledged on a full database"
        );
    }
    let unhealthy = store.health().await.unwrap_err();
    assert!(
        unhealthy
            .to_string()
            .starts_with("the store is unavailable"),
        "{unhealthy}"
    );
    // A write the store turns down by itself (a grant it does not know) rolls back: that must not
    // leave a transaction open that later writes would be acknowledged in and lost with.
    assert_eq!(
        store
            .consume_grant(
                GrantId::from_random([9; 16]),
                approved.id,
                approved.digest,
                at(3),
                vec![],
            )
            .await
            .unwrap()
            .0,
        Consumed::Unknown
    );
    // Smaller writes may still fit in the pages there are: whatever is acknowledged must be
    // committed, whatever is refused must not be.
    let other = request(3, "deploy-bot", 0);
    let created = store
        .create_request(&other, vec![EventDraft::new(at(3), "request.created", "c")])
        .await
        .is_ok();
    let reviewed = store
        .update_request(
            pending.id,
            apply(Event::Review(review("sam", Verdict::Deny, 3))),
        )
        .await
        .is_ok();
    let consumed_while_full = matches!(consume(&store, &grant, 4).await, Ok((Consumed::Ok, _)));

    // Room returns: the store recovers by itself, with no restart.
    store.limit_size(None).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.health().await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the store did not recover"
        );
        tokio::task::yield_now().await;
    }
    ledger.append(&store, "after".into()).await.unwrap();
    let consumed_after = consume(&store, &grant, 6).await.unwrap().0;
    if consumed_while_full {
        assert!(matches!(consumed_after, Consumed::AlreadyUsed { .. }));
    } else {
        assert_eq!(consumed_after, Consumed::Ok);
    }
    drop(store);

    // From the file: everything acknowledged, nothing refused, the grant used once.
    let store = open(&path).await;
    let events = store.audit_after(0, 10_000).await.unwrap();
    let logged: Vec<&str> = events
        .iter()
        .map(|e| e.explanation.split(' ').next().unwrap_or_default())
        .collect();
    for tag in &ledger.acknowledged {
        assert!(logged.contains(&tag.as_str()), "acknowledged {tag} is lost");
    }
    for tag in &ledger.refused {
        assert!(!logged.contains(&tag.as_str()), "refused {tag} was written");
    }
    assert_eq!(
        store.get_request(other.id).await.unwrap().is_some(),
        created,
        "the request on a full disk: acknowledged {created}"
    );
    let stored = store.get_request(pending.id).await.unwrap().unwrap();
    assert_eq!(
        stored.reviews.len(),
        usize::from(reviewed),
        "the review on a full disk: acknowledged {reviewed}"
    );
    assert!(matches!(
        consume(&store, &grant, 7).await.unwrap().0,
        Consumed::AlreadyUsed { .. }
    ));
    verify_with_checkpoints(
        &events,
        &store.checkpoints(0, u64::MAX).await.unwrap(),
        &key.public_key(),
    )
    .unwrap();
}

/// Removing `victim` (the database, its `-wal`, or the directory) while the store is open.
async fn removing_stops_every_write(victim: &str) {
    let scratch = Scratch::new();
    let path = scratch.database();
    let store = open(&path).await;
    let r = request(1, "deploy-bot", 0);
    store
        .create_request(
            &r,
            vec![EventDraft::new(at(0), "request.created", "created")],
        )
        .await
        .unwrap();
    store.health().await.unwrap();

    let removed = scratch.0.join(victim);
    if removed == scratch.0 {
        std::fs::remove_dir_all(&removed).unwrap();
    } else {
        std::fs::remove_file(&removed).unwrap();
    }
    let error = store
        .append_audit(vec![event("into the void")])
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("restore the database"),
        "{victim}: {error}"
    );
    // And it stays so: no write, no review, no health.
    assert!(
        store.append_audit(vec![event("again")]).await.is_err(),
        "{victim}"
    );
    assert!(
        store
            .update_request(
                r.id,
                apply(Event::Review(review("sam", Verdict::Approve, 3))),
            )
            .await
            .is_err(),
        "{victim}"
    );
    let unhealthy = store.health().await.unwrap_err();
    assert!(
        unhealthy
            .to_string()
            .contains("while Countersign was running"),
        "{victim}: {unhealthy}"
    );
}

#[tokio::test]
async fn a_deleted_database_stops_every_write() {
    removing_stops_every_write("countersign.db").await;
}

#[tokio::test]
async fn a_deleted_write_ahead_log_stops_every_write() {
    removing_stops_every_write("countersign.db-wal").await;
}

#[tokio::test]
async fn a_deleted_data_directory_stops_every_write() {
    removing_stops_every_write("").await;
}

#[tokio::test]
async fn a_replaced_database_stops_every_write() {
    let scratch = Scratch::new();
    let path = scratch.database();
    let store = open(&path).await;
    store.append_audit(vec![event("first")]).await.unwrap();
    std::fs::rename(&path, scratch.0.join("moved.db")).unwrap();
    std::fs::write(&path, b"").unwrap();
    let error = store.append_audit(vec![event("second")]).await.unwrap_err();
    assert!(error.to_string().contains("was replaced"), "{error}");
}

/// A write whose caller goes away midway (a client that hangs up, a timeout) is dropped wherever
/// it stands: before its commit, during it, after it. The next write must still seal after the
/// head as committed, so the log stays one chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_abandoned_midway_leaves_the_chain_whole() {
    let scratch = Scratch::new();
    let store = open(&scratch.database()).await;
    store.append_audit(vec![event("first")]).await.unwrap();
    for polls in 1..200 {
        let mut write = Box::pin(store.append_audit(vec![event(&format!("abandoned {polls}"))]));
        let mut finished = false;
        for _ in 0..polls {
            let waker = std::task::Waker::noop();
            let mut cx = std::task::Context::from_waker(waker);
            if write.as_mut().poll(&mut cx).is_ready() {
                finished = true;
                break;
            }
            // Let SQLite's worker thread get on with what it was handed.
            std::thread::yield_now();
        }
        drop(write);
        if !finished {
            store
                .append_audit(vec![event(&format!("after {polls}"))])
                .await
                .unwrap();
        }
    }
    let key = checkpoint_key();
    drop(store);
    let store = open(&scratch.database()).await;
    let events = store.audit_after(0, 100_000).await.unwrap();
    verify_with_checkpoints(
        &events,
        &store.checkpoints(0, u64::MAX).await.unwrap(),
        &key.public_key(),
    )
    .unwrap();
}
