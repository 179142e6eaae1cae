//! Sealing events into a chain, and each way a chain can break, with the sentence it reports.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

mod sample_log;

use countersign_audit::{
    AuditEvent, BreakKind, ChainBreak, ChainHead, EventDraft, SealError, genesis_hash, seal, verify,
};
use countersign_model::{Digest, RequestId};
use sample_log::{at, rehash, sample_log};
use serde_json::json;

/// Verifies `events` from the start of the log and returns the break it must report.
fn first_break(events: &[AuditEvent]) -> ChainBreak {
    verify(events, None).unwrap_err()
}

fn check(events: &[AuditEvent], kind: BreakKind, seq: u64, sentence: &str) {
    let broken = first_break(events);
    assert_eq!((broken.kind, broken.seq), (kind, seq), "{broken}");
    assert_eq!(broken.to_string(), sentence);
}

#[test]
fn sealed_events_chain_from_genesis() {
    let log = sample_log(5);
    assert_eq!(log[0].seq, 1);
    assert_eq!(log[0].prev_hash, genesis_hash());
    assert_eq!(
        genesis_hash().to_string(),
        format!("sha256:{}", "0".repeat(64))
    );
    for pair in log.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq + 1);
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
    let summary = verify(&log, None).unwrap();
    assert_eq!(summary.count, 5);
    assert_eq!(summary.head, Some(log[4].head()));
    assert_eq!(summary.last_seq(), 5);
}

#[test]
fn the_hash_covers_every_field_but_itself_in_canonical_json() {
    let draft = EventDraft::new(
        at(0),
        "request.created",
        "deploy-bot asked to dump the table",
    )
    .with_principal("deploy-bot")
    .with_request_id(RequestId::from_random([0xab; 16]))
    .with_data(json!({ "b": [1, 2.5, "x"], "a": null }));
    let event = seal(draft, None).unwrap();
    let preimage = concat!(
        r#"{"data":{"a":null,"b":[1,2.5,"x"]},"#,
        r#""explanation":"deploy-bot asked to dump the table","#,
        r#""prev_hash":"sha256:0000000000000000000000000000000000000000000000000000000000000000","#,
        r#""principal":"deploy-bot","request_id":"r_abababababababababababababababab","#,
        r#""seq":1,"time":"2026-11-21T16:08:00.000Z","type":"request.created"}"#,
    );
    assert_eq!(event.hash, Digest::of(preimage.as_bytes()));

    let bare = seal(EventDraft::new(at(0), "policy.reloaded", "reloaded"), None).unwrap();
    let preimage = concat!(
        r#"{"data":{},"explanation":"reloaded","#,
        r#""prev_hash":"sha256:0000000000000000000000000000000000000000000000000000000000000000","#,
        r#""principal":null,"request_id":null,"#,
        r#""seq":1,"time":"2026-11-21T16:08:00.000Z","type":"policy.reloaded"}"#,
    );
    assert_eq!(bare.hash, Digest::of(preimage.as_bytes()));
}

#[test]
fn sealing_refuses_data_that_cannot_be_hashed() {
    let not_object = EventDraft::new(at(0), "request.created", "x").with_data(json!([1, 2]));
    assert_eq!(
        seal(not_object, None).unwrap_err().to_string(),
        "the data of an audit event of type 'request.created' must be a JSON object, not an array"
    );
    let huge = EventDraft::new(at(0), "action.outcome", "x")
        .with_data(json!({ "rows": 9_007_199_254_740_993u64 }));
    let error = seal(huge, None).unwrap_err();
    assert!(matches!(error, SealError::DataNotCanonical { .. }));
    assert_eq!(
        error.to_string(),
        "the data of an audit event of type 'action.outcome' cannot be hashed: the number \
         9007199254740993 is too large to be represented exactly in JSON (limit ±2^53); \
         send it as a string"
    );
    let full = ChainHead {
        seq: 1 << 53,
        hash: genesis_hash(),
    };
    let draft = EventDraft::new(at(0), "policy.reloaded", "x");
    assert_eq!(seal(draft, Some(full)), Err(SealError::LogFull));
}

#[test]
fn an_edited_event_is_named() {
    let mut log = sample_log(5);
    log[2].explanation = "nobody approved anything".into();
    check(
        &log,
        BreakKind::Edited,
        3,
        "event 3 was changed after it was written",
    );

    let mut log = sample_log(5);
    log[4].hash = Digest::of(b"forged");
    check(
        &log,
        BreakKind::Edited,
        5,
        "event 5 was changed after it was written",
    );

    // Countersign never writes data it cannot hash, so such data was put there later.
    let mut log = sample_log(5);
    log[1].data = json!({ "rows": 9_007_199_254_740_993u64 });
    check(
        &log,
        BreakKind::Edited,
        2,
        "event 2 was changed after it was written",
    );
}

#[test]
fn a_deleted_event_is_named() {
    let mut log = sample_log(5);
    log.remove(2);
    check(
        &log,
        BreakKind::Missing,
        3,
        "event 3 is missing: event 2 is followed by event 4",
    );
}

#[test]
fn reordered_events_are_named() {
    let mut log = sample_log(5);
    log.swap(2, 3);
    check(
        &log,
        BreakKind::OutOfOrder,
        3,
        "events are out of order: event 2 is followed by event 4, and event 3 comes later",
    );

    let mut log = sample_log(3);
    log.push(log[0].clone());
    check(
        &log,
        BreakKind::OutOfOrder,
        4,
        "events are out of order: event 3 is followed by event 1",
    );
}

#[test]
fn a_duplicated_event_is_named() {
    let mut log = sample_log(5);
    log.insert(2, log[1].clone());
    let broken = first_break(&log);
    assert_eq!(broken.position, 2);
    check(
        &log,
        BreakKind::Duplicated,
        3,
        "event 2 appears twice: an event was duplicated or replayed",
    );
}

#[test]
fn an_inserted_or_replaced_event_is_named() {
    let mut log = sample_log(5);
    log[2].prev_hash = Digest::of(b"somewhere else");
    rehash(&mut log[2]);
    check(
        &log,
        BreakKind::Unlinked,
        3,
        "event 3 does not link to event 2: an event was inserted or replaced",
    );

    // Replacing event 3 with a well-formed event linked to event 2 breaks the link to event 4.
    let mut log = sample_log(5);
    log[2].explanation = "a quieter story".into();
    rehash(&mut log[2]);
    check(
        &log,
        BreakKind::Unlinked,
        4,
        "event 4 does not link to event 3: an event was inserted or replaced",
    );

    let mut log = sample_log(3);
    log[0].prev_hash = Digest::of(b"an older log");
    rehash(&mut log[0]);
    check(
        &log,
        BreakKind::Unlinked,
        1,
        "event 1 does not link to the start of the audit log: an event was inserted or replaced",
    );
}

#[test]
fn a_log_must_start_at_event_1() {
    let log = sample_log(5);
    check(
        &log[2..],
        BreakKind::BadStart,
        1,
        "the audit log does not start at event 1: its first event is event 3",
    );
}

#[test]
fn a_slice_verifies_after_the_head_before_it() {
    let log = sample_log(6);
    let summary = verify(&log[3..], Some(log[2].head())).unwrap();
    assert_eq!(summary.count, 3);
    assert_eq!(summary.head, Some(log[5].head()));

    let nothing_new = verify(&[], Some(log[5].head())).unwrap();
    assert_eq!(
        (nothing_new.count, nothing_new.head),
        (0, Some(log[5].head()))
    );
    assert_eq!(verify(&[], None).unwrap().last_seq(), 0);

    let wrong_head = ChainHead {
        seq: 3,
        hash: Digest::of(b"not event 3"),
    };
    let broken = verify(&log[3..], Some(wrong_head)).unwrap_err();
    assert_eq!(
        broken.to_string(),
        "event 4 does not link to event 3: an event was inserted or replaced"
    );
    let broken = verify(&log[4..], Some(log[2].head())).unwrap_err();
    assert_eq!(
        broken.to_string(),
        "event 4 is missing: event 3 is followed by event 5"
    );
}

#[test]
fn a_linked_append_is_not_tampering() {
    let mut log = sample_log(4);
    let appended = seal(
        EventDraft::new(at(60), "action.outcome", "kubectl exited with status 0"),
        Some(log[3].head()),
    )
    .unwrap();
    log.push(appended);
    assert_eq!(verify(&log, None).unwrap().last_seq(), 5);
}
