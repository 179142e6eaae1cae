//! Offline verification of an audit export built here with the audit crate: intact, edited,
//! signed with another key, unreadable; and reading the key.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

use countersign_audit::{AuditEvent, Checkpoint, EventDraft, render_export, seal};
use countersign_client::AuditVerification;
use countersign_model::{SecretKey, Timestamp};

use super::{describe, read_key, verify_offline};

fn key() -> SecretKey {
    SecretKey::from_seed([42; 32])
}

/// Three events and a checkpoint on the last, as the broker would export them.
fn export() -> (String, Vec<AuditEvent>) {
    let mut events: Vec<AuditEvent> = Vec::new();
    for (i, kind) in ["request.created", "review.recorded", "grant.consumed"]
        .into_iter()
        .enumerate()
    {
        let draft = EventDraft::new(
            Timestamp::from_unix_millis(1_000 * i as i64),
            kind,
            format!("step {i}"),
        )
        .with_principal("deploy-bot");
        events.push(seal(draft, events.last().map(AuditEvent::head)).unwrap());
    }
    let last = events.last().unwrap();
    let checkpoint = Checkpoint::sign(
        last.seq,
        last.hash,
        Timestamp::from_unix_millis(5_000),
        &key(),
    )
    .unwrap();
    (render_export(&events, &[checkpoint]).unwrap(), events)
}

#[test]
fn an_intact_export_verifies_and_names_its_head() {
    let (text, events) = export();
    let verification = verify_offline(&text, &key().public_key());
    assert!(verification.is_intact(), "{verification:?}");
    assert_eq!(
        describe(&verification),
        format!("ok: 3 events, head {}", events[2].hash)
    );
}

#[test]
fn an_edited_event_is_named() {
    let (text, _) = export();
    let edited = text.replacen("step 1", "step one", 1);
    let verification = verify_offline(&edited, &key().public_key());
    assert_eq!(
        verification,
        AuditVerification::Broken {
            error: "event 2 was changed after it was written".into(),
            seq: Some(2)
        }
    );
}

#[test]
fn a_cut_end_is_caught_by_the_checkpoint() {
    let (text, _) = export();
    let lines: Vec<&str> = text.lines().collect();
    // Drop event 3 but keep the checkpoint that signed it.
    let cut = format!("{}\n{}\n{}\n", lines[0], lines[1], lines[3]);
    let verification = verify_offline(&cut, &key().public_key());
    assert!(
        describe(&verification).contains("events were removed from the end"),
        "{verification:?}"
    );
}

#[test]
fn another_key_does_not_verify() {
    let (text, _) = export();
    let other = SecretKey::from_seed([1; 32]).public_key();
    let verification = verify_offline(&text, &other);
    assert!(!verification.is_intact());
    assert!(
        describe(&verification).contains("not with the audit key"),
        "{verification:?}"
    );
}

#[test]
fn an_unreadable_export_is_broken_with_the_line() {
    let verification = verify_offline("{\"event\": 1}\n", &key().public_key());
    let text = describe(&verification);
    assert!(
        text.starts_with("the export is not valid: line 1 of the audit export"),
        "{text}"
    );
}

#[test]
fn the_key_is_given_inline_or_from_a_file() {
    let public = key().public_key();
    assert_eq!(read_key(&public.to_string()).unwrap(), public);
    let path = std::env::temp_dir().join(format!("countersign-key-test-{}", std::process::id()));
    std::fs::write(&path, format!("{public}\n")).unwrap();
    assert_eq!(read_key(&format!("@{}", path.display())).unwrap(), public);
    std::fs::remove_file(&path).unwrap();

    let error = format!("{:#}", read_key("ed25519:nope").unwrap_err());
    assert!(
        error.starts_with("--key is not the broker's public key: 'ed25519:nope'"),
        "{error}"
    );
    let error = format!("{:#}", read_key("@/nonexistent/key").unwrap_err());
    assert!(
        error.starts_with("cannot read the public key file /nonexistent/key"),
        "{error}"
    );
}
