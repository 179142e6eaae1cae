//! The explanation reviewers read names what runs by the action's kind, as every channel sums it
//! up: a tool call's `argv` or `sql` argument is not a command it runs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

use countersign_model::{Action, Chain, PrincipalKind};
use countersign_policy::Policy;
use serde_json::{Value, json};

const POLICY: &str = r#"
version = 1
default = "deny"

[[rules]]
id = "repo-delete"
decision = "require_approval"
reason = "Deleting in a repository changes what ships"
match.kind = "mcp.tool_call"
match.resource = "mcp:github/delete_*"
approvers = { groups = ["eng"], count = 1 }
"#;

fn tool_call(arguments: Value) -> Action {
    Action {
        kind: "mcp.tool_call".into(),
        resource: "mcp:github/delete_file".into(),
        labels: Default::default(),
        claims: Default::default(),
        details: arguments,
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
fn a_tool_call_with_an_argv_argument_is_explained_with_every_argument() {
    let policy = Policy::parse(POLICY).unwrap();
    let decision = policy.decide(&tool_call(json!({"argv": ["ls"], "path": "README.md"})));
    assert!(
        decision.explanation.starts_with(
            "deploy-bot (agent) asked to call a tool with arguments `{\"argv\":[\"ls\"],\"path\":\"README.md\"}` on mcp:github/delete_file"
        ),
        "{}",
        decision.explanation
    );
    let decision = policy.decide(&tool_call(json!({"sql": "select 1", "path": "README.md"})));
    assert!(
        !decision.explanation.contains("execute the SQL"),
        "{}",
        decision.explanation
    );
}
