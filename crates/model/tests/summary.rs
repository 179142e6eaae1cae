//! A reviewer's summary of an action is chosen by its kind, never by the keys its details hold.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

use countersign_model::{Action, Chain, PrincipalKind, Summary, summary};
use serde_json::{Value, json};

fn action(kind: &str, details: Value) -> Action {
    Action {
        kind: kind.into(),
        resource: "mcp:fs/run".into(),
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

#[test]
fn only_shell_exec_is_its_command_line_and_only_sql_statement_its_sql() {
    let shell = action(
        "shell.exec",
        json!({"argv": ["pg_dump", "customers"], "cwd": "/"}),
    );
    assert_eq!(
        summary(&shell),
        Summary::Command(vec!["pg_dump", "customers"].into())
    );
    assert_eq!(summary(&shell).line(), "pg_dump customers");

    let sql = action(
        "sql.statement",
        json!({"sql": "DELETE FROM customers", "argv": ["ls"]}),
    );
    assert_eq!(summary(&sql), Summary::Sql("DELETE FROM customers"));
}

#[test]
fn a_command_shows_the_environment_and_the_hashes_that_decide_what_runs() {
    let hash = "ab".repeat(32);
    let shell = action(
        "shell.exec",
        json!({"argv": ["sh", "deploy.sh"], "cwd": "/srv", "program": "/usr/bin/sh",
               "program_sha256": hash,
               "env": {"PATH": "/usr/bin:/bin", "LD_PRELOAD": "/tmp/my lib.so"},
               "script": {"path": "/srv/deploy.sh", "sha256": hash}}),
    );
    let Summary::Command(command) = summary(&shell) else {
        panic!("a shell.exec with an argv is its command line");
    };
    assert_eq!(
        &*command,
        ["sh", "deploy.sh"],
        "the arguments are the argv alone"
    );
    assert_eq!(
        summary(&shell).line(),
        format!(
            "sh deploy.sh # program sha256:{hash}; script /srv/deploy.sh sha256:{hash}; env \
             LD_PRELOAD='/tmp/my lib.so' PATH=/usr/bin:/bin"
        )
    );
    // An argument cannot pass for what follows the command: its `#` is quoted.
    let forged = action(
        "shell.exec",
        json!({"argv": ["sh", "#", "env", "PATH=/usr/bin"], "env": {"LD_PRELOAD": "/x.so"}}),
    );
    assert_eq!(
        summary(&forged).line(),
        "sh '#' env PATH=/usr/bin # env LD_PRELOAD=/x.so"
    );
    // Anything not of its shape: every detail is shown as sent, nothing is hidden.
    for bad in [
        json!({"argv": ["sh"], "env": {"LD_PRELOAD": 1}}),
        json!({"argv": ["sh"], "env": "LD_PRELOAD=/x.so"}),
        json!({"argv": ["sh"], "program_sha256": 7}),
        json!({"argv": ["sh"], "script": {"path": "/x"}}),
    ] {
        let shell = action("shell.exec", bad.clone());
        assert_eq!(summary(&shell), Summary::Details(&bad));
    }
}

#[test]
fn a_tool_call_with_an_argv_or_sql_argument_shows_every_argument() {
    let details =
        json!({"argv": ["ls"], "sql": "select 1", "path": "/etc/shadow", "mode": "delete"});
    let call = action("mcp.tool_call", details.clone());
    assert_eq!(summary(&call), Summary::Details(&details));
    assert_eq!(
        summary(&call).line(),
        r#"{"argv":["ls"],"mode":"delete","path":"/etc/shadow","sql":"select 1"}"#
    );
}

#[test]
fn a_known_kind_without_its_shape_shows_every_detail() {
    let details = json!({"argv": "rm -rf /", "other": 1});
    let shell = action("shell.exec", details.clone());
    assert_eq!(summary(&shell), Summary::Details(&details));
    let details = json!({"query": "DROP TABLE t"});
    let sql = action("sql.statement", details.clone());
    assert_eq!(summary(&sql), Summary::Details(&details));
}

#[test]
fn a_reviewer_in_the_chain_is_told_how() {
    let mut chain = action("shell.exec", json!({})).principal;
    chain.on_behalf_of = vec!["alice".into()];
    chain.started_by = Some("ci-42".into());
    use countersign_model::summary::own_chain;
    assert_eq!(
        own_chain(&chain, "alice").as_deref(),
        Some("deploy-bot acts for you")
    );
    assert_eq!(
        own_chain(&chain, "ci-42").as_deref(),
        Some("you started deploy-bot")
    );
    assert_eq!(
        own_chain(&chain, "deploy-bot").as_deref(),
        Some("you asked for it yourself")
    );
    assert_eq!(own_chain(&chain, "dana"), None);
}
