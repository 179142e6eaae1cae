#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.
//! The strict JSON reader: the same values as serde_json, and a refusal naming the key wherever
//! an object repeats one, however deep or however the key is spelled.

use countersign_model::strict_json::{self, StrictValue};
use serde_json::json;

#[test]
fn reads_what_serde_json_reads() {
    let text = r#"{"a": [1, -2, 3.5, "x", null, true], "b": {"c": {}}, "d": []}"#;
    assert_eq!(
        strict_json::from_str(text).unwrap(),
        serde_json::from_str::<serde_json::Value>(text).unwrap()
    );
    assert_eq!(strict_json::from_slice(b"7").unwrap(), json!(7));
}

#[test]
fn a_repeated_key_is_refused_by_name_at_any_depth() {
    for (text, key) in [
        (r#"{"path": "/tmp", "path": "/etc"}"#, "path"),
        (r#"{"a": {"b": [{"c": 1, "c": 2}]}}"#, "c"),
        // Escapes do not make two keys different.
        (r#"{"path": 1, "p\u0061th": 2}"#, "path"),
    ] {
        let error = strict_json::from_str(text).unwrap_err().to_string();
        assert!(
            error.contains(&format!("the key \"{key}\" appears twice in one object")),
            "{text}: {error}"
        );
    }
    // Equal keys in different objects are not repeats.
    assert!(strict_json::from_str(r#"{"a": {"x": 1}, "b": {"x": 1}}"#).is_ok());
    // The same rule inside a larger document read with serde.
    #[derive(serde::Deserialize)]
    struct Call {
        arguments: StrictValue,
    }
    assert!(serde_json::from_str::<Call>(r#"{"arguments": {"x": 1, "x": 2}}"#).is_err());
    let call: Call = serde_json::from_str(r#"{"arguments": {"x": 1}}"#).unwrap();
    assert_eq!(call.arguments.0, json!({"x": 1}));
}
