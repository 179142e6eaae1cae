//! A gated command's `request.created` event says how it differs from the requester's last
//! request for the same program (issue 15), and says nothing where there is no such request.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

use countersign_test_support::broker as harness;

use axum::http::StatusCode;
use harness::{pg_dump, start};
use serde_json::{Value, json};

fn dump(sha: &str, env: Value) -> Value {
    let mut action = pg_dump();
    action["details"]["program"] = json!("/usr/bin/pg_dump");
    action["details"]["program_sha256"] = json!(sha);
    action["details"]["env"] = env;
    action
}

#[tokio::test]
async fn a_changed_program_and_a_new_ld_preload_are_named_on_the_second_request_only() {
    let b = start().await;
    let mut ids = Vec::new();
    for action in [
        dump("sha256:aa", json!({"PATH": "/usr/bin"})),
        dump(
            "sha256:bb",
            json!({"PATH": "/usr/bin", "LD_PRELOAD": "/tmp/x.so"}),
        ),
    ] {
        let (status, body) = b.post("deploy-bot", "/v1/actions", action).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        ids.push(body["request"]["id"].as_str().unwrap().to_owned());
    }

    let (_, audit) = b.get("sam", "/v1/audit").await;
    let created = |id: &str| -> Value {
        audit["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["type"] == "request.created" && e["request_id"] == id)
            .unwrap_or_else(|| panic!("no request.created for {id}: {audit}"))["data"]
            .clone()
    };
    assert!(created(&ids[0]).get("unusual").is_none());
    let unusual = created(&ids[1])["unusual"].clone();
    assert_eq!(
        unusual,
        json!([
            "the program's SHA-256 differs from deploy-bot's last request for /usr/bin/pg_dump (sha256:aa then)",
            "LD_PRELOAD is set (it was not)",
        ])
    );
}
