//! Sample audit logs for the tests to verify and tamper with: fixed ones and proptest strategies.

// Each test file uses a different part of this module.
#![allow(dead_code)]

use countersign_audit::{AuditEvent, ChainHead, EventDraft, seal};
use countersign_model::{RequestId, SecretKey, Timestamp};
use proptest::prelude::*;
use serde_json::{Value, json};

/// The key that signs the sample checkpoints.
pub fn audit_key() -> SecretKey {
    SecretKey::from_seed([7; 32])
}

pub fn other_key() -> SecretKey {
    SecretKey::from_seed([8; 32])
}

/// 2026-11-21T16:08:00.000Z plus `seconds`.
pub fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_millis(1_795_277_280_000 + seconds * 1000)
}

/// Seals `drafts` into a log starting at event 1.
pub fn seal_all(drafts: Vec<EventDraft>) -> Vec<AuditEvent> {
    let mut head: Option<ChainHead> = None;
    drafts
        .into_iter()
        .map(|draft| {
            let event = seal(draft, head).unwrap();
            head = Some(event.head());
            event
        })
        .collect()
}

/// A log of `n` events telling the story of one approved database dump.
pub fn sample_log(n: usize) -> Vec<AuditEvent> {
    let request = RequestId::from_random([0x8f; 16]);
    let story = [
        (
            "request.created",
            "deploy-bot",
            "deploy-bot asked to dump db:prod/customers",
        ),
        (
            "review.recorded",
            "alice",
            "alice approved: quarterly export",
        ),
        ("review.recorded", "bob", "bob approved"),
        (
            "grant.consumed",
            "deploy-bot",
            "the grant was used once, by deploy-bot",
        ),
        (
            "action.outcome",
            "deploy-bot",
            "pg_dump exited with status 0",
        ),
    ];
    let drafts = (0..n)
        .map(|i| {
            let (kind, principal, explanation) = story[i % story.len()];
            EventDraft::new(at(i as i64), kind, explanation)
                .with_principal(principal)
                .with_request_id(request)
                .with_data(json!({ "step": i, "resource": "db:prod/customers" }))
        })
        .collect();
    seal_all(drafts)
}

/// Gives `event` the hash its contents call for, as an attacker who edits a log would.
pub fn rehash(event: &mut AuditEvent) {
    event.hash = event.content_hash().unwrap();
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-(1i64 << 53)..=(1i64 << 53)).prop_map(Value::from),
        (-1e9f64..1e9).prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
    ]
}

/// Event data: an object whose values may nest, with keys never named `tampered`.
pub fn event_data() -> impl Strategy<Value = Value> {
    let value = json_leaf().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,6}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    });
    prop::collection::btree_map("[a-z_]{1,8}", value, 0..5)
        .prop_map(|map| Value::Object(map.into_iter().filter(|(k, _)| k != "tampered").collect()))
}

pub fn event_draft() -> impl Strategy<Value = EventDraft> {
    let kind = prop::sample::select(vec![
        "request.created",
        "review.recorded",
        "grant.consumed",
        "action.outcome",
        "policy.reloaded",
    ]);
    let principal = prop::option::of(prop::sample::select(vec!["deploy-bot", "alice", "ci-42"]));
    let request_id = prop::option::of(any::<[u8; 16]>().prop_map(RequestId::from_random));
    (
        0i64..100_000_000,
        kind,
        principal,
        request_id,
        event_data(),
        "\\PC{0,40}",
    )
        .prop_map(
            |(seconds, kind, principal, request_id, data, explanation)| EventDraft {
                time: at(seconds),
                kind: kind.to_owned(),
                principal: principal.map(str::to_owned),
                request_id,
                data,
                explanation,
            },
        )
}

/// A log of 2 to 40 events with varied contents.
pub fn any_log() -> impl Strategy<Value = Vec<AuditEvent>> {
    prop::collection::vec(event_draft(), 2..=40).prop_map(seal_all)
}
