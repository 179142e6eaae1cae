//! Timestamps, durations, ids and signing keys: their text forms round-trip and bad input is refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

use std::time::Duration;

use countersign_model::ids::GrantId;
use countersign_model::{
    Digest, KeyError, PublicKey, RequestId, SecretKey, Timestamp, format_duration, parse_duration,
};
use proptest::prelude::*;

#[test]
fn timestamps_print_and_parse_rfc3339() {
    let t = Timestamp::from_unix_millis(1_795_277_280_123);
    assert_eq!(t.to_string(), "2026-11-21T16:08:00.123Z");
    assert_eq!("2026-11-21T16:08:00.123Z".parse::<Timestamp>().unwrap(), t);
    assert_eq!(
        "2026-11-21T17:08:00.123+01:00"
            .parse::<Timestamp>()
            .unwrap(),
        t
    );
    assert_eq!(
        Timestamp::from_unix_millis(0).to_string(),
        "1970-01-01T00:00:00.000Z"
    );
    for bad in [
        "2026-02-30T00:00:00Z",
        "2026-11-21",
        "2026-11-21T16:08:00",
        "yesterday",
    ] {
        assert!(bad.parse::<Timestamp>().is_err(), "{bad}");
    }
}

#[test]
fn durations_read_and_write_the_same_way() {
    assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
    assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
    assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
    assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    for bad in ["", "0s", "30", "m", "1x", "1h30"] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
}

#[test]
fn ids_and_digests_refuse_malformed_text() {
    let id = RequestId::from_random([0xab; 16]);
    assert_eq!(id.to_string(), "r_abababababababababababababababab");
    assert_eq!(id.to_string().parse::<RequestId>().unwrap(), id);
    for bad in [
        "r_ABABABABABABABABABABABABABABABAB",
        "r_abc",
        "g_abababababababababababababababab",
        "",
    ] {
        assert!(bad.parse::<RequestId>().is_err(), "{bad}");
    }
    assert!(GrantId::from_random([1; 16]).to_string().starts_with("g_"));
    let d = Digest::of(b"x");
    assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
    assert!("sha256:00".parse::<Digest>().is_err());
    let message = "'r_abc' is not a request id (expected r_ followed by 32 lowercase hex digits)";
    assert_eq!(
        "r_abc".parse::<RequestId>().unwrap_err().to_string(),
        message
    );
}

#[test]
fn keys_sign_verify_and_round_trip_as_text() {
    let key = SecretKey::from_seed([7; 32]);
    let public = key.public_key();
    let signature = key.sign(b"hello");
    assert_eq!(public.verify(b"hello", &signature), Ok(()));
    assert_eq!(
        public.verify(b"hellO", &signature),
        Err(KeyError::BadSignature)
    );
    let other = SecretKey::from_seed([8; 32]).public_key();
    assert_eq!(
        other.verify(b"hello", &signature),
        Err(KeyError::BadSignature)
    );
    let again: SecretKey = key.to_text().parse().unwrap();
    assert_eq!(again.public_key(), public);
    assert_eq!(public.to_string().parse::<PublicKey>().unwrap(), public);
    assert!(!format!("{key:?}").contains(&key.to_text()));
    assert_eq!(
        public.verify(b"hello", "nope"),
        Err(KeyError::MalformedSignature)
    );
}

proptest! {
    #[test]
    fn any_timestamp_round_trips(millis in -62_135_596_800_000i64..253_402_300_799_999) {
        let t = Timestamp::from_unix_millis(millis);
        prop_assert_eq!(t.to_string().parse::<Timestamp>().unwrap(), t);
    }

    #[test]
    fn any_duration_round_trips(secs in 1u64..10_000_000) {
        let d = Duration::from_secs(secs);
        prop_assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
    }
}
