//! The service layer channels call: submit, review with one input, cancel, read requests and
//! their audit, record and list deliveries, all through the broker, as the API does.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

use countersign_test_support::broker as harness;

use std::collections::BTreeMap;

use countersign_approval::{Authentication, Channel, Verdict};
use countersign_broker::{Delivery, RequestFilter, ReviewInput};
use countersign_model::{Action, Chain, PrincipalKind};
use countersign_policy::Outcome;
use harness::start;
use serde_json::json;

fn pg_dump_by(agent: &str) -> Action {
    Action {
        kind: "shell.exec".into(),
        resource: "db:prod/customers".into(),
        claims: Default::default(),
        labels: BTreeMap::from([("env".into(), "production".into())]),
        details: json!({"argv": ["pg_dump", "customers"]}),
        principal: Chain {
            via: None,
            id: agent.into(),
            kind: PrincipalKind::Agent,
            on_behalf_of: vec!["alice".into()],
            started_by: None,
        },
        justification: Some("nightly backup".into()),
    }
}

#[tokio::test]
async fn a_channel_submits_reviews_and_reads_through_the_broker() {
    let b = start().await;
    let broker = &b.broker;
    let submitted = broker.submit(pg_dump_by("deploy-bot")).await.unwrap();
    assert_eq!(submitted.decision.outcome, Outcome::RequireApproval);
    let request = submitted.request.unwrap();
    assert_eq!(request.digest, submitted.digest);
    assert_eq!(
        broker.request(request.id).await.unwrap().unwrap().id,
        request.id
    );
    let pending = broker
        .requests(&RequestFilter {
            state: Some("pending".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        pending.iter().map(|r| r.id).collect::<Vec<_>>(),
        [request.id]
    );

    // alice is in the chain: her review is refused, and the refusal audited.
    let review = |who: &str, verdict| ReviewInput {
        reviewer: broker.principal(who).unwrap(),
        request: request.id,
        verdict,
        comment: Some("checked".into()),
        channel: Channel::Web,
        authentication: Authentication::Oidc,
    };
    let refused = broker
        .review(review("alice", Verdict::Approve))
        .await
        .unwrap_err();
    assert_eq!(refused.status, 403, "{}", refused.message);
    let reviewed = broker
        .review(review("dana", Verdict::Approve))
        .await
        .unwrap();
    assert_eq!(reviewed.reviews.len(), 1);
    assert_eq!(reviewed.reviews[0].channel, Channel::Web);
    let kinds: Vec<String> = broker
        .audit_of(request.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        ["request.created", "review.refused", "review.approved"]
    );

    let cancelled = broker
        .cancel(broker.principal("deploy-bot").unwrap(), request.id)
        .await
        .unwrap();
    assert!(!cancelled.state.is_pending());
}

#[tokio::test]
async fn deliveries_are_recorded_and_listed_through_the_broker() {
    let b = start().await;
    let broker = &b.broker;
    let request = broker
        .submit(pg_dump_by("deploy-bot"))
        .await
        .unwrap()
        .request
        .unwrap();
    let delivery = Delivery {
        request: request.id,
        channel: "teams".into(),
        address: "DBA approvals".into(),
        reference: "conversation 1 / activity 2".into(),
        settled: false,
    };
    broker.record_delivery(&delivery, vec![]).await.unwrap();
    assert_eq!(
        broker.deliveries(request.id).await.unwrap(),
        std::slice::from_ref(&delivery)
    );
    assert_eq!(
        broker.unsettled_deliveries("teams").await.unwrap(),
        [request.id]
    );
    assert!(
        broker
            .unsettled_deliveries("slack")
            .await
            .unwrap()
            .is_empty()
    );
    let settled = Delivery {
        settled: true,
        ..delivery
    };
    broker.record_delivery(&settled, vec![]).await.unwrap();
    assert!(
        broker
            .unsettled_deliveries("teams")
            .await
            .unwrap()
            .is_empty()
    );
}
