//! Ed25519 keys that sign grants and audit checkpoints, in a text form fit for files and flags:
//! `ed25519-secret:<base64url seed>` and `ed25519:<base64url public key>`.
//!
//! Key generation needs randomness, which this crate does not read: the caller passes 32 random
//! bytes as the seed.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::digest::Digest;

const SECRET_PREFIX: &str = "ed25519-secret:";
const PUBLIC_PREFIX: &str = "ed25519:";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "not an Ed25519 secret key (expected ed25519-secret: followed by 43 base64url characters)"
    )]
    MalformedSecret,
    #[error(
        "'{0}' is not an Ed25519 public key (expected ed25519: followed by 43 base64url characters)"
    )]
    MalformedPublic(String),
    #[error("the signature is malformed (expected 86 base64url characters)")]
    MalformedSignature,
    #[error("the signature does not match: the data was changed or signed with another key")]
    BadSignature,
}

/// A signing key. Its `Debug` output never shows the secret.
#[derive(Clone)]
pub struct SecretKey(SigningKey);

impl SecretKey {
    /// The key whose seed is `seed`, 32 bytes the caller drew from a secure random source.
    pub fn from_seed(seed: [u8; 32]) -> SecretKey {
        SecretKey(SigningKey::from_bytes(&seed))
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Signs `message`; the signature as base64url text.
    pub fn sign(&self, message: &[u8]) -> String {
        B64.encode(self.0.sign(message).to_bytes())
    }

    /// The text form to store in a key file (`ed25519-secret:…`).
    pub fn to_text(&self) -> String {
        format!("{SECRET_PREFIX}{}", B64.encode(self.0.to_bytes()))
    }
}

impl FromStr for SecretKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let encoded = s
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .ok_or(KeyError::MalformedSecret)?;
        let bytes = B64.decode(encoded).map_err(|_| KeyError::MalformedSecret)?;
        let seed: [u8; 32] = bytes.try_into().map_err(|_| KeyError::MalformedSecret)?;
        Ok(SecretKey::from_seed(seed))
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(public {})", self.public_key())
    }
}

/// A key that verifies signatures.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Verifies a base64url `signature` of `message` (strict RFC 8032 verification).
    pub fn verify(&self, message: &[u8], signature: &str) -> Result<(), KeyError> {
        let bytes = B64
            .decode(signature)
            .map_err(|_| KeyError::MalformedSignature)?;
        let bytes: [u8; 64] = bytes.try_into().map_err(|_| KeyError::MalformedSignature)?;
        let signature = ed25519_dalek::Signature::from_bytes(&bytes);
        self.0
            .verify_strict(message, &signature)
            .map_err(|_| KeyError::BadSignature)
    }

    /// A short, stable name for the key: the first 16 hex digits of the SHA-256 of its bytes.
    pub fn key_id(&self) -> String {
        Digest::of(self.0.as_bytes()).hex()[..16].to_owned()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PUBLIC_PREFIX}{}", B64.encode(self.0.as_bytes()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let error = || KeyError::MalformedPublic(s.to_owned());
        let encoded = s.trim().strip_prefix(PUBLIC_PREFIX).ok_or_else(error)?;
        let bytes = B64.decode(encoded).map_err(|_| error())?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| error())?;
        VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|_| error())
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
