//! The storage conformance suite: what every backend must do, run by each backend's own tests
//! (`run_all(|| async { fresh store })`). It is test code shipped in the library so that every
//! backend, present and future, is held to the same behaviour.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures must be loud.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use countersign_approval::{
    Authentication, Channel, Event, Grant, Refusal, Request, Review, Reviewer, State, Verdict,
};
use countersign_audit::{EventDraft, verify, verify_with_checkpoints};
use countersign_model::ids::GrantId;
use countersign_model::{Action, Chain, PrincipalKind, RequestId, SecretKey, Timestamp};
use countersign_policy::{Decision, Outcome, Requirement};
use serde_json::json;

use crate::{Consumed, GrantStatus, Reported, RequestFilter, Store, Update, Updated};

/// The key the suite's stores must sign checkpoints with.
pub fn checkpoint_key() -> SecretKey {
    SecretKey::from_seed([42; 32])
}

/// Runs every scenario, each on a fresh store from `fresh`.
pub async fn run_all<S, F, Fut>(fresh: F)
where
    S: Store,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    requests_round_trip(fresh().await).await;
    transitions_apply_atomically_or_not_at_all(fresh().await).await;
    concurrent_reviews_are_all_applied_in_turn(Arc::new(fresh().await)).await;
    listing_filters_and_orders(fresh().await).await;
    deadlines(fresh().await).await;
    grants_are_consumed_once_per_request(fresh().await).await;
    an_approval_writes_its_grant_in_the_same_transaction(fresh().await).await;
    the_audit_log_chains_and_is_checkpointed(fresh().await).await;
    deliveries_are_kept_until_settled(fresh().await).await;
    reported_events_are_appended_once(fresh().await).await;
    reported_event_ids_are_each_reporters_own(fresh().await).await;
    follow_ups_are_appended_only_with_their_event(fresh().await).await;
    a_working_store_says_it_can_commit(fresh().await).await;
}

/// `health` is what `/healthz` reports: a store that commits says so, before and after writing.
async fn a_working_store_says_it_can_commit<S: Store>(store: S) {
    store.health().await.unwrap();
    let r = request(60, "deploy-bot", 0);
    store
        .create_request(&r, vec![draft("request.created", &r)])
        .await
        .unwrap();
    store.health().await.unwrap();
    // A refused change writes nothing and is no failure of the store.
    let refused = store
        .update_request(
            r.id,
            apply(Event::Review(review("deploy-bot", Verdict::Approve, 1))),
        )
        .await
        .unwrap();
    assert!(
        matches!(refused, Updated::Refused { .. }),
        "the requester approved its own request: {refused:?}"
    );
    store.health().await.unwrap();
}

pub fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix_millis(1_795_277_280_000 + secs * 1000)
}

/// A pending request needing one approval from sre, opened at `opened` (seconds), open 10 minutes.
pub fn request(seed: u8, requester: &str, opened: i64) -> Request {
    let action = Action {
        kind: "shell.exec".into(),
        resource: "db:prod/customers".into(),
        labels: [("env".to_owned(), "production".to_owned())].into(),
        claims: Default::default(),
        details: json!({"argv": ["pg_dump", "customers"], "seed": seed}),
        principal: Chain {
            via: None,
            id: requester.into(),
            kind: PrincipalKind::Agent,
            on_behalf_of: vec!["alice".into()],
            started_by: None,
        },
        justification: Some("nightly backup".into()),
    };
    let decision = Decision {
        outcome: Outcome::RequireApproval,
        rules: vec!["prod-db-export".into()],
        requirements: vec![Requirement {
            rule: "prod-db-export".into(),
            groups: vec!["sre".into()],
            principals: vec![],
            count: 1,
            distinct_groups: 0,
            denials: 1,
        }],
        timeout_seconds: Some(600),
        approval_ttl_seconds: None,
        condition_failures: vec![],
        explanation: "test".into(),
    };
    Request::open(
        RequestId::from_random([seed; 16]),
        action,
        decision,
        at(opened),
    )
    .unwrap()
}

pub fn review(id: &str, verdict: Verdict, secs: i64) -> Review {
    Review {
        reviewer: Reviewer {
            id: id.into(),
            kind: PrincipalKind::Human,
            groups: ["sre".to_owned()].into(),
            authentication: Authentication::ApiToken,
        },
        verdict,
        comment: None,
        channel: Channel::Cli,
        at: at(secs),
    }
}

fn draft(kind: &str, request: &Request) -> EventDraft {
    EventDraft::new(
        request.created_at,
        kind,
        format!("{kind} for {}", request.id),
    )
    .with_request_id(request.id)
    .with_principal(request.action.principal.id.clone())
}

/// A transition applying `event` through the approval core, recording it in the audit log.
pub fn apply(event: Event) -> crate::Transition {
    Box::new(move |current: &Request| {
        let next = current.apply(&event)?;
        let audit = vec![draft("request.event", &next)];
        Ok(Update {
            request: next,
            audit,
            grant: None,
        })
    })
}

async fn requests_round_trip<S: Store>(store: S) {
    let r = request(1, "deploy-bot", 0);
    let events = store
        .create_request(&r, vec![draft("request.created", &r)])
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].request_id, Some(r.id));
    assert_eq!(store.get_request(r.id).await.unwrap(), Some(r.clone()));
    assert!(
        store
            .get_request(RequestId::from_random([99; 16]))
            .await
            .unwrap()
            .is_none()
    );
    let duplicate = store
        .create_request(&r, vec![draft("request.created", &r)])
        .await;
    assert!(matches!(duplicate, Err(crate::StoreError::DuplicateRequest(id)) if id == r.id));
    // The refused duplicate wrote no audit event.
    assert_eq!(store.audit_after(0, 100).await.unwrap().len(), 1);
}

async fn transitions_apply_atomically_or_not_at_all<S: Store>(store: S) {
    let r = request(2, "deploy-bot", 0);
    store
        .create_request(&r, vec![draft("request.created", &r)])
        .await
        .unwrap();

    let refused = store
        .update_request(
            r.id,
            apply(Event::Review(review("alice", Verdict::Approve, 5))),
        )
        .await
        .unwrap();
    match refused {
        Updated::Refused {
            refusal: Refusal::SelfApproval { .. },
            request,
        } => assert_eq!(request, r),
        other => panic!("a self-approval was not refused: {other:?}"),
    }
    assert_eq!(
        store.audit_after(0, 100).await.unwrap().len(),
        1,
        "a refusal wrote to the log"
    );

    let applied = store
        .update_request(
            r.id,
            apply(Event::Review(review("sam", Verdict::Approve, 6))),
        )
        .await
        .unwrap();
    let Updated::Applied { request, events } = applied else {
        panic!("the approval was refused")
    };
    assert_eq!(request.state, State::Approved { at: at(6) });
    assert_eq!(events.len(), 1);
    assert_eq!(store.get_request(r.id).await.unwrap().unwrap(), request);

    let missing = store
        .update_request(
            RequestId::from_random([77; 16]),
            apply(Event::Expire { at: at(9999) }),
        )
        .await;
    assert!(matches!(missing, Err(crate::StoreError::UnknownRequest(_))));
}

async fn concurrent_reviews_are_all_applied_in_turn<S: Store>(store: Arc<S>) {
    // A request that needs 12 approvals: 12 reviewers at once must all count.
    let mut r = request(3, "deploy-bot", 0);
    r.decision.requirements[0].count = 12;
    store
        .create_request(&r, vec![draft("request.created", &r)])
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..12 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let reviewer = format!("sre-{i}");
            store
                .update_request(
                    r.id,
                    apply(Event::Review(review(&reviewer, Verdict::Approve, 10 + i))),
                )
                .await
        }));
    }
    for task in tasks {
        assert!(matches!(
            task.await.unwrap().unwrap(),
            Updated::Applied { .. }
        ));
    }
    let stored = store.get_request(r.id).await.unwrap().unwrap();
    assert_eq!(stored.reviews.len(), 12);
    assert!(matches!(stored.state, State::Approved { .. }));
    assert_eq!(store.audit_after(0, 100).await.unwrap().len(), 13);
}

async fn listing_filters_and_orders<S: Store>(store: S) {
    for (seed, requester, opened) in [(10, "bot-a", 0), (11, "bot-b", 10), (12, "bot-a", 20)] {
        let r = request(seed, requester, opened);
        store
            .create_request(&r, vec![draft("request.created", &r)])
            .await
            .unwrap();
    }
    let r11 = RequestId::from_random([11; 16]);
    store
        .update_request(
            r11,
            apply(Event::Cancel {
                by: "bot-b".into(),
                at: at(30),
            }),
        )
        .await
        .unwrap();

    let all = store
        .list_requests(&RequestFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let ids: Vec<RequestId> = all.iter().map(|r| r.id).collect();
    assert_eq!(
        ids,
        [
            RequestId::from_random([12; 16]),
            r11,
            RequestId::from_random([10; 16])
        ],
        "newest first"
    );
    let pending = store
        .list_requests(&RequestFilter {
            state: Some("pending".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(pending.len(), 2);
    assert_eq!(store.count_requests("pending").await.unwrap(), 2);
    assert_eq!(store.count_requests("cancelled").await.unwrap(), 1);
    let mine = store
        .list_requests(&RequestFilter {
            requester: Some("bot-a".into()),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].id, RequestId::from_random([12; 16]));
    let between = store
        .list_requests(&RequestFilter {
            created_from: Some(at(10)),
            created_before: Some(at(20)),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(between.iter().map(|r| r.id).collect::<Vec<_>>(), [r11]);
    let rule = all[0].decision.rules[0].clone();
    let by_rule = |rule: &str| RequestFilter {
        rule: Some(rule.to_owned()),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(store.list_requests(&by_rule(&rule)).await.unwrap().len(), 3);
    assert!(
        store
            .list_requests(&by_rule("no-such-rule"))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn deadlines<S: Store>(store: S) {
    assert_eq!(store.next_deadline().await.unwrap(), None);
    let early = request(20, "bot", 0);
    let late = request(21, "bot", 100);
    for r in [&late, &early] {
        store
            .create_request(r, vec![draft("request.created", r)])
            .await
            .unwrap();
    }
    assert_eq!(store.next_deadline().await.unwrap(), Some(early.expires_at));
    assert!(store.due_requests(at(599)).await.unwrap().is_empty());
    assert_eq!(store.due_requests(at(600)).await.unwrap(), [early.id]);
    store
        .update_request(early.id, apply(Event::Expire { at: at(600) }))
        .await
        .unwrap();
    assert_eq!(store.next_deadline().await.unwrap(), Some(late.expires_at));
    assert_eq!(store.due_requests(at(10_000)).await.unwrap(), [late.id]);
}

async fn grants_are_consumed_once_per_request<S: Store>(store: S) {
    let key = checkpoint_key();
    let r = request(30, "deploy-bot", 0);
    store
        .create_request(&r, vec![draft("request.created", &r)])
        .await
        .unwrap();
    let Updated::Applied {
        request: approved, ..
    } = store
        .update_request(
            r.id,
            apply(Event::Review(review("sam", Verdict::Approve, 1))),
        )
        .await
        .unwrap()
    else {
        panic!("not approved")
    };
    let first = Grant::issue(
        &approved,
        GrantId::from_random([1; 16]),
        at(2),
        Duration::from_secs(60),
        &key,
    )
    .unwrap();
    let second = Grant::issue(
        &approved,
        GrantId::from_random([2; 16]),
        at(3),
        Duration::from_secs(60),
        &key,
    )
    .unwrap();
    for g in [&first, &second] {
        store
            .insert_grant(&g.claims, vec![draft("grant.issued", &approved)])
            .await
            .unwrap();
    }
    let consume = |grant: GrantId, digest, secs| {
        store.consume_grant(
            grant,
            r.id,
            digest,
            at(secs),
            vec![draft("grant.consumed", &approved)],
        )
    };
    let other_digest = countersign_model::Digest::of(b"another action");
    assert_eq!(
        consume(first.claims.grant, other_digest, 4)
            .await
            .unwrap()
            .0,
        Consumed::WrongDigest
    );
    assert_eq!(
        consume(GrantId::from_random([9; 16]), r.digest, 4)
            .await
            .unwrap()
            .0,
        Consumed::Unknown
    );
    assert_eq!(
        consume(first.claims.grant, r.digest, 62).await.unwrap().0,
        Consumed::Expired { at: at(62) }
    );
    let (ok, events) = consume(first.claims.grant, r.digest, 5).await.unwrap();
    assert_eq!(ok, Consumed::Ok);
    assert_eq!(events.len(), 1);
    assert_eq!(
        consume(first.claims.grant, r.digest, 6).await.unwrap().0,
        Consumed::AlreadyUsed { at: at(5) }
    );
    // Another grant of the same approval cannot run the action a second time.
    assert_eq!(
        consume(second.claims.grant, r.digest, 6).await.unwrap().0,
        Consumed::AlreadyUsed { at: at(5) }
    );
}

async fn the_audit_log_chains_and_is_checkpointed<S: Store>(store: S) {
    assert_eq!(store.audit_head().await.unwrap(), None);
    let r = request(40, "deploy-bot", 0);
    store
        .create_request(
            &r,
            vec![draft("request.created", &r), draft("request.notified", &r)],
        )
        .await
        .unwrap();
    store
        .append_audit(vec![EventDraft::new(
            at(1),
            "policy.reloaded",
            "the policy was reloaded",
        )])
        .await
        .unwrap();
    store
        .update_request(r.id, apply(Event::Review(review("sam", Verdict::Deny, 2))))
        .await
        .unwrap();

    let events = store.audit_after(0, 100).await.unwrap();
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    let summary = verify(&events, None).unwrap();
    assert_eq!(store.audit_head().await.unwrap(), summary.head);
    let checkpoints = store.checkpoints(0, u64::MAX).await.unwrap();
    let middle: Vec<u64> = store
        .checkpoints(1, 3)
        .await
        .unwrap()
        .iter()
        .map(|c| c.seq)
        .collect();
    assert_eq!(
        middle,
        [2, 3],
        "the checkpoints over events 2..=3 (writes ended at 2, 3 and 4)"
    );
    assert_eq!(
        checkpoints.last().map(|c| c.seq),
        Some(4),
        "the last write was not checkpointed"
    );
    verify_with_checkpoints(&events, &checkpoints, &checkpoint_key().public_key()).unwrap();

    assert_eq!(store.audit_after(2, 1).await.unwrap()[0].seq, 3);
    let about_r: Vec<u64> = store
        .audit_for_request(r.id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(about_r, [1, 2, 4]);
}

async fn an_approval_writes_its_grant_in_the_same_transaction<S: Store>(store: S) {
    let key = checkpoint_key();
    let r = request(50, "deploy-bot", 0);
    store
        .create_request(&r, vec![draft("request.created", &r)])
        .await
        .unwrap();
    assert_eq!(
        store.grant_status(r.id, at(1)).await.unwrap(),
        GrantStatus::None
    );
    let approve = Box::new(move |current: &Request| {
        let next = current.apply(&Event::Review(review("sam", Verdict::Approve, 1)))?;
        let grant = Grant::issue(
            &next,
            GrantId::from_random([5; 16]),
            at(1),
            Duration::from_secs(60),
            &key,
        )
        .unwrap();
        let audit = vec![
            draft("request.approved", &next),
            draft("grant.issued", &next),
        ];
        Ok(Update {
            request: next,
            audit,
            grant: Some(grant.claims),
        })
    });
    let Updated::Applied { events, .. } = store.update_request(r.id, approve).await.unwrap() else {
        panic!("refused")
    };
    assert_eq!(events.len(), 2);
    let GrantStatus::Active(claims) = store.grant_status(r.id, at(2)).await.unwrap() else {
        panic!("no active grant")
    };
    assert_eq!(claims.grant, GrantId::from_random([5; 16]));
    assert_eq!(
        store.grant_status(r.id, at(61)).await.unwrap(),
        GrantStatus::None,
        "expired grants are not handed out"
    );
    let (consumed, _) = store
        .consume_grant(claims.grant, r.id, r.digest, at(3), vec![])
        .await
        .unwrap();
    assert_eq!(consumed, Consumed::Ok);
    assert_eq!(
        store.grant_status(r.id, at(4)).await.unwrap(),
        GrantStatus::Consumed
    );
}

/// Where a request's messages were delivered, updated in place, with the audit event of the first
/// delivery.
pub async fn deliveries_are_kept_until_settled<S: Store>(store: S) {
    let r = request(7, "deploy-bot", 0);
    store
        .create_request(&r, vec![draft("request.created", &r)])
        .await
        .unwrap();
    let posted = crate::Delivery {
        request: r.id,
        channel: "slack".into(),
        address: "#dba-approvals".into(),
        reference: "C0DBA 1700000000.000100".into(),
        settled: false,
    };
    let events = store
        .save_delivery(&posted, vec![draft("notification.posted", &r)])
        .await
        .unwrap();
    assert_eq!(
        events.len(),
        1,
        "the post is audited in the same transaction"
    );
    let other = crate::Delivery {
        address: "#approvals".into(),
        reference: "C0ALL 1700000000.000100".into(),
        ..posted.clone()
    };
    store.save_delivery(&other, vec![]).await.unwrap();
    assert_eq!(
        store.deliveries(r.id).await.unwrap(),
        vec![other.clone(), posted.clone()]
    );
    assert_eq!(
        store.unsettled_deliveries("slack").await.unwrap(),
        vec![r.id]
    );
    assert!(
        store
            .unsettled_deliveries("teams")
            .await
            .unwrap()
            .is_empty()
    );

    for message in [&posted, &other] {
        let settled = crate::Delivery {
            settled: true,
            ..message.clone()
        };
        store.save_delivery(&settled, vec![]).await.unwrap();
    }
    assert!(
        store
            .unsettled_deliveries("slack")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .deliveries(r.id)
            .await
            .unwrap()
            .iter()
            .all(|m| m.settled)
    );
    assert!(
        store
            .deliveries(request(8, "deploy-bot", 0).id)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn reported_events_are_appended_once<S: Store>(store: S) {
    let event = |id: Option<&str>, n: i64| {
        Reported::new(
            id.map(str::to_owned),
            EventDraft::new(at(n), "action.allowed", "an allowed call"),
        )
    };
    let (first, left_out) = store
        .append_reported(vec![
            event(Some("p1-0"), 1),
            event(Some("p1-1"), 2),
            event(None, 3),
        ])
        .await
        .unwrap();
    assert_eq!((first.len(), left_out), (3, 0));
    // The same batch again (a proxy that crashed before noting the acknowledgement), with one
    // new event, one repeated within the batch, and one without an id (always appended).
    let (second, left_out) = store
        .append_reported(vec![
            event(Some("p1-0"), 4),
            event(Some("p1-1"), 5),
            event(Some("p1-2"), 6),
            event(Some("p1-2"), 7),
            event(None, 8),
        ])
        .await
        .unwrap();
    assert_eq!(left_out, 3);
    let times: Vec<Timestamp> = second.iter().map(|e| e.time).collect();
    assert_eq!(times, [at(6), at(8)]);
    let all = store.audit_after(0, 100).await.unwrap();
    assert_eq!(all.len(), 5);
    verify(&all, None).unwrap();
}

async fn reported_event_ids_are_each_reporters_own<S: Store>(store: S) {
    let event = |who: &str, id: &str, n: i64| {
        Reported::new(
            Some(id.to_owned()),
            EventDraft::new(at(n), "action.allowed", "an allowed call")
                .with_principal(who.to_owned()),
        )
    };
    let (first, left_out) = store
        .append_reported(vec![event("deploy-bot", "e-1", 1)])
        .await
        .unwrap();
    assert_eq!((first.len(), left_out), (1, 0));
    // Another reporter's event with the same id is its own event, never a repeat of the first…
    let (second, left_out) = store
        .append_reported(vec![
            event("build-bot", "e-1", 2),
            event("deploy-bot", "e-1", 3),
        ])
        .await
        .unwrap();
    assert_eq!(left_out, 1);
    let second: Vec<(Option<&str>, Timestamp)> = second
        .iter()
        .map(|e| (e.principal.as_deref(), e.time))
        .collect();
    assert_eq!(second, [(Some("build-bot"), at(2))]);
    // …and it is recorded as that reporter's: sent again, it is left out.
    let (third, left_out) = store
        .append_reported(vec![event("build-bot", "e-1", 4)])
        .await
        .unwrap();
    assert_eq!((third.len(), left_out), (0, 1));
}

async fn follow_ups_are_appended_only_with_their_event<S: Store>(store: S) {
    let event = |id: &str, n: i64| Reported {
        event_id: Some(id.to_owned()),
        event: EventDraft::new(at(n), "action.allowed", "an allowed call")
            .with_principal("deploy-bot".to_owned()),
        follow_ups: vec![EventDraft::new(
            at(n),
            "action.report_mismatch",
            "the report does not match the policy",
        )],
    };
    let (first, left_out) = store
        .append_reported(vec![event("e-1", 1), event("e-2", 2)])
        .await
        .unwrap();
    assert_eq!(left_out, 0);
    let kinds: Vec<(&str, Timestamp)> = first.iter().map(|e| (e.kind.as_str(), e.time)).collect();
    assert_eq!(
        kinds,
        [
            ("action.allowed", at(1)),
            ("action.report_mismatch", at(1)),
            ("action.allowed", at(2)),
            ("action.report_mismatch", at(2)),
        ]
    );
    // Sent again, the event is left out and so is what the broker recorded about it.
    let (second, left_out) = store.append_reported(vec![event("e-1", 3)]).await.unwrap();
    assert_eq!((second.len(), left_out), (0, 1));
    assert_eq!(store.audit_after(0, 100).await.unwrap().len(), 4);
}
