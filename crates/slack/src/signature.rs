//! Slack's request signatures (v0): `X-Slack-Signature: v0=hex(HMAC-SHA256(signing secret,
//! "v0:{X-Slack-Request-Timestamp}:{raw body}"))`, compared in constant time, within five minutes
//! of our clock; and a memory of signatures already accepted (by their MAC bytes, whatever the
//! case of their hex), so a captured request cannot be played again inside that window.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use hmac::{KeyInit as _, Mac as _};

type HmacSha256 = hmac::Hmac<sha2_011::Sha256>;

/// How far a request's timestamp may be from our clock, either way (Slack's own advice).
pub const WINDOW_SECS: i64 = 5 * 60;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the request has no X-Slack-Request-Timestamp or X-Slack-Signature header")]
    Missing,
    #[error("X-Slack-Request-Timestamp is not a number of seconds")]
    BadTimestamp,
    #[error(
        "the request's timestamp is {0} seconds away from this server's clock (more than 5 minutes): a replay, or a clock to fix"
    )]
    Stale(i64),
    #[error("X-Slack-Signature is not v0=<64 hex digits>")]
    Malformed,
    #[error(
        "the signature does not match: the request was not signed with this app's signing secret"
    )]
    Mismatch,
    #[error("this exact request was already received: a replay")]
    Replayed,
}

/// The `v0=…` signature of `body` sent at `timestamp`.
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, body).finalize().into_bytes();
    format!("v0={}", countersign_model::digest::hex_encode(&tag))
}

fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; new_from_slice cannot fail for it.
    let mut mac = HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable_mac());
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    mac
}

/// HMAC accepts every key length, so this is never called; it exists to avoid a panic path.
fn unreachable_mac() -> HmacSha256 {
    <HmacSha256 as hmac::digest::KeyInit>::new(&Default::default())
}

/// Checks one request's signature: the timestamp within [`WINDOW_SECS`] of `now_secs`, and the
/// HMAC, compared in constant time.
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_secs: i64,
) -> Result<(), SignatureError> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(SignatureError::Missing);
    };
    let sent: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    let skew = (now_secs - sent).abs();
    if skew > WINDOW_SECS {
        return Err(SignatureError::Stale(skew));
    }
    let tag = decode(signature)
        .filter(|tag| tag.len() == 32)
        .ok_or(SignatureError::Malformed)?;
    mac(secret, timestamp, body)
        .verify_slice(&tag)
        .map_err(|_| SignatureError::Mismatch)
}

/// The MAC bytes of a `v0=<hex>` signature. Hex digits are read in either case, so one MAC has
/// many spellings (`ab`, `AB`, `aB`); whatever compares signatures compares these bytes.
fn decode(signature: &str) -> Option<Vec<u8>> {
    signature
        .strip_prefix("v0=")
        .and_then(countersign_model::digest::hex_decode)
}

/// Signatures accepted in the last [`WINDOW_SECS`]: a request whose signature is here was seen.
/// Older ones need no memory, since their timestamp is refused as stale. They are remembered by
/// their MAC bytes, not their text: the same request with its hex in another case is the same
/// request, and a replay.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    by_signature: HashMap<Vec<u8>, i64>,
    order: VecDeque<(i64, Vec<u8>)>,
}

impl ReplayGuard {
    /// Remembers `signature` (of a request verified at `now_secs`); refuses one seen before, in
    /// whatever spelling.
    pub fn first_time(&self, signature: &str, now_secs: i64) -> Result<(), SignatureError> {
        let signature = decode(signature).ok_or(SignatureError::Malformed)?;
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((at, _)) = seen.order.front() {
            if now_secs - at <= 2 * WINDOW_SECS {
                break;
            }
            if let Some((_, old)) = seen.order.pop_front() {
                seen.by_signature.remove(&old);
            }
        }
        if seen.by_signature.contains_key(&signature) {
            return Err(SignatureError::Replayed);
        }
        seen.by_signature.insert(signature.clone(), now_secs);
        seen.order.push_back((now_secs, signature));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example from Slack's "Verifying requests from Slack" guide.
    const SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";
    const TIMESTAMP: &str = "1531420618";
    const BODY: &[u8] = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SIGNATURE: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    #[test]
    fn slacks_documented_example_verifies() {
        assert_eq!(sign(SECRET, TIMESTAMP, BODY), SIGNATURE);
        let now = 1_531_420_618 + 10;
        assert_eq!(
            verify(SECRET, Some(TIMESTAMP), Some(SIGNATURE), BODY, now),
            Ok(())
        );
    }

    #[test]
    fn any_change_is_refused() {
        let now = 1_531_420_618;
        let mut body = BODY.to_vec();
        body[0] ^= 1;
        assert_eq!(
            verify(SECRET, Some(TIMESTAMP), Some(SIGNATURE), &body, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(
                b"another secret",
                Some(TIMESTAMP),
                Some(SIGNATURE),
                BODY,
                now
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(SECRET, Some("1531420619"), Some(SIGNATURE), BODY, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(SECRET, Some(TIMESTAMP), Some("v1=abc"), BODY, now),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(SECRET, None, Some(SIGNATURE), BODY, now),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(
                SECRET,
                Some(TIMESTAMP),
                Some(SIGNATURE),
                BODY,
                now + WINDOW_SECS + 1
            ),
            Err(SignatureError::Stale(WINDOW_SECS + 1))
        );
        assert_eq!(
            verify(
                SECRET,
                Some(TIMESTAMP),
                Some(SIGNATURE),
                BODY,
                now - WINDOW_SECS - 1
            ),
            Err(SignatureError::Stale(WINDOW_SECS + 1))
        );
    }

    #[test]
    fn a_signature_is_accepted_once() {
        let guard = ReplayGuard::default();
        assert_eq!(guard.first_time("v0=aa", 100), Ok(()));
        assert_eq!(guard.first_time("v0=bb", 101), Ok(()));
        assert_eq!(
            guard.first_time("v0=aa", 102),
            Err(SignatureError::Replayed)
        );
        assert_eq!(
            guard.first_time("v0=AA", 102),
            Err(SignatureError::Replayed),
            "the same MAC in upper case is the same request"
        );
        // Long after, the memory is gone, and the timestamp check refuses it instead.
        assert_eq!(guard.first_time("v0=aa", 100 + 2 * WINDOW_SECS + 1), Ok(()));
    }
}
