//! Countersign's shared vocabulary: actions, principals, canonical JSON, strict JSON, digests,
//! time, ids, signing keys, and how actions and untrusted text are shown to reviewers.
//!
//! Architecture invariant: this crate does no I/O. It reads no clock, no file, no environment and
//! no random source; callers pass time and key material in. It therefore cannot fail on anything
//! but its inputs.

pub mod action;
pub mod canonical;
pub mod claims;
pub mod digest;
pub mod ids;
pub mod signing;
pub mod strict_json;
pub mod summary;
pub mod text;
pub mod time;
pub mod usual;

pub use action::{Action, ActionError, Chain, PrincipalKind};
pub use claims::{Disagreement, disagreements};
pub use digest::Digest;
pub use ids::{IdError, RequestId};
pub use signing::{KeyError, PublicKey, SecretKey};
pub use summary::{CommandLine, Summary, summary};
pub use time::{Timestamp, format_duration, parse_duration};
pub use usual::changes_from;
