//! A `shell.exec` is compared with the same agent's last request for the same program, in
//! Countersign's words, with the agent's text made inert.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

use countersign_model::{Action, Chain, PrincipalKind, changes_from};
use serde_json::{Value, json};

fn exec(details: Value) -> Action {
    Action {
        kind: "shell.exec".into(),
        resource: "host:deploy".into(),
        claims: Default::default(),
        labels: Default::default(),
        details,
        principal: Chain {
            via: None,
            id: "deploy-bot".into(),
            kind: PrincipalKind::Agent,
            on_behalf_of: vec![],
            started_by: None,
        },
        justification: None,
    }
}

fn usual() -> Value {
    json!({
        "argv": ["terraform", "apply"], "program": "/usr/bin/terraform",
        "program_sha256": "sha256:ab12", "cwd": "/srv/a",
        "script": {"path": "./deploy.sh", "sha256": "sha256:01"},
        "env": {"PATH": "/usr/bin", "KUBECONFIG": "/k"}
    })
}

#[test]
fn the_same_request_differs_in_nothing() {
    assert!(changes_from(&exec(usual()), &exec(usual())).is_empty());
}

#[test]
fn every_difference_is_one_sentence() {
    let now = exec(json!({
        "argv": ["terraform", "apply"], "program": "/usr/bin/terraform",
        "program_sha256": "sha256:cd34", "cwd": "/srv/b",
        "script": {"path": "./deploy.sh", "sha256": "sha256:02"},
        "env": {"PATH": "/tmp:/usr/bin", "LD_PRELOAD": "/tmp/x.so"}
    }));
    assert_eq!(
        changes_from(&exec(usual()), &now),
        vec![
            "the program's SHA-256 differs from deploy-bot's last request for /usr/bin/terraform (sha256:ab12 then)",
            "the script ./deploy.sh changed",
            "LD_PRELOAD is set (it was not)",
            "PATH differs",
            "KUBECONFIG is no longer set",
            "the working directory differs (/srv/a then)",
        ]
    );
}

#[test]
fn another_program_or_kind_is_not_compared() {
    let mut other = usual();
    other["program"] = json!("/usr/bin/kubectl");
    other["cwd"] = json!("/elsewhere");
    assert!(changes_from(&exec(usual()), &exec(other)).is_empty());
    let mut tool = exec(usual());
    tool.kind = "mcp.tool_call".into();
    assert!(changes_from(&tool, &exec(json!({"program": "/usr/bin/terraform"}))).is_empty());
}

#[test]
fn the_agents_text_is_inert_and_short() {
    let mut now = usual();
    now["env"]["EVIL\u{202e}X"] = json!("1");
    now["cwd"] = json!("/srv/a\n");
    let long = "x".repeat(500);
    let mut then = usual();
    then["cwd"] = json!(long);
    let changes = changes_from(&exec(then), &exec(now));
    assert!(changes.contains(&"EVIL\\u{202e}X is set (it was not)".to_owned()));
    let cwd = changes
        .iter()
        .find(|c| c.starts_with("the working"))
        .unwrap();
    assert!(cwd.chars().count() < 150 && cwd.contains('…'), "{cwd}");
}

#[test]
fn recorded_sentences_are_read_back_inert() {
    let data = json!({"unusual": ["PATH differs", "X\u{202e} is set (it was not)", 7]});
    assert_eq!(
        countersign_model::usual::recorded(&data),
        vec!["PATH differs", "X\\u{202e} is set (it was not)"]
    );
    assert!(countersign_model::usual::recorded(&json!({})).is_empty());
    assert_eq!(
        countersign_model::usual::caption("deploy-bot"),
        "Differs from deploy-bot's last request for this program (Countersign's comparison)"
    );
}
