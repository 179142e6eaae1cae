//! Grants: issued only for approved requests, bound to one request and one action digest,
//! refused when expired, altered or signed by another key.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use countersign_approval::{
    Authentication, Channel, Event, Grant, GrantError, Lapse, Request, Review, Reviewer, Verdict,
};
use countersign_model::ids::GrantId;
use countersign_model::{Action, Chain, PrincipalKind, RequestId, SecretKey, Timestamp};
use countersign_policy::{Decision, Outcome, Requirement};
use serde_json::json;

fn now(secs: i64) -> Timestamp {
    Timestamp::from_unix_millis(1_795_277_280_000 + secs * 1000)
}

fn approved_request() -> Request {
    let action = Action {
        kind: "shell.exec".into(),
        resource: "k8s:prod/payments".into(),
        claims: Default::default(),
        labels: BTreeMap::new(),
        details: json!({"argv": ["kubectl", "delete", "pod", "payments-0"]}),
        principal: Chain {
            via: None,
            id: "deploy-bot".into(),
            kind: PrincipalKind::Agent,
            on_behalf_of: vec![],
            started_by: None,
        },
        justification: None,
    };
    let decision = Decision {
        outcome: Outcome::RequireApproval,
        rules: vec!["kubectl-prod-change".into()],
        requirements: vec![Requirement {
            rule: "kubectl-prod-change".into(),
            groups: vec!["sre".into()],
            principals: vec![],
            count: 1,
            distinct_groups: 0,
            denials: 1,
        }],
        timeout_seconds: Some(600),
        approval_ttl_seconds: None,
        condition_failures: vec![],
        explanation: String::new(),
    };
    let request = Request::open(RequestId::from_random([9; 16]), action, decision, now(0)).unwrap();
    request
        .apply(&Event::Review(Review {
            reviewer: Reviewer {
                id: "sam".into(),
                kind: PrincipalKind::Human,
                groups: ["sre".to_owned()].into(),
                authentication: Authentication::Oidc,
            },
            verdict: Verdict::Approve,
            comment: Some("looks right".into()),
            channel: Channel::Web,
            at: now(5),
        }))
        .unwrap()
}

fn issue(request: &Request, key: &SecretKey) -> Grant {
    Grant::issue(
        request,
        GrantId::from_random([3; 16]),
        now(10),
        Duration::from_secs(300),
        key,
    )
    .unwrap()
}

#[test]
fn a_grant_verifies_for_its_own_action_and_request() {
    let key = SecretKey::from_seed([1; 32]);
    let request = approved_request();
    let grant = issue(&request, &key);
    let claims = Grant::verify(
        &grant.token,
        &key.public_key(),
        &request.digest,
        Some(&request.id),
        now(11),
    )
    .unwrap();
    assert_eq!(claims, grant.claims);
    assert_eq!(claims.expires_at, now(310));
    assert_eq!(claims.key, key.public_key().key_id());
}

#[test]
fn a_grant_for_one_action_never_lets_another_run() {
    let key = SecretKey::from_seed([1; 32]);
    let request = approved_request();
    let grant = issue(&request, &key);
    let mut other = request.action.clone();
    other.details = json!({"argv": ["kubectl", "delete", "namespace", "payments"]});
    let other_digest = other.digest().unwrap();
    let error = Grant::verify(
        &grant.token,
        &key.public_key(),
        &other_digest,
        None,
        now(11),
    )
    .unwrap_err();
    assert_eq!(
        error,
        GrantError::WrongDigest {
            granted: request.digest,
            expected: other_digest
        }
    );
    let other_request = RequestId::from_random([8; 16]);
    let error = Grant::verify(
        &grant.token,
        &key.public_key(),
        &request.digest,
        Some(&other_request),
        now(11),
    )
    .unwrap_err();
    assert!(matches!(error, GrantError::WrongRequest { .. }));
}

#[test]
fn expired_future_tampered_and_foreign_grants_are_refused() {
    let key = SecretKey::from_seed([1; 32]);
    let request = approved_request();
    let grant = issue(&request, &key);
    let public = key.public_key();
    let verify =
        |token: &str, at: Timestamp| Grant::verify(token, &public, &request.digest, None, at);

    assert_eq!(
        verify(&grant.token, now(310)),
        Err(GrantError::Expired { at: now(310) })
    );
    assert_eq!(
        verify(&grant.token, now(-100)),
        Err(GrantError::NotYetValid { at: now(10) })
    );

    // Re-encode the claims with a later expiry but keep the old signature.
    let (_, payload, signature) = {
        let mut parts = grant.token.split('.');
        (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        )
    };
    let mut claims: serde_json::Value =
        serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap();
    claims["expires_at"] = json!("2099-01-01T00:00:00.000Z");
    let forged = format!("csg1.{}.{signature}", B64.encode(claims.to_string()));
    assert_eq!(verify(&forged, now(11)), Err(GrantError::BadSignature));

    let foreign = issue(&request, &SecretKey::from_seed([2; 32]));
    assert_eq!(
        verify(&foreign.token, now(11)),
        Err(GrantError::BadSignature)
    );

    for malformed in [
        "",
        "csg1",
        "csg2.e30.sig",
        "csg1.!!!.AAAA",
        &grant.token[..grant.token.len() - 3],
    ] {
        assert!(
            verify(malformed, now(11)).is_err(),
            "{malformed:?} was accepted"
        );
    }
}

#[test]
fn only_approved_requests_yield_grants() {
    let key = SecretKey::from_seed([1; 32]);
    let mut pending = approved_request();
    pending.state = countersign_approval::State::Pending;
    let error = Grant::issue(
        &pending,
        GrantId::from_random([3; 16]),
        now(10),
        Duration::from_secs(60),
        &key,
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "no grant can be issued: the request is pending, not approved"
    );
}

#[test]
fn a_grant_lasts_no_longer_than_its_approval_and_none_is_issued_after_it() {
    let key = SecretKey::from_seed([1; 32]);
    // Approved at 5s; the rule names no approval_ttl, so the approval lasts the default 15 minutes.
    let request = approved_request();
    assert_eq!(request.approval_expires_at(), Some(now(905)));
    let issue_at = |secs| {
        Grant::issue(
            &request,
            GrantId::from_random([3; 16]),
            now(secs),
            Duration::from_secs(300),
            &key,
        )
    };
    assert_eq!(issue_at(800).unwrap().claims.expires_at, now(905));
    assert_eq!(
        issue_at(905).unwrap_err(),
        GrantError::ApprovalExpired { at: now(905) }
    );
    let mut short = request.clone();
    short.decision.approval_ttl_seconds = Some(60);
    assert_eq!(short.approval_expires_at(), Some(now(65)));
}

#[test]
fn an_approval_stands_only_while_the_policy_in_force_agrees() {
    let request = approved_request();
    let id = request.id;
    let same = request.decision.clone();
    assert_eq!(request.approval_in_force(&same, now(10)), Ok(()));
    let allowed = Decision {
        outcome: Outcome::Allow,
        requirements: vec![],
        ..same.clone()
    };
    assert_eq!(request.approval_in_force(&allowed, now(10)), Ok(()));

    let denied = Decision {
        outcome: Outcome::Deny,
        rules: vec!["freeze".into()],
        requirements: vec![],
        explanation: "Production is frozen.".into(),
        ..same.clone()
    };
    let lapse = request.approval_in_force(&denied, now(10)).unwrap_err();
    assert_eq!(
        lapse.to_string(),
        format!(
            "the policy in force now denies this action (rule freeze): Production is frozen. The \
             approval of request {id} no longer lets it run"
        )
    );

    let mut stricter = same.clone();
    stricter.requirements[0].count = 2;
    assert!(matches!(
        request.approval_in_force(&stricter, now(10)),
        Err(Lapse::RequirementsUnmet { .. })
    ));
    // sam approved as a member of sre; a policy that now wants dba does not count him.
    let mut elsewhere = same.clone();
    elsewhere.requirements[0].groups = vec!["dba".into()];
    let lapse = request.approval_in_force(&elsewhere, now(10)).unwrap_err();
    assert!(
        lapse
            .to_string()
            .starts_with("the policy in force now requires 1 approval from members of dba"),
        "{lapse}"
    );

    assert_eq!(
        request.approval_in_force(&same, now(905)),
        Err(Lapse::Expired {
            request: id,
            at: now(905)
        })
    );
    let mut pending = request.clone();
    pending.state = countersign_approval::State::Pending;
    assert_eq!(
        pending.approval_in_force(&same, now(10)),
        Err(Lapse::NotApproved {
            request: id,
            state: "pending"
        })
    );
}
