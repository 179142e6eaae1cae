//! The Countersign MCP proxy: sits between an agent's MCP client and an MCP server, over stdio or
//! streamable HTTP, and turns every `tools/call` into an action (kind `mcp.tool_call`, resource
//! `mcp:NAME/TOOL`, details = the arguments). Allowed calls are decided locally with the broker's
//! policy and forwarded at once; denied calls are answered with a tool error that says who
//! refused and why; calls that need approval are held until enough humans approve and their
//! grant is consumed. Every other message passes through untouched, byte for byte.
//!
//! This crate reads no file but its audit spool, and no environment: the binary hands it the
//! broker client, the spool directory and the upstream.

pub mod approval;
pub mod framing;
pub mod gate;
pub mod held;
pub mod http;
pub mod message;
pub mod naming;
pub mod oauth;
pub mod route;
pub mod sse;
pub mod stdio;
pub mod upstream;

pub use countersign_enforce::Background;
pub use countersign_enforce::spool::{self, Shipper, Spool, SpoolError};
pub use gate::{Gate, GateConfig, StartError};
pub use reqwest::Url;
