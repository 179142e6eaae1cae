#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.
//! The ID token checks, one refusal at a time: tokens signed with test RSA keys
//! (tests/fixtures/idp-key-*.der, made for these tests only; jwks.json publishes key 1).

use countersign_web::id_token::{Expected, IdTokenError, verify};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const NOW: i64 = 1_800_000_000;
const ISSUER: &str = "https://id.example.test";
const CLIENT: &str = "countersign";
const NONCE: &str = "n-0S6_WzA2Mj";

fn keys() -> JwkSet {
    serde_json::from_str(include_str!("fixtures/jwks.json")).unwrap()
}

fn claims() -> Value {
    json!({
        "iss": ISSUER, "aud": CLIENT, "sub": "248289761001", "nonce": NONCE,
        "iat": NOW - 5, "exp": NOW + 300,
        "email": "dana@example.test", "email_verified": true,
        "groups": ["countersign-reviewers", "dba"], "amr": ["pwd", "mfa"]
    })
}

fn sign_with(key: &[u8], kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_der(key)).unwrap()
}

fn sign(claims: &Value) -> String {
    sign_with(include_bytes!("fixtures/idp-key-1.der"), "key-1", claims)
}

fn expected() -> Expected<'static> {
    Expected {
        issuer: ISSUER,
        client_id: CLIENT,
        nonce: NONCE,
        now: NOW,
        groups_claim: Some("groups"),
    }
}

fn check(claims: &Value) -> Result<countersign_web::id_token::Identity, IdTokenError> {
    verify(&sign(claims), &keys(), &expected())
}

fn with(change: impl FnOnce(&mut Value)) -> Value {
    let mut c = claims();
    change(&mut c);
    c
}

#[test]
fn a_good_token_names_the_subject_the_verified_email_the_groups_and_mfa() {
    let identity = check(&claims()).unwrap();
    assert_eq!(identity.subject, "248289761001");
    assert_eq!(
        identity.verified_email.as_deref(),
        Some("dana@example.test")
    );
    assert_eq!(identity.groups, ["countersign-reviewers", "dba"]);
    assert!(identity.mfa);
}

#[test]
fn an_unverified_email_is_not_used() {
    let identity = check(&with(|c| c["email_verified"] = json!(false))).unwrap();
    assert_eq!(identity.verified_email, None);
    let identity = check(&with(|c| {
        c.as_object_mut().unwrap().remove("email_verified");
    }))
    .unwrap();
    assert_eq!(identity.verified_email, None);
}

#[test]
fn a_token_signed_by_another_key_is_refused() {
    let forged = sign_with(include_bytes!("fixtures/idp-key-2.der"), "key-1", &claims());
    assert_eq!(
        verify(&forged, &keys(), &expected()),
        Err(IdTokenError::Signature)
    );
}

#[test]
fn a_token_changed_after_signing_is_refused() {
    let token = sign(&claims());
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut payload: Value = serde_json::from_slice(&engine.decode(&parts[1]).unwrap()).unwrap();
    payload["email"] = json!("sam@example.test");
    parts[1] = engine.encode(serde_json::to_vec(&payload).unwrap());
    assert_eq!(
        verify(&parts.join("."), &keys(), &expected()),
        Err(IdTokenError::Signature)
    );
}

#[test]
fn a_key_the_provider_did_not_publish_is_unknown() {
    let token = sign_with(include_bytes!("fixtures/idp-key-2.der"), "key-2", &claims());
    assert_eq!(
        verify(&token, &keys(), &expected()),
        Err(IdTokenError::UnknownKey("key-2".into()))
    );
}

#[test]
fn unsigned_and_shared_secret_tokens_are_refused() {
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(b"secret"),
    )
    .unwrap();
    assert!(matches!(
        verify(&hs, &keys(), &expected()),
        Err(IdTokenError::Algorithm(_))
    ));
    let none = format!("eyJhbGciOiJub25lIn0.{}.", hs.split('.').nth(1).unwrap());
    assert!(verify(&none, &keys(), &expected()).is_err());
    assert_eq!(
        verify("not a token", &keys(), &expected()),
        Err(IdTokenError::Malformed)
    );
}

#[test]
fn the_wrong_issuer_is_refused() {
    let error = check(&with(|c| c["iss"] = json!("https://evil.example.test"))).unwrap_err();
    assert_eq!(
        error.to_string(),
        "the ID token was issued by 'https://evil.example.test', not by the configured issuer 'https://id.example.test'"
    );
}

#[test]
fn the_wrong_audience_is_refused_and_several_need_the_right_authorized_party() {
    assert_eq!(
        check(&with(|c| c["aud"] = json!("another-app"))),
        Err(IdTokenError::Audience(CLIENT.into()))
    );
    assert_eq!(
        check(&with(|c| c["aud"] = json!([CLIENT, "another-app"]))),
        Err(IdTokenError::MissingClaim("azp"))
    );
    assert_eq!(
        check(&with(|c| {
            c["aud"] = json!([CLIENT, "another-app"]);
            c["azp"] = json!("another-app");
        })),
        Err(IdTokenError::AuthorizedParty("another-app".into()))
    );
    assert!(
        check(&with(|c| {
            c["aud"] = json!([CLIENT, "another-app"]);
            c["azp"] = json!(CLIENT);
        }))
        .is_ok()
    );
}

#[test]
fn an_expired_token_is_refused_past_the_clock_leeway() {
    assert!(
        check(&with(|c| c["exp"] = json!(NOW - 30))).is_ok(),
        "within a minute of skew"
    );
    assert_eq!(
        check(&with(|c| c["exp"] = json!(NOW - 600))),
        Err(IdTokenError::Expired(600))
    );
    let missing = with(|c| {
        c.as_object_mut().unwrap().remove("exp");
    });
    assert_eq!(check(&missing), Err(IdTokenError::MissingClaim("exp")));
}

#[test]
fn a_token_issued_in_the_future_is_refused() {
    assert_eq!(
        check(&with(|c| c["iat"] = json!(NOW + 3600))),
        Err(IdTokenError::IssuedInFuture)
    );
    let missing = with(|c| {
        c.as_object_mut().unwrap().remove("iat");
    });
    assert_eq!(check(&missing), Err(IdTokenError::MissingClaim("iat")));
}

#[test]
fn another_sign_ins_nonce_is_refused() {
    assert_eq!(
        check(&with(|c| c["nonce"] = json!("replayed-nonce"))),
        Err(IdTokenError::Nonce)
    );
    let missing = with(|c| {
        c.as_object_mut().unwrap().remove("nonce");
    });
    assert_eq!(check(&missing), Err(IdTokenError::MissingClaim("nonce")));
}

#[test]
fn pkce_uses_s256() {
    // RFC 7636, appendix B.
    assert_eq!(
        countersign_web::pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
}
