//! The JSON error every refusal carries: `{"error": {"code", "message"}}`, with the closed list of
//! codes the broker answers with.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)+) => {
        /// Every `code` the broker's JSON error can carry. Stable: a client may match on it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)+
        }

        impl ErrorCode {
            /// Every code, in the order they are declared.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)+];

            /// The code as the JSON error spells it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $name,)+
                }
            }
        }
    };
}

error_codes! {
    /// The call is malformed: a field, a parameter or the body; the message names it.
    BadRequest = "bad_request",
    /// No token, or one the broker does not know.
    Unauthenticated = "unauthenticated",
    /// The caller may not do this (an agent reviewing, a stranger in the chain, …).
    Forbidden = "forbidden",
    /// An agent sent labels: Countersign sets them from its configuration; send them as claims.
    LabelsFromAgent = "labels_from_agent",
    /// No such request (or one the caller may not see), or no such endpoint.
    NotFound = "not_found",
    /// The endpoint does not answer this method.
    MethodNotAllowed = "method_not_allowed",
    /// The body took too long to arrive.
    RequestTimeout = "request_timeout",
    /// The body is larger than the endpoint takes.
    TooLarge = "too_large",
    /// The body is not sent as JSON.
    UnsupportedMediaType = "unsupported_media_type",
    /// Too many connections from one address, or in all.
    TooManyConnections = "too_many_connections",
    /// The store could not record the call, so nothing was done (fail closed).
    Unavailable = "unavailable",
    /// The health check found the store unable to commit.
    StoreUnavailable = "store_unavailable",
    /// The policy denies the action, now or when its grant is used.
    Denied = "denied",
    /// The request was decided already.
    AlreadyDecided = "already_decided",
    /// The request expired before it was decided.
    Expired = "expired",
    /// The request has not expired yet.
    NotYetExpired = "not_yet_expired",
    /// An agent cannot review.
    AgentReviewer = "agent_reviewer",
    /// Nobody in a request's chain may review it.
    SelfApproval = "self_approval",
    /// The reviewer is in none of the groups the rule allows.
    NotEligible = "not_eligible",
    /// The reviewer reviewed this request already.
    AlreadyReviewed = "already_reviewed",
    /// Only the requester may do this.
    NotRequester = "not_requester",
    /// The grant is not one this broker issued for this action and caller, or it expired.
    GrantInvalid = "grant_invalid",
    /// The grant was used already: an approval runs once.
    GrantUsed = "grant_used",
    /// The policy in force asks more than the approvals give.
    ApprovalOutdated = "approval_outdated",
    /// The approval is no longer in force.
    ApprovalExpired = "approval_expired",
    /// The approved action has not run, so it has no outcome yet.
    NotRun = "not_run",
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialSchema for ErrorCode {
    fn schema() -> RefOr<Schema> {
        RefOr::T(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(ErrorCode::ALL.iter().map(|code| code.as_str())))
                .into(),
        )
    }
}

impl ToSchema for ErrorCode {}

/// A code that is not one of Countersign's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a Countersign error code")]
pub struct UnknownErrorCode(pub String);

impl FromStr for ErrorCode {
    type Err = UnknownErrorCode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorCode::ALL
            .iter()
            .copied()
            .find(|code| code.as_str() == s)
            .ok_or_else(|| UnknownErrorCode(s.to_owned()))
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The code of an error as a client reads it: one it knows, or one a newer broker added. A client
/// must keep working when the broker learns a new way to refuse, and still show its code and
/// sentence, so the read side does not refuse an unknown code the way the broker's own closed
/// list would.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReadCode {
    Known(ErrorCode),
    Other(String),
}

impl ReadCode {
    pub fn as_str(&self) -> &str {
        match self {
            ReadCode::Known(code) => code.as_str(),
            ReadCode::Other(code) => code,
        }
    }
}

impl From<String> for ReadCode {
    fn from(text: String) -> ReadCode {
        match text.parse() {
            Ok(code) => ReadCode::Known(code),
            Err(_) => ReadCode::Other(text),
        }
    }
}

impl fmt::Display for ReadCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<ErrorCode> for ReadCode {
    fn eq(&self, other: &ErrorCode) -> bool {
        matches!(self, ReadCode::Known(code) if code == other)
    }
}

/// The `error` object of an error answer, as the broker writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    /// What went wrong and how to fix it, in Countersign's words.
    pub message: String,
}

/// `{"error": {...}}`, the shape of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_reads_back_from_its_text() {
        for code in ErrorCode::ALL {
            assert_eq!(code.as_str().parse::<ErrorCode>(), Ok(*code));
        }
        assert_eq!(
            ReadCode::from("rate_limited".to_owned()),
            ReadCode::Other("rate_limited".into())
        );
        assert_eq!(ReadCode::from("expired".to_owned()), ErrorCode::Expired);
    }
}
