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

use std::sync::Arc;
use std::time::Duration;

use countersign_client::Client;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use countersign_enforce::spool::{self, Shipper, Spool, SpoolError};
pub use gate::{Gate, GateConfig, StartError};
pub use reqwest::Url;

/// The proxy's background work: shipping the audit spool and keeping the policy fresh.
#[derive(Debug)]
pub struct Background {
    stop: watch::Sender<bool>,
    shipper: JoinHandle<Shipper<Client>>,
    policy: JoinHandle<()>,
}

impl Background {
    /// Starts shipping `gate`'s spool to its broker and polling the broker's policy.
    pub fn start(gate: &Arc<Gate>) -> Background {
        let (stop, stopped) = watch::channel(false);
        let shipper = Shipper::new(Arc::clone(gate.spool()), gate.client().clone());
        let shipper = tokio::spawn(shipper.run(stopped));
        let policy = {
            let gate = Arc::clone(gate);
            tokio::spawn(async move { gate.keep_policy_fresh().await })
        };
        Background {
            stop,
            shipper,
            policy,
        }
    }

    /// Stops, shipping what is left of the spool within `limit`; what is not shipped by then
    /// stays in the spool for the next proxy.
    pub async fn finish(self, limit: Duration) {
        self.policy.abort();
        let _ = self.stop.send(true);
        let Ok(shipper) = self.shipper.await else {
            return;
        };
        let why = match tokio::time::timeout(limit, shipper.finish()).await {
            Ok(Ok(())) => return,
            Ok(Err(spool::SinkError::Retry(why) | spool::SinkError::Reject(why))) => why,
            Err(_) => format!("the broker did not take them within {limit:?}"),
        };
        tracing::warn!(
            "some audit events could not be sent to the broker before exiting ({why}); they stay \
             in the spool and the next `countersign mcp` sends them"
        );
    }
}
