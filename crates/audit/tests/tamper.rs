//! Property: any single edit to an audit log is detected, and reported at the first broken event.
//!
//! Each case seals a log of 2 to 40 events, signs a checkpoint over its head, applies one
//! tampering, and checks that verification refuses the result, naming the event a careful reader
//! would name. Appending a correctly linked event after the last one is not tampering (it is how
//! the log grows), so forged insertions at the very end always carry a wrong link.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

mod sample_log;

use countersign_audit::{
    AuditEvent, BreakKind, ChainHead, Checkpoint, CheckpointError, EventDraft, VerifyError,
    genesis_hash, seal, verify_with_checkpoints,
};
use countersign_model::{Digest, RequestId};
use proptest::prelude::*;
use proptest::sample::Index;
use sample_log::{any_log, at, audit_key, event_draft, other_key, rehash};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Field {
    Kind,
    Principal,
    RequestId,
    Data,
    Explanation,
    Time,
    Seq,
    PrevHash,
    Hash,
}

#[derive(Debug, Clone)]
enum Tampering {
    /// Changes one field; with `rehash`, the attacker also recomputes the event's hash.
    Edit {
        at: Index,
        field: Field,
        rehash: bool,
        seq_delta: i8,
    },
    Delete {
        at: Index,
    },
    Swap {
        a: Index,
        b: Index,
    },
    /// Inserts an event sealed on its own. With `plausible` (and not at the end), it carries the
    /// sequence number and previous hash of the place it goes; otherwise a wrong previous hash.
    Insert {
        at: Index,
        forged: EventDraft,
        plausible: bool,
    },
    Duplicate {
        at: Index,
    },
}

fn field() -> impl Strategy<Value = Field> {
    prop::sample::select(vec![
        Field::Kind,
        Field::Principal,
        Field::RequestId,
        Field::Data,
        Field::Explanation,
        Field::Time,
        Field::Seq,
        Field::PrevHash,
        Field::Hash,
    ])
}

fn tampering() -> impl Strategy<Value = Tampering> {
    let seq_delta = prop_oneof![Just(-1i8), 1i8..=5];
    prop_oneof![
        (any::<Index>(), field(), any::<bool>(), seq_delta).prop_map(
            |(at, field, rehash, seq_delta)| Tampering::Edit {
                at,
                field,
                rehash,
                seq_delta
            }
        ),
        any::<Index>().prop_map(|at| Tampering::Delete { at }),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Tampering::Swap { a, b }),
        (any::<Index>(), event_draft(), any::<bool>()).prop_map(|(at, forged, plausible)| {
            Tampering::Insert {
                at,
                forged,
                plausible,
            }
        }),
        any::<Index>().prop_map(|at| Tampering::Duplicate { at }),
    ]
}

/// Where verification must stop.
#[derive(Debug, PartialEq)]
enum Expected {
    /// A chain break at this position of the tampered log, about this sequence number.
    Break {
        position: usize,
        seq: u64,
        kind: Option<BreakKind>,
    },
    /// The checkpoint over the original head exposes it.
    Checkpoint(CheckpointError),
}

fn chain_break(position: usize, kind: Option<BreakKind>) -> Expected {
    // Events before `position` are untouched, so the first untrusted number is `position + 1`.
    Expected::Break {
        position,
        seq: position as u64 + 1,
        kind,
    }
}

fn edit(event: &mut AuditEvent, field: Field, seq_delta: i8) {
    match field {
        Field::Kind => event.kind.push_str(".forged"),
        Field::Principal => {
            event.principal = match event.principal.take() {
                None => Some("mallory".into()),
                Some(_) => None,
            }
        }
        Field::RequestId => {
            event.request_id = match event.request_id {
                None => Some(RequestId::from_random([0x66; 16])),
                Some(_) => None,
            }
        }
        Field::Data => {
            if let Some(object) = event.data.as_object_mut() {
                object.insert("tampered".into(), true.into());
            }
        }
        Field::Explanation => event.explanation.push_str(" (edited)"),
        Field::Time => event.time = at(-1),
        Field::Seq => event.seq = event.seq.saturating_add_signed(i64::from(seq_delta)),
        Field::PrevHash => event.prev_hash = Digest::of(b"another past"),
        Field::Hash => event.hash = Digest::of(b"any hash"),
    }
}

/// Applies `tampering` to `log`, and says where verification must stop.
fn tamper(log: &mut Vec<AuditEvent>, tampering: Tampering) -> Expected {
    let n = log.len();
    match tampering {
        Tampering::Edit {
            at,
            field,
            rehash: recompute,
            seq_delta,
        } => {
            let i = at.index(n);
            edit(&mut log[i], field, seq_delta);
            // Recomputing a hash after editing the hash itself would undo the edit.
            let recompute = recompute && field != Field::Hash;
            if recompute {
                rehash(&mut log[i]);
            }
            match field {
                Field::Seq => chain_break(i, None),
                Field::PrevHash if recompute => chain_break(i, Some(BreakKind::Unlinked)),
                _ if !recompute => chain_break(i, Some(BreakKind::Edited)),
                // A consistent event in place of the original: the next one no longer links.
                _ if i + 1 < n => chain_break(i + 1, Some(BreakKind::Unlinked)),
                _ => Expected::Checkpoint(CheckpointError::Mismatch { seq: n as u64 }),
            }
        }
        Tampering::Delete { at } => {
            let i = at.index(n);
            log.remove(i);
            match i {
                0 => chain_break(0, Some(BreakKind::BadStart)),
                i if i + 1 == n => Expected::Checkpoint(CheckpointError::BeyondEnd {
                    seq: n as u64,
                    last: n as u64 - 1,
                }),
                i => chain_break(i, Some(BreakKind::Missing)),
            }
        }
        Tampering::Swap { a, b } => {
            let i = a.index(n - 1);
            let j = i + 1 + b.index(n - 1 - i);
            log.swap(i, j);
            let kind = if i == 0 {
                BreakKind::BadStart
            } else {
                BreakKind::OutOfOrder
            };
            chain_break(i, Some(kind))
        }
        Tampering::Insert {
            at,
            forged,
            plausible,
        } => {
            let i = at.index(n + 1);
            // A plausible event at the very end would be a legitimate append.
            let plausible = plausible && i < n;
            let prev = match (plausible, i) {
                (true, 0) => None,
                (true, i) => Some(log[i - 1].head()),
                (false, i) => Some(ChainHead {
                    seq: i as u64,
                    hash: Digest::of(b"a forged past"),
                }),
            };
            log.insert(i, seal(forged, prev).unwrap());
            if plausible && i + 1 == n {
                // The forgery now holds the number the checkpoint signed, and comes first.
                Expected::Checkpoint(CheckpointError::Mismatch { seq: n as u64 })
            } else if plausible {
                // The forgery passes; the original event it displaced now repeats its number.
                chain_break(i + 1, Some(BreakKind::Duplicated))
            } else {
                chain_break(i, Some(BreakKind::Unlinked))
            }
        }
        Tampering::Duplicate { at } => {
            let i = at.index(n);
            log.insert(i + 1, log[i].clone());
            chain_break(i + 1, Some(BreakKind::Duplicated))
        }
    }
}

proptest! {
    #[test]
    fn any_single_edit_to_an_audit_chain_is_detected(log in any_log(), tampering in tampering()) {
        let key = audit_key().public_key();
        let head = log[log.len() - 1].head();
        let checkpoint = Checkpoint::sign(head.seq, head.hash, at(7200), &audit_key()).unwrap();
        let checkpoints = [checkpoint];
        prop_assert!(verify_with_checkpoints(&log, &checkpoints, &key).is_ok());

        let mut tampered = log.clone();
        let expected = tamper(&mut tampered, tampering);
        let error = verify_with_checkpoints(&tampered, &checkpoints, &key);
        let error = match error {
            Ok(summary) => return Err(TestCaseError::fail(format!("not detected: {summary:?}"))),
            Err(error) => error,
        };
        match (expected, &error) {
            (Expected::Break { position, seq, kind }, VerifyError::Chain(broken)) => {
                prop_assert_eq!((broken.position, broken.seq), (position, seq), "{}", error);
                if let Some(kind) = kind {
                    prop_assert_eq!(broken.kind, kind, "{}", error);
                }
                if kind == Some(BreakKind::Edited) {
                    prop_assert_eq!(broken.found, seq);
                }
            }
            (Expected::Checkpoint(expected), VerifyError::Checkpoint(found)) => {
                prop_assert_eq!(found, &expected);
            }
            (expected, _) => {
                return Err(TestCaseError::fail(format!("expected {expected:?}, got: {error}")));
            }
        }
    }

    #[test]
    fn a_checkpoint_signed_by_another_key_is_refused(log in any_log()) {
        let head = log[log.len() - 1].head();
        let foreign = Checkpoint::sign(head.seq, head.hash, at(7200), &other_key()).unwrap();
        let error = verify_with_checkpoints(&log, &[foreign], &audit_key().public_key());
        let refused_for_its_key = matches!(
            error,
            Err(VerifyError::Checkpoint(CheckpointError::WrongKey { seq, .. })) if seq == head.seq
        );
        prop_assert!(refused_for_its_key);
    }

    #[test]
    fn an_untouched_log_verifies(log in any_log()) {
        let head = log[log.len() - 1].head();
        let checkpoint = Checkpoint::sign(head.seq, head.hash, at(7200), &audit_key()).unwrap();
        let summary = verify_with_checkpoints(&log, &[checkpoint], &audit_key().public_key());
        prop_assert_eq!(summary.map(|s| (s.count, s.head)), Ok((log.len(), Some(head))));
        prop_assert_eq!(log[0].prev_hash, genesis_hash());
    }
}
