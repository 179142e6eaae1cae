//! An enforcement point's background work: shipping the audit spool to the broker and keeping
//! the gate's policy fresh, started once and stopped at exit with a limit on how long the last
//! shipment may take.

use std::sync::Arc;
use std::time::Duration;

use countersign_client::Client;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::gate::Gate;
use crate::spool::{Shipper, SinkError};

#[derive(Debug)]
pub struct Background {
    stop: watch::Sender<bool>,
    shipper: JoinHandle<Shipper<Client>>,
    policy: JoinHandle<()>,
    /// Who the next process to send what is left is (`countersign mcp`).
    enforced_by: &'static str,
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
            enforced_by: gate.config().enforced_by,
        }
    }

    /// Stops, shipping what is left of the spool within `limit`; what is not shipped by then
    /// stays in the spool for the next process on it.
    pub async fn finish(self, limit: Duration) {
        self.policy.abort();
        let _ = self.stop.send(true);
        let Ok(shipper) = self.shipper.await else {
            return;
        };
        let why = match tokio::time::timeout(limit, shipper.finish()).await {
            Ok(Ok(())) => return,
            Ok(Err(SinkError::Retry(why) | SinkError::Reject(why))) => why,
            Err(_) => format!("the broker did not take them within {limit:?}"),
        };
        tracing::warn!(
            "some audit events could not be sent to the broker before exiting ({why}); they stay \
             in the spool and the next `{}` sends them",
            self.enforced_by
        );
    }
}
