//! The SQLite backend: the conformance suite, and what survives closing and reopening the file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

use countersign_audit::{EventDraft, verify_with_checkpoints};
use countersign_store::conformance::{self, apply, at, checkpoint_key, request, review};
use countersign_store::{SqliteStore, Store, Updated};
use countersign_test_support::scratch::Scratch;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_passes_the_conformance_suite() {
    let scratch = Scratch::named("store");
    conformance::run_all(|| async {
        SqliteStore::open(&scratch.unique("countersign.db"), Some(checkpoint_key()))
            .await
            .unwrap()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_acknowledged_is_there_after_reopening() {
    let scratch = Scratch::named("store");
    let path = scratch.unique("countersign.db");
    let r = request(1, "deploy-bot", 0);
    {
        let store = SqliteStore::open(&path, Some(checkpoint_key()))
            .await
            .unwrap();
        store
            .create_request(
                &r,
                vec![EventDraft::new(at(0), "request.created", "created")],
            )
            .await
            .unwrap();
    }
    let store = SqliteStore::open(&path, Some(checkpoint_key()))
        .await
        .unwrap();
    assert_eq!(store.get_request(r.id).await.unwrap(), Some(r.clone()));
    // The chain continues from the stored head, and still verifies.
    let updated = store
        .update_request(
            r.id,
            apply(countersign_approval::Event::Review(review(
                "sam",
                countersign_approval::Verdict::Approve,
                3,
            ))),
        )
        .await
        .unwrap();
    assert!(matches!(updated, Updated::Applied { .. }));
    let events = store.audit_after(0, 10).await.unwrap();
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
    verify_with_checkpoints(
        &events,
        &store.checkpoints(0, u64::MAX).await.unwrap(),
        &checkpoint_key().public_key(),
    )
    .unwrap();
}

#[tokio::test]
async fn an_unwritable_location_is_reported_as_unavailable() {
    let error = SqliteStore::open(std::path::Path::new("/proc/countersign/nope.db"), None)
        .await
        .unwrap_err();
    assert!(
        error.to_string().starts_with("the store is unavailable"),
        "{error}"
    );
}
