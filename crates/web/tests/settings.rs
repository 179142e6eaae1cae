#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.
//! The `[web]` table: every mistake named with its key and the fix; and who a verified sign-in
//! is in Countersign's directory.

use std::collections::BTreeSet;
use std::sync::Arc;

use countersign_broker::Principal;
use countersign_model::PrincipalKind;
use countersign_web::id_token::Identity;
use countersign_web::{Settings, principal_for};

fn parse(text: &str) -> Result<Settings, String> {
    let table: toml::Table = toml::from_str(text).unwrap();
    Settings::parse(&table).map_err(|e| e.to_string())
}

#[test]
fn a_good_table_is_read_with_defaults() {
    let settings = parse(
        "[oidc]\nissuer = \"https://id.example.test/\"\nclient_id = \"countersign\"\nclient_secret_env = \"OIDC_SECRET\"\n",
    )
    .unwrap();
    assert!(!settings.token_sign_in);
    assert_eq!(settings.session_ttl.as_secs(), 8 * 3600);
    let oidc = settings.oidc.unwrap();
    assert_eq!(
        oidc.issuer, "https://id.example.test",
        "the trailing slash is dropped"
    );
    assert_eq!(oidc.scopes, ["openid", "email", "profile"]);
    assert!(parse("token_sign_in = true\nsession_ttl = \"30m\"").is_ok());
}

#[test]
fn each_mistake_names_the_key_and_the_fix() {
    for (text, says) in [
        (
            "",
            "the web inbox needs a way to sign in: add a [web.oidc] table (issuer, client_id) or set token_sign_in = true",
        ),
        (
            "token_sign_in = true\nsesion_ttl = \"1h\"",
            "[web]: unknown field `sesion_ttl`",
        ),
        (
            "token_sign_in = true\nsession_ttl = \"forever\"",
            "web.session_ttl:",
        ),
        (
            "token_sign_in = true\nsession_ttl = \"10s\"",
            "web.session_ttl: '10s' must be between 1m and 30d",
        ),
        (
            "[oidc]\nissuer = \"http://id.example.test\"\nclient_id = \"x\"",
            "web.oidc.issuer: 'http://id.example.test' must be an https:// URL",
        ),
        (
            "[oidc]\nissuer = \"https://id.example.test\"\nclient_id = \"\"",
            "web.oidc.client_id is empty",
        ),
        (
            "[oidc]\nissuer = \"https://id.example.test\"\nclient_id = \"x\"\nclient_secret_env = \"s3cr3t-value!\"",
            "is not an environment variable name",
        ),
        (
            "[oidc]\nissuer = \"https://id.example.test\"\nclient_id = \"x\"\nallowed_groups = [\"ops\"]",
            "web.oidc.allowed_groups needs web.oidc.groups_claim",
        ),
        (
            "[oidc]\nissuer = \"https://id.example.test\"\nclient_id = \"x\"\nscopes = [\"email profile\"]",
            "web.oidc.scopes: 'email profile' is not a scope",
        ),
        ("[oidc]\nclient_id = \"x\"", "missing field `issuer`"),
    ] {
        let error = parse(text).unwrap_err();
        assert!(error.contains(says), "{text:?}: {error}");
    }
    assert!(
        parse("[oidc]\nissuer = \"http://127.0.0.1:9000\"\nclient_id = \"x\"").is_ok(),
        "loopback http is for tests"
    );
}

fn principal(
    id: &str,
    kind: PrincipalKind,
    email: Option<&str>,
    subject: Option<&str>,
) -> Arc<Principal> {
    Arc::new(Principal {
        labels: Default::default(),
        resources: Vec::new(),
        vouches_for: None,
        id: id.into(),
        kind,
        groups: BTreeSet::new(),
        email: email.map(Into::into),
        acts_for: Vec::new(),
        started_by: None,
        admin: false,
        identities: subject
            .map(|s| [("oidc".to_owned(), s.to_owned())].into())
            .unwrap_or_default(),
    })
}

fn identity(subject: &str, email: Option<&str>, groups: &[&str]) -> Identity {
    Identity {
        subject: subject.into(),
        verified_email: email.map(Into::into),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        mfa: false,
    }
}

#[test]
fn a_sign_in_is_the_principal_with_its_subject_or_else_its_verified_email() {
    let directory = vec![
        principal(
            "deploy-bot",
            PrincipalKind::Agent,
            Some("bot@example.test"),
            None,
        ),
        principal(
            "dana",
            PrincipalKind::Human,
            Some("dana@example.test"),
            Some("sub-dana"),
        ),
        principal("sam", PrincipalKind::Human, Some("Sam@Example.test"), None),
    ];
    let settings = parse("[oidc]\nissuer = \"https://id.example.test\"\nclient_id = \"x\"")
        .unwrap()
        .oidc
        .unwrap();
    let who = |i: &Identity| principal_for(&directory, i, &settings).map(|p| p.id.clone());
    assert_eq!(who(&identity("sub-dana", None, &[])), Ok("dana".into()));
    assert_eq!(
        who(&identity("other", Some("sam@example.test"), &[])),
        Ok("sam".into())
    );
    // dana has a subject: her email alone does not sign anyone in as her.
    assert!(
        who(&identity("other", Some("dana@example.test"), &[]))
            .unwrap_err()
            .contains("no reviewer")
    );
    assert!(
        who(&identity("other", None, &[]))
            .unwrap_err()
            .contains("no verified email")
    );
    let agent = who(&identity("other", Some("bot@example.test"), &[])).unwrap_err();
    assert_eq!(
        agent,
        "deploy-bot is an agent; agents cannot sign in, only humans review requests."
    );

    let gated = parse("[oidc]\nissuer = \"https://id.example.test\"\nclient_id = \"x\"\ngroups_claim = \"groups\"\nallowed_groups = [\"reviewers\"]")
        .unwrap()
        .oidc
        .unwrap();
    let who = |i: &Identity| principal_for(&directory, i, &gated).map(|p| p.id.clone());
    assert!(
        who(&identity("sub-dana", None, &["eng"]))
            .unwrap_err()
            .contains("not in any of the groups allowed to sign in (reviewers)")
    );
    assert_eq!(
        who(&identity("sub-dana", None, &["eng", "reviewers"])),
        Ok("dana".into())
    );
}
