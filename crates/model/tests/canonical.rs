//! RFC 8785's own examples, checked byte for byte.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

use countersign_model::canonical::{CanonicalError, to_canonical_string, write_double};
use serde_json::Value;

fn canonical(json: &str) -> String {
    let value: Value = serde_json::from_str(json).unwrap();
    to_canonical_string(&value).unwrap()
}

#[test]
fn rfc8785_section_3_2_2_example() {
    let input = r#"{
        "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
        "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
        "literals": [null, true, false]
    }"#;
    assert_eq!(
        canonical(input),
        r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
    );
}

#[test]
fn rfc8785_section_3_2_3_sorts_by_utf16_code_units() {
    let input = r#"{
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\ud83d\ude00": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis"
    }"#;
    let expected = "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\
        \"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\
        \"\u{1f600}\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}";
    assert_eq!(canonical(input), expected);
}

/// RFC 8785 Appendix B: IEEE 754 doubles and their canonical text.
#[test]
fn rfc8785_appendix_b_numbers() {
    let cases: &[(u64, &str)] = &[
        (0x0000000000000000, "0"),
        (0x8000000000000000, "0"),
        (0x0000000000000001, "5e-324"),
        (0x8000000000000001, "-5e-324"),
        (0x7fefffffffffffff, "1.7976931348623157e+308"),
        (0xffefffffffffffff, "-1.7976931348623157e+308"),
        (0x4340000000000000, "9007199254740992"),
        (0xc340000000000000, "-9007199254740992"),
        (0x4430000000000000, "295147905179352830000"),
        (0x44b52d02c7e14af5, "9.999999999999997e+22"),
        (0x44b52d02c7e14af6, "1e+23"),
        (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
        (0x444b1ae4d6e2ef4e, "999999999999999700000"),
        (0x444b1ae4d6e2ef4f, "999999999999999900000"),
        (0x444b1ae4d6e2ef50, "1e+21"),
        (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
        (0x3eb0c6f7a0b5ed8d, "0.000001"),
        (0x41b3de4355555553, "333333333.3333332"),
        (0x41b3de4355555554, "333333333.33333325"),
        (0x41b3de4355555555, "333333333.3333333"),
        (0x41b3de4355555556, "333333333.3333334"),
        (0x41b3de4355555557, "333333333.33333343"),
        (0xbecbf647612f3696, "-0.0000033333333333333333"),
        (0x43143ff3c1cb0959, "1424953923781206.2"),
    ];
    for &(bits, expected) in cases {
        let mut out = String::new();
        write_double(&mut out, f64::from_bits(bits)).unwrap();
        assert_eq!(out, expected, "bits {bits:#018x}");
    }
    for bits in [0x7fffffffffffffff_u64, 0x7ff0000000000000] {
        assert!(write_double(&mut String::new(), f64::from_bits(bits)).is_err());
    }
}

#[test]
fn integers_beyond_two_to_the_53_are_refused_not_rounded() {
    let value: Value = serde_json::from_str(r#"{"n": 9007199254740993}"#).unwrap();
    assert_eq!(
        to_canonical_string(&value),
        Err(CanonicalError::UnsafeInteger("9007199254740993".into()))
    );
    let value: Value = serde_json::from_str(r#"{"n": -9007199254740992}"#).unwrap();
    assert_eq!(
        to_canonical_string(&value).unwrap(),
        r#"{"n":-9007199254740992}"#
    );
}

#[test]
fn nested_structures_and_control_characters() {
    assert_eq!(
        canonical(r#"{"b":[{"z":1,"a":"\u0001\b\t"}],"a":{}}"#),
        r#"{"a":{},"b":[{"a":"\u0001\b\t","z":1}]}"#
    );
}
