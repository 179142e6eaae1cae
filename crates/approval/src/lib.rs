//! Countersign's approval core: the request state machine, the quorum and self-approval rules,
//! and the grants an approved request yields.
//!
//! Architecture invariant: no I/O. Every function here is a pure function of its inputs: the time
//! is an argument, ids and key material come from the caller. The broker persists what these
//! functions return; it never decides anything itself.

mod grant;
mod in_force;
mod quorum;
mod request;
mod review;

pub use grant::{DEFAULT_GRANT_TTL, Grant, GrantClaims, GrantError};
pub use in_force::Lapse;
pub use quorum::{RequirementProgress, progress};
pub use request::{Event, OpenError, Refusal, Request, State};
pub use review::{Authentication, Channel, Review, Reviewer, Verdict};
