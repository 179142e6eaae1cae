//! Checking an OpenID Connect ID token: the signature against the provider's published keys
//! (JWKS), then `iss`, `aud` (and `azp`), `exp`, `iat` and the sign-in's `nonce`. A pure function
//! of the token, the keys, what is expected and the time, so each refusal is tested on its own.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq as _;

/// Asymmetric algorithms only: a token signed with a shared secret (HS256) or not at all is refused.
const ACCEPTED: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// How far the provider's clock may be from ours.
const LEEWAY_SECS: i64 = 60;

/// What the token must say for this sign-in.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    /// The nonce this sign-in sent in its authorization request.
    pub nonce: &'a str,
    /// Now, in seconds since the Unix epoch.
    pub now: i64,
    /// The claim that lists the person's groups, if configured.
    pub groups_claim: Option<&'a str>,
}

/// Who the provider says signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub subject: String,
    /// The email, only if the provider says it verified it (`email_verified: true`).
    pub verified_email: Option<String>,
    /// The groups claim's values (empty when not configured or absent).
    pub groups: Vec<String>,
    /// The sign-in used more than one factor (`amr` contains `mfa`, RFC 8176).
    pub mfa: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenError {
    #[error("the ID token is not a signed JSON Web Token")]
    Malformed,
    #[error(
        "the ID token is signed with {0}, which Countersign does not accept (use RS256, PS256 or ES256)"
    )]
    Algorithm(String),
    #[error(
        "the provider's published keys have no key '{0}' for the ID token; the provider may have rotated its keys"
    )]
    UnknownKey(String),
    #[error(
        "the ID token's signature does not verify with the provider's key: it was not signed by the provider, or was changed"
    )]
    Signature,
    #[error("the ID token was issued by '{found}', not by the configured issuer '{expected}'")]
    Issuer { found: String, expected: String },
    #[error(
        "the ID token is not meant for Countersign: its audience does not include the client id '{0}'"
    )]
    Audience(String),
    #[error("the ID token was issued to another client ('{0}')")]
    AuthorizedParty(String),
    #[error("the ID token expired {0} seconds ago; sign in again")]
    Expired(i64),
    #[error(
        "the ID token says it was issued in the future; check the clocks of Countersign and the provider"
    )]
    IssuedInFuture,
    #[error("the ID token has no '{0}' claim")]
    MissingClaim(&'static str),
    #[error("the ID token's nonce does not match this sign-in; start again from the sign-in page")]
    Nonce,
}

/// Verifies `token` and returns who signed in.
pub fn verify(
    token: &str,
    keys: &JwkSet,
    expected: &Expected<'_>,
) -> Result<Identity, IdTokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| IdTokenError::Malformed)?;
    if !ACCEPTED.contains(&header.alg) {
        return Err(IdTokenError::Algorithm(format!("{:?}", header.alg)));
    }
    let jwk = match &header.kid {
        Some(kid) => keys
            .find(kid)
            .ok_or_else(|| IdTokenError::UnknownKey(kid.clone()))?,
        None => match keys.keys.as_slice() {
            [only] => only,
            _ => return Err(IdTokenError::UnknownKey("(none named)".into())),
        },
    };
    let key = DecodingKey::from_jwk(jwk)
        .map_err(|_| IdTokenError::UnknownKey(header.kid.clone().unwrap_or_default()))?;
    // Only the signature is checked here; every claim is checked below, with our clock.
    let mut validation = Validation::new(header.alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let claims: Map<String, Value> = jsonwebtoken::decode(token, &key, &validation)
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => IdTokenError::Signature,
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                IdTokenError::Algorithm(format!("{:?}", header.alg))
            }
            _ => IdTokenError::Malformed,
        })?
        .claims;
    check_claims(&claims, expected)
}

fn text<'a>(claims: &'a Map<String, Value>, name: &'static str) -> Result<&'a str, IdTokenError> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .ok_or(IdTokenError::MissingClaim(name))
}

fn number(claims: &Map<String, Value>, name: &'static str) -> Result<i64, IdTokenError> {
    claims
        .get(name)
        .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
        .ok_or(IdTokenError::MissingClaim(name))
}

/// A claim that may be one string or a list of strings (`aud`, `groups`, `amr`).
fn strings(claims: &Map<String, Value>, name: &str) -> Vec<String> {
    match claims.get(name) {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn check_claims(
    claims: &Map<String, Value>,
    expected: &Expected<'_>,
) -> Result<Identity, IdTokenError> {
    let issuer = text(claims, "iss")?;
    if issuer != expected.issuer {
        return Err(IdTokenError::Issuer {
            found: issuer.to_owned(),
            expected: expected.issuer.to_owned(),
        });
    }
    let audience = strings(claims, "aud");
    if audience.is_empty() {
        return Err(IdTokenError::MissingClaim("aud"));
    }
    if !audience.iter().any(|a| a == expected.client_id) {
        return Err(IdTokenError::Audience(expected.client_id.to_owned()));
    }
    // OIDC Core 3.1.3.7: with several audiences, the authorized party must be us.
    match claims.get("azp").and_then(Value::as_str) {
        Some(azp) if azp != expected.client_id => {
            return Err(IdTokenError::AuthorizedParty(azp.to_owned()));
        }
        None if audience.len() > 1 => return Err(IdTokenError::MissingClaim("azp")),
        _ => {}
    }
    let expires = number(claims, "exp")?;
    if expires + LEEWAY_SECS <= expected.now {
        return Err(IdTokenError::Expired(expected.now - expires));
    }
    let issued = number(claims, "iat")?;
    if issued > expected.now + LEEWAY_SECS {
        return Err(IdTokenError::IssuedInFuture);
    }
    let nonce = text(claims, "nonce")?;
    if !bool::from(nonce.as_bytes().ct_eq(expected.nonce.as_bytes())) {
        return Err(IdTokenError::Nonce);
    }
    let subject = text(claims, "sub")?.to_owned();
    let verified_email = match (claims.get("email"), claims.get("email_verified")) {
        (Some(Value::String(email)), Some(Value::Bool(true))) => Some(email.clone()),
        _ => None,
    };
    Ok(Identity {
        subject,
        verified_email,
        groups: expected
            .groups_claim
            .map(|name| strings(claims, name))
            .unwrap_or_default(),
        mfa: strings(claims, "amr").iter().any(|m| m == "mfa"),
    })
}
