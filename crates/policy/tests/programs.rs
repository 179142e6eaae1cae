//! The program a command runs, as decisions see it: the explanation names the file, so a
//! reviewer reading `pg_dump customers` knows which `pg_dump`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

use countersign_model::{Action, Chain, PrincipalKind};
use countersign_policy::{Outcome, Policy};
use serde_json::json;

const POLICY: &str = r#"
version = 1
default = "deny"

[[rules]]
id = "dump"
decision = "require_approval"
reason = "Dumps leave the database"
match.kind = "shell.exec"
match.command = "pg_dump *"
approvers = { groups = ["dba"] }
"#;

#[test]
fn the_explanation_names_the_program_that_runs() {
    let action = Action {
        kind: "shell.exec".into(),
        resource: "db:prod".into(),
        labels: Default::default(),
        claims: Default::default(),
        details: json!({"argv": ["pg_dump", "customers"], "program": "/home/agent/bin/pg_dump"}),
        principal: Chain {
            via: None,
            id: "bot".into(),
            kind: PrincipalKind::Agent,
            on_behalf_of: vec![],
            started_by: None,
        },
        justification: None,
    };
    let decision = Policy::parse(POLICY).unwrap().decide(&action);
    assert_eq!(decision.outcome, Outcome::RequireApproval);
    assert!(
        decision.explanation.starts_with(
            "bot (agent) asked to run `pg_dump customers` (the program /home/agent/bin/pg_dump) \
             on db:prod."
        ),
        "{}",
        decision.explanation
    );
}
