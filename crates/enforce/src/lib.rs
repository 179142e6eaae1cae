//! The enforcement protocol every Countersign enforcement point shares (`countersign run`,
//! `countersign mcp`, and the proxies and hooks to come), so that a new one is a copy of a shape,
//! not a copy of code. It owns:
//!
//! - the **local gate** ([`gate`]): decides any [`Action`](countersign_model::Action) with the
//!   broker's policy (`GET /v1/policy`) compiled here, polled for changes and refused once the
//!   broker has not confirmed it for longer than its maximum age; allowed and denied actions are
//!   spooled before they go on, the others are held;
//! - the **durable audit spool** and its shipper ([`spool`]): every locally decided event is
//!   appended before the action goes on, and shipped in batches to `POST /v1/audit/events`,
//!   also after a crash, by the next process on the same directory;
//! - the **hold** ([`hold`]): evaluate → wait with outage back-off → withdraw → check the digest
//!   of what is about to run → consume the grant, as one API ([`Hold`]) with hooks for progress
//!   and cancellation ([`Front`]) and an [`Ending`] each front end words its own way;
//! - **recording the outcome** ([`outcome`]) of an approved action, falling back to the spool.
//!
//! It depends on the client and the pure core (model, policy), never on the broker or the store,
//! and reads no file but its spool directory, and no environment.
//!
//! # How to add an enforcement point
//!
//! 1. A crate of its own (`crates/<name>`), depending on this crate, the client and the pure
//!    core; never on the broker, the store, or another front end.
//! 2. Turn the protocol's message into an action: a kind (`http.request`), a resource, the
//!    details that say exactly what runs, with [`Gate::action`]; the labels come from the
//!    configuration ([`GateConfig::labels`]), never from the agent. Refuse what cannot become an
//!    action, and say why.
//! 3. Decide it with [`Gate::check`]: `Allow` runs at once (its event is spooled), `Deny` and
//!    `Refuse` are answered in the protocol's own words (who decided:
//!    [`countersign_policy::decided_by_policy`]), `Approval` goes to [`Hold::run`].
//! 4. Implement [`Front`]: `stopped` resolves on the protocol's cancellation (a signal, a
//!    cancel message, a closed connection), the other hooks show progress; [`Front::proceed`] is
//!    the last chance to back out before the grant is consumed.
//! 5. Map every [`Ending`] to the protocol's answer: only `Allowed` and `Approved` run; word a
//!    digest mismatch with [`mismatch`].
//! 6. Once an approved action ran, [`outcome::record`] how it went.
//! 7. Start the [`Background`] work (the spool's [`Shipper`], [`Gate::keep_policy_fresh`]) once the
//!    gate is connected, and [`Background::finish`] it at a clean exit within a time limit.
//! 8. Tests: an offline gate ([`Gate::offline`]) with a policy in hand, and a scripted broker for
//!    the hold.

pub mod background;
pub mod gate;
pub mod hold;
pub mod outcome;
pub mod spool;

pub use background::Background;
pub use gate::{Bindings, Check, ConnectError, Gate, GateConfig, Refusal};
pub use hold::{EXPIRY_GRACE, Ending, Front, Hold, MAX_BACKOFF, Pace, Step, Withdrawal, mismatch};
pub use spool::{Shipper, Sink, SinkError, Spool, SpoolError};
