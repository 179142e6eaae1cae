//! What Countersign's tests share, in one place instead of a copy per test crate: waiting for a
//! condition with a deadline ([`poll`]), free ports and waiting for a listener ([`ports`]), scratch directories removed when dropped ([`scratch`]),
//! principals and the tokens they authenticate with ([`principals`]), child processes killed when
//! dropped ([`process`]), a broker on a fresh SQLite store driven through its router in process
//! ([`broker`]), scripted stand-ins for the broker ([`fake_broker`]) and for Slack's Web API
//! ([`fake_slack`]), and, with the `mcp` feature, the MCP relay's gate (`mcp`).
//!
//! Only ever a dev-dependency. The real peers (Chromium, the npm and Python packages) stay real:
//! they are started by the tests that need them.

// Test code fails loudly: a helper that cannot do its job ends the test with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod broker;
pub mod fake_broker;
pub mod fake_slack;
#[cfg(feature = "mcp")]
pub mod mcp;
pub mod poll;
pub mod ports;
pub mod principals;
pub mod process;
pub mod scratch;
