//! `match.sql` never matches across statements, whichever way the server reads quotes and
//! comments: an allow rule must fit every statement, a deny rule catches any one of them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

use countersign_model::{Action, Chain, PrincipalKind};
use countersign_policy::{Outcome, Policy};
use serde_json::json;

const POLICY: &str = r#"
version = 1
default = "deny"

[[rules]]
id = "reads"
decision = "allow"
reason = "Reading queries"
match.kind = "sql.statement"
match.sql = "select *"

[[rules]]
id = "drops"
decision = "deny"
reason = "Nothing is dropped"
match.kind = "sql.statement"
match.sql = "drop *"
"#;

fn decide(sql: &str) -> (Outcome, Vec<String>) {
    let action = Action {
        kind: "sql.statement".into(),
        resource: "db:prod".into(),
        labels: Default::default(),
        claims: Default::default(),
        details: json!({ "sql": sql }),
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
    (decision.outcome, decision.rules)
}

#[test]
fn each_statement_is_matched_on_its_own() {
    let allowed = |sql: &str| (Outcome::Allow, vec!["reads".to_owned()], sql.to_owned());
    let dropped = |sql: &str| (Outcome::Deny, vec!["drops".to_owned()], sql.to_owned());
    let refused = |sql: &str| (Outcome::Deny, vec![], sql.to_owned());
    let cases = [
        allowed("SELECT count(*) FROM customers;"),
        allowed("select 1; SELECT 2"),
        allowed("SELECT id FROM t WHERE note = 'a; b'"),
        allowed("SELECT 'it''s; fine'"),
        allowed(r#"SELECT "odd;name" FROM t"#),
        // PostgreSQL's E'…' takes backslash escapes, so the string goes on there; to SQLite or
        // SQL Server, E is a name and '\' a string, and then comes a DROP.
        dropped(r"SELECT E'\'; DROP TABLE x; --'"),
        refused("SELECT 1; DELETE FROM customers"),
        refused("SELECT 1;DELETE FROM customers"),
        refused(""),
        refused(" ; ;"),
        refused("-- only a comment"),
        // A comment ends at the newline, whitespace collapsing or not.
        refused("SELECT 1 -- harmless\n; DELETE FROM customers"),
        dropped("SELECT 1 --\n; DROP TABLE customers"),
        dropped("/* tidy */ DROP TABLE customers"),
        dropped("SELECT 1; drop   TABLE customers;"),
        // PostgreSQL keeps a backslash literal in '…': the string ends at the second quote.
        dropped(r"SELECT 'a\'; DROP TABLE customers; --'"),
        // MySQL reads # as a comment, PostgreSQL as an operator.
        dropped("SELECT 1 # 2; DROP TABLE customers"),
        // PostgreSQL nests block comments, MySQL ends one at the first */.
        dropped("SELECT 1 /* /* */ ; DROP TABLE customers */"),
        // MySQL runs what is inside /*! … */.
        dropped("SELECT 1 /*! ; DROP TABLE customers */"),
        // A dollar-quoted body is one string to PostgreSQL; MySQL sees no quote there.
        dropped("SELECT $q$ ; $q$; DROP TABLE customers"),
        dropped("SELECT 1 /*M! ; DROP TABLE customers */"),
        // PostgreSQL with standard_conforming_strings off escapes the quote and reads # as an
        // operator.
        dropped(r"SELECT 'a\'' # ; DROP TABLE customers"),
        // MySQL needs a space after --: `--1` is minus minus one.
        dropped("SELECT 1 --1; DROP TABLE customers"),
        // One string to a server with backslash escapes, one unclosed nested comment to
        // PostgreSQL; to SQLite, SQL Server or MySQL with NO_BACKSLASH_ESCAPES, a DROP.
        dropped(r"SELECT '\' /* /* */ ; DROP TABLE customers; -- '"),
        // MySQL with NO_BACKSLASH_ESCAPES: the string ends at the second quote, # comments on.
        dropped(r"SELECT 'a\' # ' ; DROP TABLE customers"),
    ];
    for (outcome, rules, sql) in cases {
        assert_eq!(decide(&sql), (outcome, rules), "{sql:?}");
    }
}
