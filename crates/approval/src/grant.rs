//! Grants: what an approved request yields. A grant is a short-lived token, signed with the
//! broker's Ed25519 key, bound to one request and one action digest.
//!
//! Token format: `csg1.<base64url(canonical JSON claims)>.<base64url(Ed25519 signature)>`, the
//! signature covering `csg1.<claims>`. Verification here checks the signature, the binding and
//! the lifetime; single use is the store's job (it records each grant id as consumed, atomically).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use countersign_model::canonical::to_canonical_string;
use countersign_model::ids::GrantId;
use countersign_model::{Digest, KeyError, PublicKey, RequestId, SecretKey, Timestamp};
use serde::{Deserialize, Serialize};

use crate::request::Request;

/// How long a grant stays valid unless the caller says otherwise: enough to start the action,
/// too short to hoard.
pub const DEFAULT_GRANT_TTL: Duration = Duration::from_secs(300);

const VERSION: &str = "csg1";

/// Clocks on different hosts disagree a little; a grant issued up to this far in the future is
/// still accepted.
const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// What a grant says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantClaims {
    pub grant: GrantId,
    pub request: RequestId,
    pub digest: Digest,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
    /// Which key signed it (its key id), so keys can rotate.
    pub key: String,
}

/// A signed grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub claims: GrantClaims,
    pub token: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error("the grant is malformed (expected csg1.<claims>.<signature>)")]
    Malformed,
    #[error("the grant's signature is not valid: it was altered, or signed by another key")]
    BadSignature,
    #[error(
        "the grant approves a different action ({granted}), not the one about to run ({expected})"
    )]
    WrongDigest { granted: Digest, expected: Digest },
    #[error("the grant belongs to request {granted}, not to request {expected}")]
    WrongRequest {
        granted: RequestId,
        expected: RequestId,
    },
    #[error("the grant expired at {at}; ask for a new approval")]
    Expired { at: Timestamp },
    #[error("the grant is dated {at}, in the future; check this host's clock")]
    NotYetValid { at: Timestamp },
    #[error("no grant can be issued: the request is {state}, not approved")]
    NotApproved { state: &'static str },
    #[error(
        "no grant can be issued: the approval expired unused at {at}; ask for the action again"
    )]
    ApprovalExpired { at: Timestamp },
}

impl Grant {
    /// Issues the grant for an approved request, while its approval lasts: the grant expires
    /// after `ttl`, or when the approval does if that is sooner.
    pub fn issue(
        request: &Request,
        grant: GrantId,
        now: Timestamp,
        ttl: Duration,
        key: &SecretKey,
    ) -> Result<Grant, GrantError> {
        let Some(approval_ends) = request.approval_expires_at() else {
            return Err(GrantError::NotApproved {
                state: request.state.name(),
            });
        };
        if now >= approval_ends {
            return Err(GrantError::ApprovalExpired { at: approval_ends });
        }
        let claims = GrantClaims {
            grant,
            request: request.id,
            digest: request.digest,
            issued_at: now,
            expires_at: now.plus(ttl).min(approval_ends),
            key: key.public_key().key_id(),
        };
        Ok(Grant::sign(claims, key))
    }

    /// Signs arbitrary claims. `issue` is the way to grant a request; this is for tests and tools.
    pub fn sign(claims: GrantClaims, key: &SecretKey) -> Grant {
        // INVARIANT: the claims hold only strings, and canonical JSON fails only on numbers.
        let json = serde_json::to_value(&claims)
            .ok()
            .and_then(|v| to_canonical_string(&v).ok())
            .unwrap_or_default();
        let signed = format!("{VERSION}.{}", B64.encode(json));
        let token = format!("{signed}.{}", key.sign(signed.as_bytes()));
        Grant { claims, token }
    }

    /// Verifies a token for the action about to run: signature, digest, request and lifetime.
    pub fn verify(
        token: &str,
        key: &PublicKey,
        expected_digest: &Digest,
        expected_request: Option<&RequestId>,
        now: Timestamp,
    ) -> Result<GrantClaims, GrantError> {
        let (signed, signature) = token.rsplit_once('.').ok_or(GrantError::Malformed)?;
        let (version, payload) = signed.split_once('.').ok_or(GrantError::Malformed)?;
        if version != VERSION {
            return Err(GrantError::Malformed);
        }
        key.verify(signed.as_bytes(), signature)
            .map_err(|e| match e {
                KeyError::MalformedSignature => GrantError::Malformed,
                _ => GrantError::BadSignature,
            })?;
        let json = B64.decode(payload).map_err(|_| GrantError::Malformed)?;
        let claims: GrantClaims =
            serde_json::from_slice(&json).map_err(|_| GrantError::Malformed)?;
        if claims.digest != *expected_digest {
            return Err(GrantError::WrongDigest {
                granted: claims.digest,
                expected: *expected_digest,
            });
        }
        if let Some(expected) = expected_request
            && claims.request != *expected
        {
            return Err(GrantError::WrongRequest {
                granted: claims.request,
                expected: *expected,
            });
        }
        if now >= claims.expires_at {
            return Err(GrantError::Expired {
                at: claims.expires_at,
            });
        }
        if claims.issued_at > now.plus(CLOCK_SKEW) {
            return Err(GrantError::NotYetValid {
                at: claims.issued_at,
            });
        }
        Ok(claims)
    }
}
