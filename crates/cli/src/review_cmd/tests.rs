//! What a reviewer reads: the pending table, a request in full, the result of a review.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

use countersign_client::{RequestView, Verdict};
use countersign_model::Timestamp;
use serde_json::json;

use super::{pending_table, render_request, review_result};

fn view(id_digit: char, argv: serde_json::Value) -> RequestView {
    serde_json::from_value(json!({
        "id": format!("r_{}", id_digit.to_string().repeat(32)),
        "state": "pending",
        "digest": format!("sha256:{}", "ab".repeat(32)),
        "action": {
            "kind": "shell.exec", "resource": "db:prod/customers", "labels": {"env": "production"},
            "details": {"argv": argv},
            "principal": {"id": "deploy-bot", "kind": "agent", "on_behalf_of": ["alice"]},
            "justification": "nightly\n\u{1b}[31mexport"
        },
        "rules": ["prod-db-export"],
        "explanation": "deploy-bot (agent), acting for alice, asked to run `pg_dump customers`.",
        "requirements": [{"rule": "prod-db-export", "groups": ["dba", "sre"], "principals": [], "count": 2, "distinct_groups": 2, "denials": 1}],
        "progress": [{"rule": "prod-db-export", "approved_by": ["dana"], "needed": 2, "groups_covered": 1, "groups_needed": 2, "denied_by": [], "denials_needed": 1, "satisfied": false, "rejected": false}],
        "reviews": [{"reviewer": "dana", "verdict": "approve", "comment": "ok by me", "channel": "cli", "authentication": "api_token", "at": "2026-11-21T16:09:00.000Z"}],
        "created_at": "2026-11-21T16:08:00.000Z",
        "expires_at": "2026-11-21T16:38:00.000Z",
        "decided_at": null, "decided_by": null,
        "summary": "waiting for 1 more approval from members of dba or sre",
        "grant": null
    }))
    .unwrap()
}

fn now() -> Timestamp {
    "2026-11-21T16:10:00.000Z".parse().unwrap()
}

#[test]
fn the_pending_table_has_a_row_per_request_in_aligned_columns() {
    let requests = [
        view('1', json!(["pg_dump", "customers"])),
        view('2', json!(["psql", "-c", "select 1"])),
    ];
    assert_eq!(
        pending_table(&requests, now()),
        "\
ID                                  REQUESTER             ACTION                                     RULE            QUORUM            EXPIRES IN
r_11111111111111111111111111111111  deploy-bot for alice  `pg_dump customers` on db:prod/customers   prod-db-export  1/2 (1/2 groups)  28m
r_22222222222222222222222222222222  deploy-bot for alice  `psql -c 'select 1'` on db:prod/customers  prod-db-export  1/2 (1/2 groups)  28m
"
    );
}

#[test]
fn show_prints_every_field_with_untrusted_text_escaped() {
    let view = view('1', json!(["pg_dump", "customers"]));
    let text = render_request(&view, "http://127.0.0.1:8750/requests/r_1", now());
    for line in [
        "request        r_11111111111111111111111111111111\n",
        "state          pending\n",
        "requester      deploy-bot (agent), acting for alice\n",
        "action         shell.exec on db:prod/customers\n",
        "labels         env=production\n",
        "runs           `pg_dump customers`\n",
        "justification  (the requester's own words) \"nightly\\n\\u{1b}[31mexport\"\n",
        "requires       2 approvals from members of dba or sre, covering at least 2 of those groups (rule prod-db-export)\n",
        "progress       1/2 approvals (dana), 1/2 groups, no denials yet (a denial ends it): open (rule prod-db-export)\n",
        "review         2026-11-21T16:09:00.000Z dana approve via cli (api_token): \"ok by me\"\n",
        "expires        2026-11-21T16:38:00.000Z (in 28m)\n",
        "link           http://127.0.0.1:8750/requests/r_1\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(
        text.ends_with("asked to run `pg_dump customers`.\n"),
        "{text}"
    );
}

#[test]
fn a_review_prints_the_new_state_and_the_summary() {
    let view = view('1', json!(["pg_dump", "customers"]));
    assert_eq!(
        review_result(&view, Verdict::Approve),
        "recorded your approval of request r_11111111111111111111111111111111; it is now \
         pending\nwaiting for 1 more approval from members of dba or sre\n"
    );
}

/// A view whose agent claimed `claims` about its action.
fn claiming(claims: serde_json::Value) -> RequestView {
    let mut view = view('1', json!(["terraform", "apply"]));
    view.action.claims = serde_json::from_value(claims).unwrap();
    view
}

#[test]
fn show_marks_the_claims_as_the_agents_words_and_warns_of_each_disagreement() {
    let view = claiming(json!({"env": "staging", "ticket": "OPS-1"}));
    let text = render_request(&view, "http://127.0.0.1:8750/requests/r_1", now());
    for line in [
        "labels         env=production\n",
        "claims         the agent says: env=staging, ticket=OPS-1\n",
        "WARNING        the agent says env=staging; Countersign's configuration says env=production — the configuration wins\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert_eq!(text.matches("WARNING").count(), 1, "{text}");

    // Agreeing claims are shown, and warned about never; no claims, no line.
    let agreeing = render_request(&claiming(json!({"env": "production"})), "", now());
    assert!(agreeing.contains("claims         the agent says: env=production\n"));
    assert!(!agreeing.contains("WARNING"), "{agreeing}");
    let none = render_request(&claiming(json!({})), "", now());
    assert!(
        !none.contains("claims ") && !none.contains("WARNING"),
        "{none}"
    );
}

#[test]
fn a_claim_cannot_drive_the_terminal_or_forge_a_field() {
    let view = claiming(json!({
        "env": "staging\nstate          approved\u{1b}[2J\u{202e}"
    }));
    let text = render_request(&view, "", now());
    assert!(!text.contains(['\u{1b}', '\u{202e}']), "{text}");
    assert!(!text.contains("\nstate          approved"), "{text}");
    assert!(
        text.contains(
            "claims         the agent says: env=staging\\nstate          approved\\u{1b}[2J\\u{202e}\n"
        ),
        "{text}"
    );
    // The pending table flags the disagreement under the rows, escaped the same way.
    let table = pending_table(&[view], now());
    assert!(
        table.ends_with(
            "WARNING r_11111111111111111111111111111111: the agent says env=staging\\nstate          approved\\u{1b}[2J\\u{202e}; Countersign's configuration says env=production — the configuration wins\n"
        ),
        "{table}"
    );
    assert_eq!(table.lines().count(), 3, "{table}");
}
