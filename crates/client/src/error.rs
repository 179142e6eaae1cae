//! What can go wrong talking to the broker, said so that the reader knows which side failed: the
//! address or token given here, the network, the broker's refusal, or an answer that makes no sense.

use std::time::Duration;

use countersign_api::{ErrorCode, ReadCode};
use countersign_model::format_duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server address given to the client is not one it can call.
    #[error(
        "'{server}' is not a Countersign server address: {reason} (expected http://HOST:PORT or https://HOST, as in COUNTERSIGN_SERVER)"
    )]
    InvalidServer { server: String, reason: String },

    /// The API token cannot be sent as given.
    #[error("the API token cannot be used: {reason}; check COUNTERSIGN_TOKEN (or --token)")]
    InvalidToken { reason: &'static str },

    /// A request body could not be written as JSON.
    #[error("the call cannot be sent: {reason}")]
    Unsendable { reason: String },

    /// HTTPS could not be set up on this machine (no usable root certificates, for instance).
    #[error("cannot prepare connections to the Countersign broker: {reason}")]
    Setup { reason: String },

    /// The broker could not be reached, or did not answer in time. Nothing was decided: a
    /// sensitive action must not run.
    #[error(
        "cannot reach the Countersign broker at {url}: {reason}; check that the broker is running and that COUNTERSIGN_SERVER (or --server) points at it"
    )]
    Unreachable {
        url: String,
        reason: String,
        timed_out: bool,
    },

    /// The broker did not accept the token (401). The message says to check the token.
    #[error("the Countersign broker at {server} did not accept the API token: {message}")]
    Unauthenticated { server: String, message: String },

    /// The broker refused the call with a Countersign error: its code and sentence, verbatim.
    #[error("{message} (HTTP {status}, {code})")]
    Api {
        status: u16,
        /// One of the broker's codes, or (from a newer broker) one this client does not know.
        code: ReadCode,
        message: String,
    },

    /// The answer is not what the API promises: another server is listening there, or a proxy in
    /// between answered, or this client is older than the broker in a way that matters.
    #[error(
        "the answer from {url} (HTTP {status}) is not a Countersign broker's answer: {reason}; check that COUNTERSIGN_SERVER points at a Countersign broker"
    )]
    MalformedResponse {
        url: String,
        status: u16,
        reason: String,
    },
}

impl ClientError {
    /// The HTTP status the broker answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Unauthenticated { .. } => Some(401),
            ClientError::Api { status, .. } | ClientError::MalformedResponse { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }

    /// The broker's stable error code (`self_approval`, `grant_used`, …), if it sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Unauthenticated { .. } => Some("unauthenticated"),
            ClientError::Api { code, .. } => Some(code.as_str()),
            _ => None,
        }
    }

    /// Whether the broker answered with this error code.
    pub fn is(&self, expected: ErrorCode) -> bool {
        match self {
            ClientError::Unauthenticated { .. } => expected == ErrorCode::Unauthenticated,
            ClientError::Api { code, .. } => *code == ReadCode::Known(expected),
            _ => false,
        }
    }

    /// True when the broker could not be asked or could not commit: unreachable, timed out,
    /// `503 unavailable`, or a gateway in front of it saying it is down (502, 503, 504). Nothing
    /// was decided; a waiter may try again later, and an enforcement point must fail closed.
    pub fn is_unavailable(&self) -> bool {
        match self {
            ClientError::Unreachable { .. } => true,
            ClientError::Api { status, .. } => *status == 503,
            ClientError::MalformedResponse { status, .. } => matches!(status, 502..=504),
            _ => false,
        }
    }

    pub(crate) fn unreachable(url: &reqwest::Url, error: &reqwest::Error, limit: Duration) -> Self {
        let timed_out = error.is_timeout();
        let reason = if timed_out {
            format!("no answer within {}", format_duration(limit))
        } else {
            transport_reason(error)
        };
        ClientError::Unreachable {
            url: without_query(url),
            reason,
            timed_out,
        }
    }
}

/// The endpoint without its query string, for messages.
pub(crate) fn without_query(url: &reqwest::Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.to_string()
}

/// The most specific cause of a transport failure, in plain words. reqwest's own message names
/// the URL and says "error sending request", which says nothing about what to fix.
fn transport_reason(error: &reqwest::Error) -> String {
    let mut innermost: &dyn std::error::Error = error;
    let mut current: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return io_reason(io);
        }
        innermost = e;
        current = e.source();
    }
    if error.is_connect() {
        format!("could not connect ({innermost})")
    } else {
        innermost.to_string()
    }
}

fn io_reason(error: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::ConnectionRefused => "connection refused (nothing is listening there)".into(),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => {
            "the connection was cut before the broker answered".into()
        }
        ErrorKind::TimedOut => "the connection timed out".into(),
        ErrorKind::UnexpectedEof => "the connection closed before the broker answered".into(),
        _ => error.to_string(),
    }
}
