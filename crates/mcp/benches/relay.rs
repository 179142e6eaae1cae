//! The MCP proxy's own work on an allowed tool call, without the processes around it: run with
//! `cargo bench -p countersign-mcp --bench relay`.
//!
//! - `classify`: finding a `tools/call` in a client's line (the only parse the proxy does);
//! - `check`: deciding the call with the local policy, digest included, and appending its
//!   `action.allowed` event to the audit spool (a real file: one `write` per call);
//! - `relay`: a whole line from the client through the stdio relay to the server's pipe (here a
//!   sink), which is `classify` + `check` + the write.
//!
//! What `bench/mcp.sh` measures end to end is this plus the pipe or socket hops and the wake-ups
//! of the processes on either side.

// A benchmark should stop loudly when its setup is wrong.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use countersign_client::Client;
use countersign_mcp::gate::{Check, Gate, GateConfig};
use countersign_mcp::message::{self, Inbound};
use countersign_mcp::spool::Spool;
use countersign_mcp::stdio::Relay;
use countersign_model::{Chain, PrincipalKind};
use countersign_policy::Policy;
use criterion::Criterion;

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

const LINE: &[u8] = br#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"echo","arguments":{"message":"ping"},"_meta":{"progressToken":42}}}
"#;

fn gate(dir: &std::path::Path) -> Gate {
    Gate::offline(
        GateConfig {
            server: "everything".into(),
            labels: Default::default(),
            policy_refresh: Duration::from_secs(5),
            policy_max_age: Duration::from_secs(3600),
        },
        Chain {
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

fn main() {
    let dir = std::env::temp_dir().join(format!("countersign-relay-bench-{}", std::process::id()));
    let mut criterion = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(3));

    criterion.bench_function("classify", |b| {
        b.iter(|| black_box(message::classify(black_box(LINE))));
    });

    let gate = Arc::new(gate(&dir.join("check")));
    let Inbound::ToolCall(call) = message::classify(LINE) else {
        panic!("the bench line is not a tools/call");
    };
    criterion.bench_function("check", |b| {
        b.iter(|| assert!(matches!(gate.check(black_box(&call)), Check::Allow)));
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let relay = Relay::new(
        Arc::new(self::gate(&dir.join("relay"))),
        Box::new(std::io::sink()),
        Box::new(std::io::sink()),
        runtime.handle().clone(),
    );
    criterion.bench_function("relay", |b| {
        b.iter(|| relay.from_client(black_box(LINE)));
    });

    criterion.final_summary();
    let _ = std::fs::remove_dir_all(&dir);
}
