//! A real broker whose database disappears: while it runs, nothing more is acknowledged; at the
//! next start, a database that is missing, or behind the history recorded when the broker last
//! ran, is refused unless the operator says `--init`, and a lost signing key is never replaced
//! beside an existing history.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use countersign_client::{ActionRequest, Client, EvaluateResponse};
use serde_json::json;
use support::{BIN, Server, start_server, token};

fn gated(n: u32) -> ActionRequest {
    serde_json::from_value(json!({
        "kind": "shell.exec",
        "resource": "db:prod/customers",
        "details": {"argv": ["sh", "-c", format!("echo change {n}")]},
    }))
    .unwrap()
}

/// Opens a gated request and returns its id.
async fn open_request(server: &Server, n: u32) -> String {
    let agent = Client::new(&server.url, &token("deploy-bot")).unwrap();
    match agent.evaluate(&gated(n), None).await.unwrap() {
        EvaluateResponse::RequireApproval(gated) => gated.request.id.to_string(),
        other => panic!("not gated: {other:?}"),
    }
}

/// Runs `countersign serve` on the server's configuration, expecting it to refuse to start;
/// returns what it said.
fn refused_start(dir: &Path, extra: &[&str]) -> String {
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(dir.join("countersign.toml"))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            assert!(!status.success(), "{stderr}");
            return stderr;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("countersign serve started instead of refusing the lost history");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls until the broker has recorded, beside the database, a head at least `seq` events long.
fn wait_for_recorded_head(dir: &Path, seq: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let recorded = std::fs::read_to_string(dir.join("data/countersign.head"))
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .and_then(|value| value["seq"].as_u64())
            .unwrap_or(0);
        if recorded >= seq {
            return;
        }
        assert!(Instant::now() < deadline, "the head was never recorded");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn remove_database(dir: &Path) {
    for name in ["countersign.db", "countersign.db-wal", "countersign.db-shm"] {
        let _ = std::fs::remove_file(dir.join("data").join(name));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_database_is_noticed_while_running_and_refused_at_start_unless_init() {
    let mut server = start_server("lost-database");
    let pending = open_request(&server, 1).await;
    remove_database(&server.dir);

    // While it runs: nothing more is acknowledged, and the health check says why.
    let agent = Client::new(&server.url, &token("deploy-bot")).unwrap();
    let error = agent.evaluate(&gated(2), None).await.unwrap_err();
    assert!(
        error.to_string().contains("restore the database"),
        "{error}"
    );
    let health = reqwest::get(format!("{}/healthz", server.url))
        .await
        .unwrap();
    assert_eq!(health.status(), 503);

    // The restart refuses an empty history, and says how to go on.
    server.stop();
    let said = refused_start(&server.dir, &[]);
    assert!(said.contains("countersign.db is missing"), "{said}");
    assert!(said.contains("countersign serve --init"), "{said}");
    assert!(!server.dir.join("data/countersign.db").exists(), "{said}");

    // With --init the operator begins again, on purpose: the old request is gone.
    server.start_again_with(&["--init"]);
    let sam = Client::new(&server.url, &token("sam")).unwrap();
    assert!(sam.get_request(pending.parse().unwrap()).await.is_err());
    open_request(&server, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_write_ahead_log_is_refused_at_start_unless_init() {
    let mut server = start_server("lost-wal");
    open_request(&server, 1).await;
    wait_for_recorded_head(&server.dir, 1);
    let _ = std::fs::remove_file(server.dir.join("data/countersign.db-wal"));
    let agent = Client::new(&server.url, &token("deploy-bot")).unwrap();
    assert!(agent.evaluate(&gated(2), None).await.is_err());

    server.stop();
    let said = refused_start(&server.dir, &[]);
    assert!(said.contains("part of its history was lost"), "{said}");
    assert!(said.contains("countersign serve --init"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_signing_key_is_not_replaced_beside_a_history() {
    let mut server = start_server("lost-key");
    open_request(&server, 1).await;
    server.stop();
    let key = server.dir.join("data/signing.key");
    std::fs::remove_file(&key).unwrap();
    for extra in [&[][..], &["--init"][..]] {
        let said = refused_start(&server.dir, extra);
        assert!(said.contains("signing.key is missing"), "{said}");
        assert!(!key.exists(), "a new key was created: {said}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restarted_on_its_own_history_starts() {
    let mut server = start_server("same-history");
    let pending = open_request(&server, 1).await;
    wait_for_recorded_head(&server.dir, 1);
    server.crash_and_restart();
    let sam = Client::new(&server.url, &token("sam")).unwrap();
    sam.get_request(pending.parse().unwrap()).await.unwrap();
}
