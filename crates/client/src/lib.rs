//! A Rust client for the Countersign broker's HTTP API (docs/api.md): evaluate actions, wait for
//! approvals, use grants, record outcomes, review requests, and read and verify the audit log.
//!
//! ```no_run
//! # async fn example() -> Result<(), countersign_client::ClientError> {
//! use countersign_client::{ActionRequest, Client, EvaluateResponse};
//!
//! let client = Client::new("http://127.0.0.1:8750", "agent-token")?;
//! let mut action = ActionRequest::new("shell.exec", "db:prod/customers");
//! action.details = serde_json::json!({"argv": ["pg_dump", "customers"]});
//! match client.evaluate(&action, None).await? {
//!     EvaluateResponse::Allow(_) => { /* run it */ }
//!     EvaluateResponse::Deny(denied) => eprintln!("denied: {}", denied.explanation),
//!     EvaluateResponse::RequireApproval(gated) => {
//!         let request = client.wait(gated.request.id, std::time::Duration::from_secs(60)).await?;
//!         eprintln!("{}", request.summary);
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Errors say which side failed ([`ClientError`]): the broker unreachable, the token refused, the
//! broker's own refusal (its code and sentence, verbatim), or an answer that is not the API's.
//! A policy denial is not an error but one of the three answers of [`Client::evaluate`].

mod bodies;
mod client;
mod error;
mod views;

pub use bodies::{ActionRequest, OutcomeStatus, ReportedEvent, ReportedEventType};
pub use client::{CALL_TIMEOUT, Client, MAX_WAIT};
pub use error::ClientError;
pub use views::{
    Allowed, ApprovalRequired, AuditPage, AuditVerification, Denied, ErrorCode, ErrorDetail,
    EvaluateResponse, GrantConsumed, GrantView, Health, PolicyReloaded, PolicyView, ProgressView,
    ReadCode, RequestState, RequestView, ReviewView, UnknownState, Verdict, Whoami,
};
