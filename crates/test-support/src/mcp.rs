//! What the relay's tests and its benchmark share: a gate for server-everything's `echo`, with
//! the policy in hand (no broker) and a real spool in `dir`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use countersign_client::Client;
use countersign_mcp::{Gate, GateConfig, Spool};
use countersign_model::{Chain, PrincipalKind};
use countersign_policy::Policy;

const POLICY: &str = r#"
version = 1
default = "deny"

[[rules]]
id = "echo"
decision = "allow"
reason = "Echoing changes nothing"
match.kind = "mcp.tool_call"
match.resource = "mcp:everything/echo"
"#;

/// The gate of `countersign mcp --name everything` run by deploy-bot (acting for alice), whose
/// policy allows `echo` only; its broker is never reached.
pub fn echo_gate(dir: &Path, policy_max_age: Duration) -> Gate {
    Gate::offline(
        GateConfig {
            server: "everything".into(),
            claims: Default::default(),
            policy_refresh: Duration::from_secs(5),
            policy_max_age,
        },
        Chain {
            via: None,
            id: "deploy-bot".into(),
            kind: PrincipalKind::Agent,
            on_behalf_of: vec!["alice".into()],
            started_by: None,
        },
        Policy::parse(POLICY).unwrap(),
        Client::new("http://127.0.0.1:9", "unused").unwrap(),
        Arc::new(Spool::open(dir).unwrap()),
    )
    .unwrap()
}
