//! A review: one human's verdict on a request, with who they are, how they signed in and where the
//! verdict came from.

use std::collections::BTreeSet;
use std::fmt;

use countersign_model::{PrincipalKind, Timestamp};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Approve,
    Deny,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Approve => "approve",
            Verdict::Deny => "deny",
        })
    }
}

/// How the reviewer proved who they are, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Authentication {
    /// A bearer API token (the CLI, scripts).
    ApiToken,
    /// A Slack user id from a request Slack signed.
    Slack,
    /// A Microsoft Teams user from a Bot Framework token Microsoft signed.
    Teams,
    /// An OpenID Connect sign-in.
    Oidc,
    /// An OpenID Connect sign-in whose ID token asserts multi-factor authentication.
    OidcMfa,
}

impl Authentication {
    /// The name the API and the store use: `api_token`, `slack`, `teams`, `oidc`, `oidc_mfa`.
    pub fn as_str(self) -> &'static str {
        match self {
            Authentication::ApiToken => "api_token",
            Authentication::Slack => "slack",
            Authentication::Teams => "teams",
            Authentication::Oidc => "oidc",
            Authentication::OidcMfa => "oidc_mfa",
        }
    }
}

/// Where a review was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Api,
    Cli,
    Web,
    Slack,
    Teams,
}

impl Channel {
    /// The name the API and the store use: `api`, `cli`, `web`, `slack`, `teams`.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Api => "api",
            Channel::Cli => "cli",
            Channel::Web => "web",
            Channel::Slack => "slack",
            Channel::Teams => "teams",
        }
    }
}

/// The reviewer as the directory knew them when the review was given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reviewer {
    pub id: String,
    pub kind: PrincipalKind,
    #[serde(default)]
    pub groups: BTreeSet<String>,
    pub authentication: Authentication,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Review {
    pub reviewer: Reviewer,
    pub verdict: Verdict,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    pub channel: Channel,
    pub at: Timestamp,
}
