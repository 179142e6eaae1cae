//! The broker's service layer: what every channel (Slack, the web inbox, Teams) calls instead of
//! reaching the store. Reviews and cancellations take the API's own path through the approval
//! core; reads see the store through the broker; deliveries record where a channel posted a
//! request's message, so any broker instance, after any restart, can update it.
//!
//! Nothing here hands out the store itself: a channel can do only what this file names.

use std::sync::Arc;

use countersign_approval::{Authentication, Channel, Request, Verdict};
use countersign_audit::{AuditEvent, ChainHead, EventDraft};
use countersign_model::{Action, Digest, RequestId};
use countersign_policy::Decision;
use countersign_store::{Delivery, RequestFilter};

use crate::api::{self, AuditVerification, Caller};
use crate::changes::Change;
use crate::config::Principal;
use crate::error::ApiError;
use crate::{Broker, State};

/// What became of a submitted action: the decision, the digest an approval binds to, and the
/// request it opened when the policy requires approval.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub decision: Decision,
    pub digest: Digest,
    pub request: Option<Request>,
}

/// One review, from whichever channel it came: who, what, and how the channel knows who.
#[derive(Debug, Clone)]
pub struct ReviewInput {
    /// The principal the channel's user maps to.
    pub reviewer: Arc<Principal>,
    pub request: RequestId,
    pub verdict: Verdict,
    pub comment: Option<String>,
    /// The channel it came through, recorded with the review.
    pub channel: Channel,
    /// How strongly the channel proved who the reviewer is.
    pub authentication: Authentication,
}

impl Broker {
    fn state(&self) -> &State {
        &self.state
    }

    /// Decides an action (its requester named in its chain) through the same path as
    /// `POST /v1/actions`: allowed and denied actions are audited, gated ones open a request.
    pub async fn submit(&self, action: Action) -> Result<Submitted, ApiError> {
        api::submit_action(self.state(), action).await
    }

    /// Reviews a request through the same path as the API: agents are refused, the comment is
    /// bounded, the approval core decides (self-approval, eligibility, quorum), the review or its
    /// refusal is audited, waiters wake.
    pub async fn review(&self, input: ReviewInput) -> Result<Request, ApiError> {
        api::submit_review(
            self.state(),
            &input.reviewer,
            input.request,
            input.verdict,
            input.comment,
            input.channel,
            input.authentication,
        )
        .await
    }

    /// Cancels a request, as `by`: the approval core decides whether they may.
    pub async fn cancel(&self, by: Arc<Principal>, id: RequestId) -> Result<Request, ApiError> {
        api::cancel_request(self.state(), &Caller(by, None), id).await
    }

    /// One request as stored now, if it exists.
    pub async fn request(&self, id: RequestId) -> Result<Option<Request>, ApiError> {
        Ok(self.state().store.get_request(id).await?)
    }

    /// Requests matching `filter`, newest first.
    pub async fn requests(&self, filter: &RequestFilter) -> Result<Vec<Request>, ApiError> {
        Ok(self.state().store.list_requests(filter).await?)
    }

    /// The audit events about one request, in order.
    pub async fn audit_of(&self, id: RequestId) -> Result<Vec<AuditEvent>, ApiError> {
        Ok(self.state().store.audit_for_request(id).await?)
    }

    /// Audit events with `seq > after`, in order, at most `limit`.
    pub async fn audit_after(&self, after: u64, limit: u32) -> Result<Vec<AuditEvent>, ApiError> {
        Ok(self.state().store.audit_after(after, limit).await?)
    }

    /// The newest alerts that an enforcement point reported a decision the policy it named does
    /// not make (`action.report_mismatch`), at most `limit`, newest first, among the last 50,000
    /// events of the log.
    pub async fn report_mismatches(&self, limit: usize) -> Result<Vec<AuditEvent>, ApiError> {
        Ok(crate::reported::recent_alerts(self.state(), limit).await?)
    }

    /// The newest event of the audit log, if any.
    pub async fn audit_head(&self) -> Result<Option<ChainHead>, ApiError> {
        Ok(self.state().store.audit_head().await?)
    }

    /// Verifies the whole audit log against its signed checkpoints, as `GET /v1/audit/verify`.
    pub async fn verify_audit(&self) -> Result<AuditVerification, ApiError> {
        api::verify_log(self.state()).await
    }

    /// Appends events to the audit log (durably, before returning).
    pub async fn record(&self, events: Vec<EventDraft>) -> Result<(), ApiError> {
        self.state().store.append_audit(events).await?;
        Ok(())
    }

    /// Records where a channel delivered a request's message (or that it now shows the
    /// request's end), with the audit events that say so, in one transaction.
    pub async fn record_delivery(
        &self,
        delivery: &Delivery,
        audit: Vec<EventDraft>,
    ) -> Result<(), ApiError> {
        self.state().store.save_delivery(delivery, audit).await?;
        Ok(())
    }

    /// Where the messages about one request were delivered, by channel and address.
    pub async fn deliveries(&self, id: RequestId) -> Result<Vec<Delivery>, ApiError> {
        Ok(self.state().store.deliveries(id).await?)
    }

    /// Requests with a message delivered by `channel` that does not show their end yet.
    pub async fn unsettled_deliveries(&self, channel: &str) -> Result<Vec<RequestId>, ApiError> {
        Ok(self.state().store.unsettled_deliveries(channel).await?)
    }

    /// Every durable change to a request from now on (see [`Change`]).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.state().changes.subscribe()
    }

    /// The principal whose API token this is, if any.
    pub fn principal_by_token(&self, token: &str) -> Option<Arc<Principal>> {
        self.state().principal_by_token(token)
    }

    pub fn principal(&self, id: &str) -> Option<Arc<Principal>> {
        self.state().principal(id)
    }

    pub fn principals(&self) -> &[Arc<Principal>] {
        &self.state().principals
    }
}
