//! The SQLite backend: the conformance suite, and what survives closing and reopening the file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

use countersign_audit::{EventDraft, verify_with_checkpoints};
use countersign_store::conformance::{self, apply, at, checkpoint_key, request, review};
use countersign_store::{RequestFilter, SqliteStore, Store, Updated};
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

/// A database written before deliveries were generic keeps where its Slack messages are: each
/// row of the old `messages` table becomes a delivery, its channel id and `ts` the reference.
#[tokio::test]
async fn slack_messages_of_an_older_database_carry_over_as_deliveries() {
    use sqlx::ConnectOptions as _;

    let scratch = Scratch::new();
    let path = scratch.database();
    let every = sqlx::migrate::Migrator::new(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/migrations/sqlite"
    )))
    .await
    .unwrap();
    let before = sqlx::migrate::Migrator::with_migrations(
        every.iter().filter(|m| m.version < 7).cloned().collect(),
    );
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .foreign_keys(true)
        .connect()
        .await
        .unwrap();
    before.run(&mut conn).await.unwrap();
    let r = request(1, "deploy-bot", 0);
    sqlx::query("INSERT INTO requests (id, state, requester, created_at, expires_at, body) VALUES (?, 'pending', 'deploy-bot', 0, 1, ?)")
        .bind(r.id.to_string())
        .bind(serde_json::to_string(&r).unwrap())
        .execute(&mut conn)
        .await
        .unwrap();
    for (target, channel, settled) in [
        ("#dba-approvals", "C0DBA", true),
        ("#approvals", "C0ALL", false),
    ] {
        sqlx::query("INSERT INTO messages (request_id, service, target, channel, ts, settled) VALUES (?, 'slack', ?, ?, '1700000000.000100', ?)")
            .bind(r.id.to_string())
            .bind(target)
            .bind(channel)
            .bind(settled)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    drop(conn);

    let store = SqliteStore::open(&path, Some(checkpoint_key()))
        .await
        .unwrap();
    let delivered = store.deliveries(r.id).await.unwrap();
    let seen: Vec<(&str, &str, &str, bool)> = delivered
        .iter()
        .map(|d| {
            (
                d.channel.as_str(),
                d.address.as_str(),
                d.reference.as_str(),
                d.settled,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("slack", "#approvals", "C0ALL 1700000000.000100", false),
            ("slack", "#dba-approvals", "C0DBA 1700000000.000100", true),
        ]
    );
    assert_eq!(
        store.unsettled_deliveries("slack").await.unwrap(),
        vec![r.id]
    );
}

/// A list of requests reads through the index of the filter it sets, newest first, and stops at
/// its limit: none reads the history it does not show, however long that is. (Written as
/// `(? IS NULL OR state = ?)`, the pending list read every request ever made.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_list_of_requests_reads_the_whole_history() {
    let scratch = Scratch::named("store");
    let store = SqliteStore::open(&scratch.unique("countersign.db"), Some(checkpoint_key()))
        .await
        .unwrap();
    for n in 0..20u8 {
        let r = request(
            n,
            if n % 2 == 0 {
                "deploy-bot"
            } else {
                "nightly-bot"
            },
            i64::from(n),
        );
        store
            .create_request(
                &r,
                vec![EventDraft::new(
                    at(i64::from(n)),
                    "request.created",
                    "created",
                )],
            )
            .await
            .unwrap();
    }
    let some = |state: Option<&str>, requester: Option<&str>| RequestFilter {
        state: state.map(str::to_owned),
        requester: requester.map(str::to_owned),
        limit: 50,
        ..RequestFilter::default()
    };
    for (filter, index) in [
        (some(None, None), "requests_by_created"),
        (some(Some("pending"), None), "requests_by_state"),
        (some(None, Some("deploy-bot")), "requests_by_requester"),
        (some(Some("pending"), Some("deploy-bot")), "requests_by_"),
    ] {
        let plan = store.list_plan(&filter).await.unwrap();
        assert!(
            plan.iter().any(|step| step.contains(index)),
            "{filter:?} does not use {index}: {plan:?}"
        );
        assert!(
            !plan
                .iter()
                .any(|step| step == "SCAN requests" || step.contains("TEMP B-TREE")),
            "{filter:?} reads or sorts the whole history: {plan:?}"
        );
        // And the answer is what the filter asks for.
        let listed = store.list_requests(&filter).await.unwrap();
        assert!(
            listed
                .windows(2)
                .all(|w| w[0].created_at >= w[1].created_at)
        );
        assert!(listed.iter().all(|r| {
            filter
                .requester
                .as_ref()
                .is_none_or(|who| &r.action.principal.id == who)
        }));
    }
}
