//! Identifiers Countersign mints: request ids (`r_` + 32 hex digits) and grant ids (`g_` + 32).
//!
//! The random bytes come from the caller; this crate reads no random source.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::digest::{hex_decode, hex_encode};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{value}' is not a {what} id (expected {prefix} followed by 32 lowercase hex digits)")]
pub struct IdError {
    what: &'static str,
    prefix: &'static str,
    value: String,
}

macro_rules! random_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; 16]);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// Builds an id from 16 random bytes the caller drew.
            pub fn from_random(bytes: [u8; 16]) -> Self {
                Self(bytes)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", Self::PREFIX, hex_encode(&self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let error = || IdError { what: $what, prefix: $prefix, value: s.to_owned() };
                let hex = s.strip_prefix(Self::PREFIX).ok_or_else(error)?;
                if hex.len() != 32 || hex.bytes().any(|b| b.is_ascii_uppercase()) {
                    return Err(error());
                }
                let bytes = hex_decode(hex).ok_or_else(error)?;
                Ok(Self(bytes.try_into().map_err(|_| error())?))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = String::deserialize(deserializer)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

random_id!(
    /// The id of one request for approval.
    RequestId, "r_", "request"
);
random_id!(
    /// The id of one grant, the single-use permission an approved request yields.
    GrantId, "g_", "grant"
);
