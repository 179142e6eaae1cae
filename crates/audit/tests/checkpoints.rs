//! Signed checkpoints: who signed them, and what they catch that the chain alone cannot.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

mod sample_log;

use countersign_audit::{
    AuditEvent, Checkpoint, CheckpointError, VerifyError, genesis_hash, verify_with_checkpoints,
};
use countersign_model::Digest;
use sample_log::{at, audit_key, other_key, rehash, sample_log};

fn checkpoint_at(log: &[AuditEvent], seq: u64) -> Checkpoint {
    let event = &log[usize::try_from(seq - 1).unwrap()];
    Checkpoint::sign(seq, event.hash, at(3600), &audit_key()).unwrap()
}

fn refusal(log: &[AuditEvent], checkpoints: &[Checkpoint]) -> VerifyError {
    verify_with_checkpoints(log, checkpoints, &audit_key().public_key()).unwrap_err()
}

#[test]
fn a_checkpoint_verifies_with_the_key_that_signed_it() {
    let log = sample_log(5);
    let checkpoint = checkpoint_at(&log, 5);
    assert_eq!(checkpoint.key_id, audit_key().public_key().key_id());
    checkpoint
        .verify_signature(&audit_key().public_key())
        .unwrap();
    let summary = verify_with_checkpoints(
        &log,
        &[checkpoint_at(&log, 2), checkpoint],
        &audit_key().public_key(),
    )
    .unwrap();
    assert_eq!((summary.count, summary.last_seq()), (5, 5));
}

#[test]
fn a_checkpoint_signed_by_another_key_is_refused() {
    let log = sample_log(5);
    let foreign = Checkpoint::sign(5, log[4].hash, at(3600), &other_key()).unwrap();
    let error = foreign
        .verify_signature(&audit_key().public_key())
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "the checkpoint at event 5 was signed with key {}, not with the audit key {}",
            other_key().public_key().key_id(),
            audit_key().public_key().key_id()
        )
    );

    // Claiming the audit key's id does not help a signature made with another key.
    let mut disguised = foreign;
    disguised.key_id = audit_key().public_key().key_id();
    let error = refusal(&log, &[disguised]);
    assert_eq!(
        error,
        VerifyError::Checkpoint(CheckpointError::BadSignature { seq: 5 })
    );
    assert_eq!(
        error.to_string(),
        "the checkpoint at event 5 has an invalid signature: it was altered after it was signed, \
         or signed with another key"
    );
}

#[test]
fn an_altered_checkpoint_is_refused() {
    let log = sample_log(5);
    let mut altered = checkpoint_at(&log, 5);
    altered.head_hash = Digest::of(b"the rewritten log");
    assert_eq!(
        altered.verify_signature(&audit_key().public_key()),
        Err(CheckpointError::BadSignature { seq: 5 })
    );
    let mut garbled = checkpoint_at(&log, 5);
    garbled.signature = "not a signature".into();
    assert_eq!(refusal(&log, &[garbled]).seq(), 5);
}

#[test]
fn a_rehashed_last_event_is_caught_by_the_checkpoint() {
    let mut log = sample_log(5);
    let checkpoint = checkpoint_at(&log, 5);
    log[4].explanation = "pg_dump was never run".into();
    rehash(&mut log[4]);
    let error = refusal(&log, &[checkpoint]);
    assert_eq!(error.seq(), 5);
    assert_eq!(
        error.to_string(),
        "the checkpoint at event 5 does not match the log: the log was rewritten after it was signed"
    );
}

#[test]
fn a_rewritten_log_is_caught_at_the_earliest_checkpoint() {
    let mut log = sample_log(6);
    let checkpoints = [checkpoint_at(&log, 3), checkpoint_at(&log, 6)];
    // Re-hash and re-link everything from event 2 on, so the chain itself is flawless.
    log[1].explanation = "alice denied".into();
    for i in 1..log.len() {
        if i > 1 {
            log[i].prev_hash = log[i - 1].hash;
        }
        rehash(&mut log[i]);
    }
    assert!(countersign_audit::verify(&log, None).is_ok());
    assert_eq!(
        refusal(&log, &checkpoints),
        VerifyError::Checkpoint(CheckpointError::Mismatch { seq: 3 })
    );
}

#[test]
fn a_checkpoint_before_a_break_is_checked_first() {
    let mut log = sample_log(6);
    let checkpoint = checkpoint_at(&log, 2);
    log[1].principal = Some("mallory".into());
    rehash(&mut log[1]);
    // Event 3 no longer links, but event 2 already contradicts the checkpoint.
    assert_eq!(
        refusal(&log, &[checkpoint]).to_string(),
        "the checkpoint at event 2 does not match the log: the log was rewritten after it was signed"
    );

    let mut log = sample_log(6);
    let checkpoint = checkpoint_at(&log, 2);
    log.remove(3);
    assert_eq!(
        refusal(&log, &[checkpoint]).to_string(),
        "event 4 is missing: event 3 is followed by event 5"
    );
}

#[test]
fn events_cut_from_the_end_are_caught() {
    let mut log = sample_log(5);
    let checkpoint = checkpoint_at(&log, 5);
    log.truncate(3);
    let error = refusal(&log, std::slice::from_ref(&checkpoint));
    assert_eq!(
        error,
        VerifyError::Checkpoint(CheckpointError::BeyondEnd { seq: 5, last: 3 })
    );
    assert_eq!(
        error.to_string(),
        "the log ends at event 3 but a checkpoint signed event 5: events were removed from the end"
    );
    assert_eq!(
        refusal(&[], &[checkpoint]).to_string(),
        "the audit log holds no events but a checkpoint signed event 5: events were removed from \
         the end"
    );
}

#[test]
fn a_checkpoint_of_the_empty_log_signs_the_genesis_hash() {
    let empty = Checkpoint::sign(0, genesis_hash(), at(0), &audit_key()).unwrap();
    let log = sample_log(2);
    verify_with_checkpoints(
        &log,
        std::slice::from_ref(&empty),
        &audit_key().public_key(),
    )
    .unwrap();
    verify_with_checkpoints(&[], &[empty], &audit_key().public_key()).unwrap();
    let wrong = Checkpoint::sign(0, log[0].hash, at(0), &audit_key()).unwrap();
    assert_eq!(refusal(&log, &[wrong]).seq(), 0);
}

#[test]
fn event_numbers_beyond_two_to_the_53_cannot_be_signed() {
    let error = Checkpoint::sign((1 << 53) + 1, genesis_hash(), at(0), &audit_key()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "a checkpoint cannot sign event 9007199254740993: event numbers cannot go beyond 2^53"
    );
}
