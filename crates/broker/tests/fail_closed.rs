//! Fail closed: when the store cannot commit, the API answers 503 and nothing is allowed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

use countersign_test_support::broker as harness;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use axum::http::StatusCode;
use countersign_approval::{GrantClaims, Request};
use countersign_audit::{AuditEvent, ChainHead, Checkpoint, EventDraft};
use countersign_model::ids::GrantId;
use countersign_model::{Digest, RequestId, Timestamp};
use countersign_store::{
    Consumed, Delivery, Reported, RequestFilter, Store, StoreError, Transition, Updated,
};
use harness::{EXAMPLE_POLICY, error_message, pg_dump, start_with};
use serde_json::json;

/// A store whose writes fail while `broken` is set, as a full disk or a lost database would.
struct Breakable {
    inner: Arc<dyn Store>,
    broken: Arc<AtomicBool>,
}

impl Breakable {
    fn check(&self) -> Result<(), StoreError> {
        if self.broken.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable("disk I/O error".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Store for Breakable {
    async fn append_audit(&self, drafts: Vec<EventDraft>) -> Result<Vec<AuditEvent>, StoreError> {
        self.check()?;
        self.inner.append_audit(drafts).await
    }
    async fn append_reported(
        &self,
        reported: Vec<Reported>,
    ) -> Result<(Vec<AuditEvent>, usize), StoreError> {
        self.check()?;
        self.inner.append_reported(reported).await
    }
    async fn create_request(
        &self,
        r: &Request,
        audit: Vec<EventDraft>,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        self.check()?;
        self.inner.create_request(r, audit).await
    }
    async fn update_request(&self, id: RequestId, t: Transition) -> Result<Updated, StoreError> {
        self.check()?;
        self.inner.update_request(id, t).await
    }
    async fn get_request(&self, id: RequestId) -> Result<Option<Request>, StoreError> {
        self.inner.get_request(id).await
    }
    async fn list_requests(&self, f: &RequestFilter) -> Result<Vec<Request>, StoreError> {
        self.inner.list_requests(f).await
    }
    async fn count_requests(&self, state: &str) -> Result<u64, StoreError> {
        self.inner.count_requests(state).await
    }
    async fn next_deadline(&self) -> Result<Option<Timestamp>, StoreError> {
        self.inner.next_deadline().await
    }
    async fn due_requests(&self, now: Timestamp) -> Result<Vec<RequestId>, StoreError> {
        self.inner.due_requests(now).await
    }
    async fn grant_status(
        &self,
        r: RequestId,
        now: Timestamp,
    ) -> Result<countersign_store::GrantStatus, StoreError> {
        self.inner.grant_status(r, now).await
    }
    async fn insert_grant(
        &self,
        c: &GrantClaims,
        audit: Vec<EventDraft>,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        self.check()?;
        self.inner.insert_grant(c, audit).await
    }
    async fn consume_grant(
        &self,
        g: GrantId,
        r: RequestId,
        d: Digest,
        now: Timestamp,
        audit: Vec<EventDraft>,
    ) -> Result<(Consumed, Vec<AuditEvent>), StoreError> {
        self.check()?;
        self.inner.consume_grant(g, r, d, now, audit).await
    }
    async fn audit_after(&self, after: u64, limit: u32) -> Result<Vec<AuditEvent>, StoreError> {
        self.inner.audit_after(after, limit).await
    }
    async fn audit_for_request(&self, id: RequestId) -> Result<Vec<AuditEvent>, StoreError> {
        self.inner.audit_for_request(id).await
    }
    async fn checkpoints(&self, after: u64, through: u64) -> Result<Vec<Checkpoint>, StoreError> {
        self.inner.checkpoints(after, through).await
    }
    async fn audit_head(&self) -> Result<Option<ChainHead>, StoreError> {
        self.inner.audit_head().await
    }
    async fn health(&self) -> Result<(), StoreError> {
        self.check()?;
        self.inner.health().await
    }
    async fn save_delivery(
        &self,
        d: &Delivery,
        audit: Vec<EventDraft>,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        self.check()?;
        self.inner.save_delivery(d, audit).await
    }
    async fn deliveries(&self, id: RequestId) -> Result<Vec<Delivery>, StoreError> {
        self.inner.deliveries(id).await
    }
    async fn unsettled_deliveries(&self, channel: &str) -> Result<Vec<RequestId>, StoreError> {
        self.inner.unsettled_deliveries(channel).await
    }
}

#[tokio::test]
async fn when_the_store_cannot_commit_nothing_is_allowed_and_nothing_is_granted() {
    let broken = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&broken);
    let b = start_with(EXAMPLE_POLICY, move |inner| {
        Arc::new(Breakable {
            inner,
            broken: flag,
        })
    })
    .await;

    // A request approved while the store works...
    let (_, body) = b.post("deploy-bot", "/v1/actions", pg_dump()).await;
    let id = body["request"]["id"].as_str().unwrap().to_owned();
    for who in ["dana", "sam"] {
        b.post(
            who,
            &format!("/v1/requests/{id}/reviews"),
            json!({"verdict": "approve"}),
        )
        .await;
    }
    let (_, approved) = b
        .get("deploy-bot", &format!("/v1/requests/{id}/wait?timeout=1s"))
        .await;
    let grant = approved["grant"]["token"].as_str().unwrap().to_owned();
    let digest = approved["digest"].as_str().unwrap().to_owned();

    broken.store(true, Ordering::SeqCst);
    let allowed = json!({"kind": "shell.exec", "resource": "host:web-1", "details": {"argv": ["ls"], "program": "/usr/bin/ls"}});
    for (what, (status, body)) in [
        (
            "an allowed action",
            b.post("deploy-bot", "/v1/actions", allowed).await,
        ),
        (
            "a gated action",
            b.post("deploy-bot", "/v1/actions", pg_dump()).await,
        ),
        (
            "consuming a grant",
            b.post(
                "deploy-bot",
                "/v1/grants/consume",
                json!({"token": grant, "digest": digest}),
            )
            .await,
        ),
    ] {
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{what}: {body}");
        assert_eq!(body["error"]["code"], "unavailable");
        assert!(
            error_message(&body).contains("no action may run"),
            "{what}: {body}"
        );
    }

    let (_, metrics) = b
        .call(None, axum::http::Method::GET, "/metrics", None)
        .await;
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("countersign_unavailable_total 3"),
        "{metrics}"
    );

    // Once the store is back, the grant is still unused: the failed consumption did not count.
    broken.store(false, Ordering::SeqCst);
    let (status, _) = b
        .post(
            "deploy-bot",
            "/v1/grants/consume",
            json!({"token": grant, "digest": digest}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}
