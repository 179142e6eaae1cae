//! Actions: validation, digests and the shapes enforcement points send.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

use countersign_model::action::shell_join;
use countersign_model::claims::says;
use countersign_model::{Action, ActionError, Chain, Disagreement, PrincipalKind, disagreements};
use proptest::prelude::*;
use serde_json::{Value, json};

fn action(details: Value) -> Action {
    Action {
        kind: "shell.exec".into(),
        resource: "db:prod/customers".into(),
        claims: Default::default(),
        labels: [("env".to_owned(), "production".to_owned())].into(),
        details,
        principal: Chain {
            via: None,
            id: "deploy-bot".into(),
            kind: PrincipalKind::Agent,
            on_behalf_of: vec!["alice".into()],
            started_by: Some("ci-42".into()),
        },
        justification: Some("nightly backup".into()),
    }
}

#[test]
fn claims_are_not_in_the_digest_and_each_disagreement_with_a_label_is_named() {
    let a = action(json!({"argv": ["terraform", "apply"]}));
    let mut b = a.clone();
    b.claims = [
        ("env".to_owned(), "staging".to_owned()),
        ("team".to_owned(), "data".to_owned()),
    ]
    .into();
    assert_eq!(a.digest().unwrap(), b.digest().unwrap());
    assert_eq!(
        disagreements(&b.labels, &b.claims),
        [Disagreement {
            key: "env",
            label: "production",
            claim: "staging"
        }]
    );
    // Every channel words them the same way.
    assert_eq!(
        says(&b.claims).as_deref(),
        Some("the agent says: env=staging, team=data")
    );
    assert_eq!(says(&a.claims), None);
    assert_eq!(
        disagreements(&b.labels, &b.claims)[0].warning(),
        "the agent says env=staging; Countersign's configuration says env=production — the configuration wins"
    );
    b.claims.insert("bad name".into(), "x".into());
    assert_eq!(b.validate(), Err(ActionError::ClaimName("bad name".into())));
}

#[test]
fn digest_covers_what_runs_but_not_who_or_why() {
    let a = action(json!({"argv": ["pg_dump", "customers"]}));
    let mut b = a.clone();
    b.justification = Some("something else entirely".into());
    b.principal.id = "other-bot".into();
    assert_eq!(a.digest().unwrap(), b.digest().unwrap());
    b.resource = "db:prod/orders".into();
    assert_ne!(a.digest().unwrap(), b.digest().unwrap());
    assert_eq!(
        a.canonical_json().unwrap(),
        r#"{"details":{"argv":["pg_dump","customers"]},"kind":"shell.exec","labels":{"env":"production"},"resource":"db:prod/customers"}"#
    );
}

#[test]
fn validation_names_the_problem() {
    let mut a = action(json!({}));
    a.kind = "ShellExec".into();
    assert_eq!(a.validate(), Err(ActionError::Kind("ShellExec".into())));
    let mut a = action(json!([1]));
    assert_eq!(a.validate(), Err(ActionError::Details("an array")));
    a.details = json!({});
    a.principal.on_behalf_of = vec!["bad id".into()];
    assert_eq!(a.validate(), Err(ActionError::PrincipalId("bad id".into())));
    let a = action(json!({"n": 18446744073709551615u64}));
    assert!(matches!(a.validate(), Err(ActionError::Canonical(_))));
    assert!(action(json!({"argv": ["ls"]})).validate().is_ok());
}

#[test]
fn chain_members_cover_requester_principals_and_starter() {
    let a = action(json!({}));
    let members: Vec<&str> = a.principal.members().collect();
    assert_eq!(members, ["deploy-bot", "alice", "ci-42"]);
    assert!(a.principal.contains("alice"));
    assert!(!a.principal.contains("bob"));
    assert_eq!(
        a.principal.describe(),
        "deploy-bot (agent), acting for alice, started by ci-42"
    );
}

#[test]
fn a_service_the_request_came_through_is_named_but_is_no_member_of_the_chain() {
    let mut a = action(json!({}));
    a.principal.via = Some("pg-proxy".into());
    assert!(!a.principal.contains("pg-proxy"));
    assert_eq!(
        a.principal.describe(),
        "deploy-bot (agent), acting for alice, started by ci-42, via pg-proxy"
    );
    // Who asks, and through what, is not part of what runs.
    let mut direct = a.clone();
    direct.principal.via = None;
    assert_eq!(a.digest().unwrap(), direct.digest().unwrap());
}

#[test]
fn shell_join_quotes_only_what_a_shell_would_split() {
    assert_eq!(
        shell_join(["pg_dump", "-t", "customers"]),
        "pg_dump -t customers"
    );
    assert_eq!(
        shell_join(["sh", "-c", "rm -rf /; echo 'x'"]),
        r#"sh -c 'rm -rf /; echo '\''x'\'''"#
    );
    assert_eq!(shell_join(["echo", ""]), "echo ''");
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-1_000_000i64..1_000_000).prop_map(|n| json!(n)),
        "[a-z\\u{80}-\\u{2000}\"\\\\\n]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zé]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Rebuilds every object of `value` with its keys inserted in reverse order.
fn reverse_key_order(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.reverse();
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), reverse_key_order(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(reverse_key_order).collect()),
        other => other.clone(),
    }
}

proptest! {
    #[test]
    fn digest_is_stable_under_key_order(details in prop::collection::btree_map("[a-z]{1,5}", json_value(), 0..5)) {
        let details = Value::Object(details.into_iter().collect());
        let a = action(details.clone());
        let b = action(reverse_key_order(&details));
        // Reordering must also survive a trip through text, as a client would send it.
        let text = serde_json::to_string(&b).unwrap();
        let c: Action = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(a.digest().unwrap(), b.digest().unwrap());
        prop_assert_eq!(a.digest().unwrap(), c.digest().unwrap());
    }

    #[test]
    fn digest_changes_with_any_detail(
        details in prop::collection::btree_map("[a-z]{1,5}", json_value(), 1..5),
        extra in json_value(),
    ) {
        let details = Value::Object(details.into_iter().collect());
        let a = action(details.clone());
        let mut changed = details.clone();
        let key = details.as_object().unwrap().keys().next().unwrap().clone();
        let original = details[&key].clone();
        prop_assume!(original != extra);
        changed[&key] = extra;
        prop_assert_ne!(a.digest().unwrap(), action(changed).digest().unwrap());
        let mut relabelled = a.clone();
        relabelled.labels.insert("env".into(), "staging".into());
        prop_assert_ne!(a.digest().unwrap(), relabelled.digest().unwrap());
    }
}
