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

use countersign_mcp::gate::Check;
use countersign_mcp::message::{self, Inbound};
use countersign_mcp::stdio::Relay;
use countersign_test_support::mcp as support;
use criterion::Criterion;

const LINE: &[u8] = br#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"echo","arguments":{"message":"ping"},"_meta":{"progressToken":42}}}
"#;

fn main() {
    let dir = std::env::temp_dir().join(format!("countersign-relay-bench-{}", std::process::id()));
    let mut criterion = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(3));

    criterion.bench_function("classify", |b| {
        b.iter(|| black_box(message::classify(black_box(LINE))));
    });

    let gate = Arc::new(support::echo_gate(
        &dir.join("check"),
        Duration::from_secs(3600),
    ));
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
        Arc::new(support::echo_gate(
            &dir.join("relay"),
            Duration::from_secs(3600),
        )),
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
