//! Countersign's durable state: requests (with their reviews), grants, and the audit log.
//!
//! One trait, [`Store`], with one conformance suite ([`conformance`]) that every backend runs.
//! Every write is one transaction, durable before it returns: when `Ok` comes back, the request,
//! review, grant or audit event survives a crash of the process at any moment after. Each write
//! that changes a request appends its audit events in the same transaction, so the log never
//! misses a step and never records one that did not happen.

pub mod conformance;
mod error;
mod sqlite;

use async_trait::async_trait;
use countersign_approval::{GrantClaims, Refusal, Request};
use countersign_audit::{AuditEvent, ChainHead, Checkpoint, EventDraft};
use countersign_model::ids::GrantId;
use countersign_model::{Digest, RequestId, Timestamp};

pub use error::StoreError;
pub use sqlite::SqliteStore;

/// An event an enforcement point reported, with the reporter's own id for it (if any), and the
/// events the broker records about it (an alert that it does not match the policy), appended
/// right after it and only with it: a report sent again records neither twice.
#[derive(Debug, Clone)]
pub struct Reported {
    pub event_id: Option<String>,
    pub event: EventDraft,
    pub follow_ups: Vec<EventDraft>,
}

impl Reported {
    pub fn new(event_id: Option<String>, event: EventDraft) -> Reported {
        Reported {
            event_id,
            event,
            follow_ups: Vec::new(),
        }
    }
}

/// What a change to a request produces: the next request, the audit events that record it, and
/// — when it approves the request — the grant, written in the same transaction.
#[derive(Debug, Clone)]
pub struct Update {
    pub request: Request,
    pub audit: Vec<EventDraft>,
    pub grant: Option<GrantClaims>,
}

/// Where the grants of one request stand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantStatus {
    /// An unexpired grant nobody has used: hand it out.
    Active(GrantClaims),
    /// The approval was used: no grant will run the action again.
    Consumed,
    /// No grant, or only expired ones.
    None,
}

/// A change to one request, computed from its current stored state inside the transaction (so two
/// reviews arriving together are applied one after the other, never both from the same state).
pub type Transition = Box<dyn FnOnce(&Request) -> Result<Update, Refusal> + Send>;

/// The result of [`Store::update_request`].
#[derive(Debug, Clone)]
pub enum Updated {
    /// The change was made; the request as stored now, and the audit events written with it.
    Applied {
        request: Request,
        events: Vec<AuditEvent>,
    },
    /// The approval core refused the change; nothing was written.
    Refused { request: Request, refusal: Refusal },
}

/// The result of [`Store::consume_grant`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Consumed {
    /// First and only use: the action may run.
    Ok,
    /// This grant, or another grant of the same request, was consumed before.
    AlreadyUsed {
        at: Timestamp,
    },
    Expired {
        at: Timestamp,
    },
    /// The grant approves a different action.
    WrongDigest,
    /// No such grant was issued.
    Unknown,
}

/// Where a channel delivered a message about a request, so it can be updated later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub request: RequestId,
    /// The channel that delivered it: `slack`, `teams`.
    pub channel: String,
    /// Where it was asked to go, as configured (`#dba-approvals`).
    pub address: String,
    /// The channel's own reference to the message (for Slack, the channel id and the message's
    /// `ts`); only that channel reads it.
    pub reference: String,
    /// The message shows the request's end; it needs no more updates.
    pub settled: bool,
}

/// Which requests to list.
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    /// `pending`, `approved`, `denied`, `expired`, `cancelled`; `None` for all.
    pub state: Option<String>,
    /// Only requests whose requester is this principal.
    pub requester: Option<String>,
    /// Only requests this rule decided (one of the decision's rules).
    pub rule: Option<String>,
    /// Only requests made at or after this time.
    pub created_from: Option<Timestamp>,
    /// Only requests made before this time.
    pub created_before: Option<Timestamp>,
    pub limit: u32,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Seals and appends audit events after the current head of the log.
    async fn append_audit(&self, drafts: Vec<EventDraft>) -> Result<Vec<AuditEvent>, StoreError>;

    /// Appends events an enforcement point reported, each with the id it gave the event, if
    /// any, and each followed by its follow-ups: an event whose id was appended before (or
    /// earlier in the same batch) by the same reporter (the draft's principal) is left out with
    /// its follow-ups, so a batch sent again is recorded once. Ids are the reporter's own:
    /// another principal's event with the same id is appended. Returns the events appended
    /// (follow-ups included) and how many reported events were left out.
    async fn append_reported(
        &self,
        reported: Vec<Reported>,
    ) -> Result<(Vec<AuditEvent>, usize), StoreError>;

    /// Stores a new request with the audit events that record its creation.
    async fn create_request(
        &self,
        request: &Request,
        audit: Vec<EventDraft>,
    ) -> Result<Vec<AuditEvent>, StoreError>;

    /// Applies `transition` to the stored request, atomically with its audit events.
    async fn update_request(
        &self,
        id: RequestId,
        transition: Transition,
    ) -> Result<Updated, StoreError>;

    async fn get_request(&self, id: RequestId) -> Result<Option<Request>, StoreError>;

    /// Requests, newest first.
    async fn list_requests(&self, filter: &RequestFilter) -> Result<Vec<Request>, StoreError>;

    /// How many requests are in `state` (`pending`, `approved`, …).
    async fn count_requests(&self, state: &str) -> Result<u64, StoreError>;

    /// The earliest deadline among pending requests.
    async fn next_deadline(&self) -> Result<Option<Timestamp>, StoreError>;

    /// Pending requests whose deadline is at or before `now`.
    async fn due_requests(&self, now: Timestamp) -> Result<Vec<RequestId>, StoreError>;

    /// The grant to hand the requester of an approved request, if any is still usable.
    async fn grant_status(
        &self,
        request: RequestId,
        now: Timestamp,
    ) -> Result<GrantStatus, StoreError>;

    /// Records a grant issued for an approved request.
    async fn insert_grant(
        &self,
        claims: &GrantClaims,
        audit: Vec<EventDraft>,
    ) -> Result<Vec<AuditEvent>, StoreError>;

    /// Consumes a grant exactly once: at most one grant per request is ever consumed. The audit
    /// events are written only if the grant is consumed.
    async fn consume_grant(
        &self,
        grant: GrantId,
        request: RequestId,
        digest: Digest,
        now: Timestamp,
        audit: Vec<EventDraft>,
    ) -> Result<(Consumed, Vec<AuditEvent>), StoreError>;

    /// Audit events with `seq > after`, in order, at most `limit`.
    async fn audit_after(&self, after: u64, limit: u32) -> Result<Vec<AuditEvent>, StoreError>;

    /// The audit events about one request, in order.
    async fn audit_for_request(&self, id: RequestId) -> Result<Vec<AuditEvent>, StoreError>;

    /// The checkpoints over events `after + 1 ..= through`, in order (`0, u64::MAX` for all).
    async fn checkpoints(&self, after: u64, through: u64) -> Result<Vec<Checkpoint>, StoreError>;

    async fn audit_head(&self) -> Result<Option<ChainHead>, StoreError>;

    /// Whether a write could commit now: the store's files are the ones it opened, and the last
    /// commit, or else a probe that commits, succeeded. What `/healthz` and `/readyz` report.
    async fn health(&self) -> Result<(), StoreError>;

    /// Records (or updates, by request, channel and address) a delivery, with the audit events
    /// that record it, in one transaction.
    async fn save_delivery(
        &self,
        delivery: &Delivery,
        audit: Vec<EventDraft>,
    ) -> Result<Vec<AuditEvent>, StoreError>;

    /// The deliveries of one request's messages, by channel and address.
    async fn deliveries(&self, request: RequestId) -> Result<Vec<Delivery>, StoreError>;

    /// Requests with a message delivered by `channel` that does not show their end yet.
    async fn unsettled_deliveries(&self, channel: &str) -> Result<Vec<RequestId>, StoreError>;
}
